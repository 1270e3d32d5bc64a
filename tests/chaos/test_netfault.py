"""The network-fault mechanism itself, on real sockets and real iptables (needs root): a rule on
one member's loopback address cuts that address only, and the chain leaves nothing behind."""
from __future__ import annotations

import socket

import pytest

from tests.chaos.netfault import Chain, etcd_address, iptables, tcp_ports

pytestmark = pytest.mark.integration


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_chain_cuts_one_address_and_is_removed() -> None:
    cut, kept = etcd_address(6), etcd_address(7)
    servers = []
    for host in (cut, kept, "127.0.0.1"):
        srv = socket.socket()
        srv.bind((host, 0) if not servers else (host, servers[0].getsockname()[1]))
        srv.listen(8)
        servers.append(srv)
    port = servers[0].getsockname()[1]
    try:
        with Chain("selftest") as chain:
            chain.drop(["-d", cut, *tcp_ports("dports", [port])])
            assert not reachable(cut, port)
            assert reachable(kept, port)
            assert reachable("127.0.0.1", port)
            assert chain.counters()[0] > 0
            name = chain.name
        assert reachable(cut, port)
        assert name not in iptables("-S").stdout
    finally:
        for srv in servers:
            srv.close()


def test_chain_removed_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError):
        with Chain("selffail") as chain:
            name = chain.name
            chain.drop(["-p", "tcp", "--no-such-option"])
    assert name not in iptables("-S").stdout
