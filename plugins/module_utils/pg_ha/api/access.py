# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access control of the unsafe methods: source allowlist, client certificate, basic auth."""
from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
REALM = 'Basic realm="pg_ha"'


def build_allowlist(entries: Iterable[str]) -> tuple[Network, ...]:
    """Networks of CIDRs, IP addresses and host names (resolved once, now)."""
    networks: list[Network] = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, 0, socket.SOCK_STREAM)
        except OSError as exc:
            logger.error("restapi.allowlist: cannot resolve %s: %s", entry, exc)
            continue
        for info in infos:
            networks.append(ipaddress.ip_network(str(info[4][0]).split("%")[0], strict=False))
    return tuple(networks)


def member_networks(api_urls: Iterable[str | None]) -> tuple[Network, ...]:
    """Addresses of the members' REST API hosts (restapi.allowlist_include_members)."""
    hosts = set()
    for url in api_urls:
        if not url:
            continue
        try:
            host = urlsplit(url if "://" in url else "http://" + url).hostname
        except ValueError:
            continue
        if host:
            hosts.add(host)
    return build_allowlist(sorted(hosts))


def address_allowed(address: str, allowlist: tuple[Network, ...]) -> bool:
    """True without an allowlist, else whether ``address`` is in one of its networks."""
    if not allowlist:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in allowlist)


def check_basic_auth(header: str | None, username: str | None, password: str | None) -> str | None:
    """None when access is granted (no username configured, or matching credentials),
    else the reason for a 401."""
    if not username:
        return None
    if not header:
        return "no auth header received"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return "not authenticated"
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "not authenticated"
    expected = f"{username}:{password or ''}"
    if not hmac.compare_digest(decoded.encode("utf-8"), expected.encode("utf-8")):
        return "not authenticated"
    return None
