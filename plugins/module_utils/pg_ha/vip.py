# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The virtual IP (`vip: {address, interface}`): on the member holding the leader lease, and
nowhere else.

Once per cycle the HA loop asks ``holds_lease`` and acquires the VIP when we hold the lease
and run as primary (re-adding it if someone removed it), or releases it otherwise; the
executor calls ``release`` before it stops a primary (demote, switchover, lock release), so
the address leaves before the lease does. Addresses
are changed with iproute2 (``ip addr add/del``, needs CAP_NET_ADMIN); after adding, a
gratuitous ARP (raw AF_PACKET socket, CAP_NET_RAW; ``arping -U`` as fallback) tells the
segment where the address lives now. A failed ARP is logged, never fatal.
"""
from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("pg_ha")

VIP_KEYS = {"address", "interface"}
IP_TIMEOUT = 5.0
ETH_P_ARP = 0x0806
# applied decisions (never their on_failure replacements) after which we hold the lease
_LEASE_ACTIONS = {"update_lock", "promote", "acquire", "start_primary", "clear_failover"}

Runner = Callable[[list[str]], tuple[int, str]]


@dataclass(frozen=True)
class VipSettings:
    address: str  # "10.0.0.10/24" (normalised: always with a prefix length)
    interface: str

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def is_ipv4(self) -> bool:
        return ":" not in self.ip


def parse_vip(raw: Any, warnings: list[str] | None = None) -> VipSettings | None:
    """The `vip` section -> VipSettings (None when absent or empty); ValueError names the key."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"vip: expected a mapping with address and interface, got {type(raw).__name__}")
    for key in sorted(set(raw) - VIP_KEYS):
        if warnings is not None:
            warnings.append(f"unknown configuration key vip.{key} (ignored)")
    address, interface = raw.get("address"), raw.get("interface")
    if not address or not isinstance(address, str):
        raise ValueError(f"vip.address: expected an IP address with prefix length (e.g. 10.0.0.10/24), "
                         f"got {address!r}")
    try:
        iface = ipaddress.ip_interface(address.strip())
    except ValueError:
        raise ValueError(f"vip.address: not an IP address with prefix length: {address!r}") from None
    if iface.ip.is_unspecified or iface.ip.is_multicast or iface.ip.is_loopback:
        raise ValueError(f"vip.address: {iface.ip} cannot be a virtual IP")
    if not interface or not isinstance(interface, str):
        raise ValueError(f"vip.interface: expected a network interface name (e.g. eth0), got {interface!r}")
    if len(interface) > 15 or any(c.isspace() or c in "/:" for c in interface):
        raise ValueError(f"vip.interface: invalid interface name {interface!r}")
    return VipSettings(address=iface.with_prefixlen, interface=interface)


def holds_lease(applied_action: str, busy: bool) -> bool:
    """Pure: do we hold the leader lease after this cycle, with no background step (start,
    restart) in flight? True only for an applied decision that kept or took the lease: a failed
    lock refresh or race applies its NOOP/DEMOTE replacement instead."""
    return applied_action in _LEASE_ACTIONS and not busy


def run_ip(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=IP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def arp_frame(mac: bytes, ip: str, op: int) -> bytes:
    """A broadcast gratuitous ARP (sender and target IP = the VIP); op 1 request, 2 reply."""
    addr = socket.inet_aton(ip)
    target_mac = b"\x00" * 6 if op == 1 else b"\xff" * 6
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + addr + target_mac + addr
    return eth + arp


def send_gratuitous_arp(interface: str, ip: str) -> str | None:
    """Announce `ip` on `interface`; None when sent, else why not."""
    try:
        with open(f"/sys/class/net/{interface}/address", encoding="ascii") as fh:
            mac = bytes.fromhex(fh.read().strip().replace(":", ""))
    except (OSError, ValueError) as exc:
        return f"cannot read the MAC address of {interface}: {exc}"
    if len(mac) != 6 or mac == b"\x00" * 6:
        return f"{interface} has no Ethernet address"
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((interface, ETH_P_ARP))
            sock.send(arp_frame(mac, ip, 1))
            sock.send(arp_frame(mac, ip, 2))
        return None
    except OSError as exc:
        error = f"raw socket: {exc}"
    arping = shutil.which("arping")
    if arping is None:
        return error
    code, out = run_ip([arping, "-U", "-c", "1", "-I", interface, ip])
    return None if code == 0 else f"{error}; arping: {out or code}"


class VipManager:
    """Adds/removes the configured address; every change logs one sentence."""

    def __init__(self, settings: VipSettings, runner: Runner = run_ip,
                 announce: Callable[[str, str], str | None] = send_gratuitous_arp) -> None:
        self.settings = settings
        self._run = runner
        self._announce = announce
        self._added = False  # we added it and have not seen it go since
        self._last_error: str | None = None

    def _error(self, message: str) -> None:
        if message != self._last_error:  # once per distinct failure, not every cycle
            logger.error("%s", message)
        self._last_error = message

    def present(self) -> str | None:
        """The address as configured on the interface ("ip/prefix"), '' if absent, None on error."""
        s = self.settings
        code, out = self._run(["ip", "-o", "addr", "show", "dev", s.interface])
        if code != 0:
            self._error(f"VIP: cannot list the addresses of {s.interface}: {out or code}")
            return None
        want = ipaddress.ip_address(s.ip)
        for line in out.splitlines():
            words = line.split()
            for i, word in enumerate(words[:-1]):
                if word in ("inet", "inet6"):
                    try:
                        if ipaddress.ip_interface(words[i + 1]).ip == want:
                            return words[i + 1]
                    except ValueError:
                        continue
        return ""

    def acquire(self) -> bool:
        """Make sure the VIP is here (re-added if someone removed it), announce it when added."""
        s = self.settings
        found = self.present()
        if found is None:
            return False
        if found:
            self._added = True
            return True
        code, out = self._run(["ip", "addr", "add", s.address, "dev", s.interface])
        if code != 0:
            self._error(f"VIP: failed to add {s.address} on {s.interface}: {out or code}")
            return False
        self._last_error = None
        logger.info("VIP %s %s on %s: I hold the leader lock", s.address,
                    "re-added (it had been removed)" if self._added else "added", s.interface)
        self._added = True
        if s.is_ipv4:
            problem = self._announce(s.interface, s.ip)
            if problem:
                logger.warning("VIP %s: gratuitous ARP not sent (%s)", s.ip, problem)
        return True

    def release(self, reason: str) -> bool:
        """Make sure the VIP is not here. True when it is gone (or was never here)."""
        s = self.settings
        found = self.present()
        self._added = False
        if found is None:
            return False
        if not found:
            return True
        code, out = self._run(["ip", "addr", "del", found, "dev", s.interface])
        if code != 0:
            self._error(f"VIP: failed to remove {found} from {s.interface}: {out or code}")
            return False
        self._last_error = None
        logger.info("VIP %s removed from %s: %s", s.address, s.interface, reason)
        return True


class NoVip:
    """Stand-in when no `vip` is configured: every call is a no-op."""

    settings = None

    def acquire(self) -> bool:
        return True

    def release(self, reason: str) -> bool:
        return True


def manager_for(settings: VipSettings | None) -> VipManager | NoVip:
    return VipManager(settings) if settings is not None else NoVip()
