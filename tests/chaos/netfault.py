"""Network faults on one machine: per-member loopback addresses and a dedicated iptables chain.

Every member of the test bed gets two private loopback addresses (all of 127.0.0.0/8 is local
on Linux, nothing to configure): ``etcd_address`` is where its daemon reaches every etcd member
(each etcd also listens there), ``pg_address`` is its PostgreSQL ``connect_address`` (the
address replicas stream from; PostgreSQL also listens on 127.0.0.1, which the daemon uses for
itself and the test clients, HAProxy, writer and prober, use). A rule on a destination address
therefore cuts exactly one member's path, and leaves the test's own connections alone.

A fault opens a ``Chain``: a chain of its own, jumped to from OUTPUT (packets on ``lo`` pass
OUTPUT once), deleted on exit whatever happened; ``remove_leftovers()`` deletes any chain this
process created and did not delete (called by the test bed's cleanup)."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from types import TracebackType

IPTABLES = "iptables"
PREFIX = "CHAOS"
_open: set[str] = set()


def etcd_address(index: int) -> str:
    return f"127.0.1.{index + 1}"


def pg_address(index: int) -> str:
    return f"127.0.2.{index + 1}"


def iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([IPTABLES, "-w", "5", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)}: {proc.stderr.strip()}")
    return proc


class Chain:
    """``with Chain("etcd") as chain: chain.drop(...)``: rules live only inside the block."""

    def __init__(self, label: str) -> None:
        self.name = f"{PREFIX}{os.getpid()}{label.upper()}"[:28]
        self.rules: list[list[str]] = []

    def __enter__(self) -> Chain:
        remove_chain(self.name)  # a leftover of a crashed earlier run of this process id
        iptables("-N", self.name)
        _open.add(self.name)
        iptables("-I", "OUTPUT", "1", "-j", self.name)
        return self

    def drop(self, match: Sequence[str]) -> None:
        """Append ``match -j DROP``: packets vanish, as on a real partition (no reset)."""
        rule = [*match, "-j", "DROP"]
        iptables("-A", self.name, *rule)
        self.rules.append(rule)

    def counters(self) -> list[int]:
        """Packets dropped per rule so far (proof that the rules cut real traffic)."""
        out = iptables("-L", self.name, "-n", "-v", "-x").stdout.splitlines()[2:]
        return [int(line.split()[0]) for line in out if line.strip()]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        remove_chain(self.name)


def remove_chain(name: str) -> None:
    while iptables("-D", "OUTPUT", "-j", name, check=False).returncode == 0:
        pass
    iptables("-F", name, check=False)
    iptables("-X", name, check=False)
    _open.discard(name)


def remove_leftovers() -> None:
    for name in list(_open):
        remove_chain(name)


def tcp_ports(flag: str, ports: Sequence[int]) -> list[str]:
    """``-p tcp -m multiport --dports a,b`` (flag: dports or sports)."""
    return ["-p", "tcp", "-m", "multiport", f"--{flag}", ",".join(str(p) for p in ports)]
