"""VIP on real processes: each member gets its own network interface in this namespace (a veth
pair: the kernel here has no dummy driver, and the peer end lets the test capture the
gratuitous ARP) and `vip: {address: 198.51.100.x/32, interface: <its own>}`. The daemons run as
postgres with ambient CAP_NET_ADMIN + CAP_NET_RAW. The VIP must sit on exactly the leader's
interface, follow a switchover without ever being on two interfaces, and follow a failover."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster, wait_writable
from tests.harness.common import wait_for

pytestmark = pytest.mark.integration
SCOPE = "vipha"
# TEST-NET-2: this machine's own eth0 is on 192.0.2.0/24 (TEST-NET-1), where a local /32 could
# shadow a real neighbour; 198.51.100.0/24 is routed nowhere here
VIP_IP = f"198.51.100.{10 + os.getpid() % 240}"
VIP = f"{VIP_IP}/32"
ETH_P_ARP = 0x0806


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def holders() -> set[str]:
    """The interfaces that carry the VIP right now."""
    return {line.split()[1] for line in ip("-o", "addr", "show", "to", VIP).splitlines() if line.strip()}


def iface(member: Member) -> str:
    return str(member.config["vip"]["interface"])


class ArpSniffer:
    """Gratuitous ARP frames for the VIP arriving on the peer end of a member's veth pair."""

    def __init__(self, peer: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((peer, ETH_P_ARP))
        self.sock.setblocking(False)
        self.frames: list[tuple[int, bytes]] = []  # (op, sender mac)

    def poll(self) -> list[tuple[int, bytes]]:
        while True:
            try:
                frame = self.sock.recv(2048)
            except BlockingIOError:
                return self.frames
            if len(frame) >= 42 and frame[12:14] == b"\x08\x06":
                op = struct.unpack("!H", frame[20:22])[0]
                sender_ip, target_ip = socket.inet_ntoa(frame[28:32]), socket.inet_ntoa(frame[38:42])
                if sender_ip == target_ip == VIP_IP:
                    self.frames.append((op, frame[22:28]))


class Watcher:
    """Records, while running, the most interfaces that held the VIP at once: from the kernel's
    address events (`ip monitor address`, every add/del in order) and by polling every 20 ms."""

    def __init__(self) -> None:
        self.max_events = 0
        self.max_polled = 0
        self.polls = 0
        self.timeline: list[str] = []
        self._stop = threading.Event()
        self._mon = subprocess.Popen(["ip", "-o", "monitor", "address"], stdout=subprocess.PIPE, text=True)
        self._current = holders()
        self._threads = [threading.Thread(target=self._events, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]
        for t in self._threads:
            t.start()

    def _events(self) -> None:
        assert self._mon.stdout is not None
        for line in self._mon.stdout:
            words = line.split()
            if f"{VIP_IP}/32" not in words:
                continue
            if words[0] == "Deleted":
                self._current.discard(words[2])
            else:
                self._current.add(words[1])
            self.timeline.append(f"{time.monotonic():.3f} {line.strip()[:60]}")
            self.max_events = max(self.max_events, len(self._current))

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.max_polled = max(self.max_polled, len(holders()))
            self.polls += 1

    def stop(self) -> None:
        self._stop.set()
        self._mon.terminate()
        self._mon.wait(10)
        for t in self._threads:
            t.join(10)


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[tuple[TestCluster, dict[str, ArpSniffer]]]:
    links: list[str] = []
    sniffers: dict[str, ArpSniffer] = {}
    try:
        with running_cluster(etcd_server, SCOPE, start=False) as c:
            assert holders() == set(), f"{VIP} is already configured on this machine"
            for i, m in enumerate(c.members):
                name = f"pgv{os.getpid() % 100000}{i}"
                ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
                links.append(name)
                ip("link", "set", name, "up")
                ip("link", "set", f"{name}p", "up")
                sniffers[m.name] = ArpSniffer(f"{name}p")
                m.config["vip"] = {"address": VIP, "interface": name}
                m.write_config()
                m.ambient_caps = ("net_admin", "net_raw")
            yield c, sniffers
    finally:
        for s in sniffers.values():
            s.sock.close()
        for name in links:
            subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
        assert not any(name in ip("-o", "link") for name in links), "a test interface was left behind"


def test_vip_is_on_the_leader_only(cluster: tuple[TestCluster, dict[str, ArpSniffer]]) -> None:
    c, sniffers = cluster
    pg0, pg1, pg2 = c.members
    # stale VIPs on members that will be replicas (e.g. left by a crashed former leader)
    ip("addr", "add", VIP, "dev", iface(pg1))
    ip("addr", "add", VIP, "dev", iface(pg2))
    pg0.start()
    assert c.wait_leader(90).name == pg0.name
    pg1.start()
    pg2.start()
    c.wait_healthy()
    wait_for(lambda: holders() == {iface(pg0)}, 30, f"the VIP on {iface(pg0)} only (got {holders()})")
    assert f"VIP {VIP} added on {iface(pg0)}: I hold the leader lock" in pg0.log()
    for replica in (pg1, pg2):
        assert f"VIP {VIP} removed from {iface(replica)}: I do not hold the leader lock" in replica.log()
    # the leader announced it: a gratuitous ARP with its own MAC, sent nowhere else
    with open(f"/sys/class/net/{iface(pg0)}/address") as fh:
        mac = bytes.fromhex(fh.read().strip().replace(":", ""))
    frames = wait_for(lambda: sniffers[pg0.name].poll(), 10, "a gratuitous ARP from the leader")
    assert {op for op, _ in frames} == {1, 2} and {m for _, m in frames} == {mac}
    assert sniffers[pg1.name].poll() == [] and sniffers[pg2.name].poll() == []


def test_vip_removed_by_someone_is_re_added(cluster: tuple[TestCluster, dict[str, ArpSniffer]]) -> None:
    c, _ = cluster
    leader = c.wait_leader()
    ip("addr", "del", VIP, "dev", iface(leader))
    assert holders() == set()
    wait_for(lambda: holders() == {iface(leader)}, 20, "the leader to re-add the VIP")
    assert f"VIP {VIP} re-added (it had been removed) on {iface(leader)}" in leader.log()


def test_switchover_moves_the_vip_never_on_two(cluster: tuple[TestCluster, dict[str, ArpSniffer]]) -> None:
    c, sniffers = cluster
    old = c.wait_healthy()
    new = next(m for m in c.members if m is not old)
    watcher = Watcher()
    try:
        started = time.monotonic()
        code, body = old.api("/switchover", method="POST", body={"leader": old.name, "candidate": new.name},
                             timeout=90)
        assert code == 200, body
        wait_for(lambda: holders() == {iface(new)}, 60, f"the VIP to move to {iface(new)}")
        moved = time.monotonic() - started
        wait_writable(new, 30)
    finally:
        watcher.stop()
    print(f"\nTIMING vip.switchover_request_to_vip_on_new_leader: {moved:.2f}s "
          f"({watcher.polls} polls; events: {watcher.timeline})")
    assert watcher.polls >= 3, "the poller did not run during the switchover"
    assert watcher.timeline, "no address event seen during the switchover"
    assert watcher.max_events <= 1 and watcher.max_polled <= 1, \
        f"VIP on two interfaces at once: {watcher.timeline}"
    log = old.log()
    removed = log.find(f"VIP {VIP} removed from {iface(old)}: switchover: handing the leader lock over")
    assert 0 <= removed < log.find("switchover: leader lock released at"), "VIP removed before the lock went"
    assert c.wait_leader(10).name == new.name
    wait_for(lambda: sniffers[new.name].poll(), 10, "a gratuitous ARP from the new leader")
    wait_for(old.is_streaming_replica, 60, f"{old.name} to follow {new.name}")
    assert holders() == {iface(new)}


def test_failover_after_kill9_brings_the_vip_to_the_new_leader(
        cluster: tuple[TestCluster, dict[str, ArpSniffer]]) -> None:
    c, _ = cluster
    old = c.wait_healthy()
    started = time.monotonic()
    old.kill9()  # daemon and postmaster: nobody is left on that member to remove its VIP
    new = c.wait_leader(60, exclude=(old.name,))
    wait_for(lambda: iface(new) in holders(), 30, f"the VIP on the new leader {new.name}")
    print(f"\nTIMING vip.kill9_to_vip_on_new_leader: {time.monotonic() - started:.2f}s")
    assert holders() == {iface(new), iface(old)}  # the dead member's copy stays until its daemon returns
    old.start()  # at startup a member that is not the leader drops the VIP
    wait_for(lambda: holders() == {iface(new)}, 60, f"{old.name} to drop its stale VIP at startup")
    assert f"VIP {VIP} removed from {iface(old)}: I do not hold the leader lock" in old.log()
    wait_for(old.is_streaming_replica, 120, f"{old.name} to rejoin")


def test_stopping_the_leader_releases_the_vip(cluster: tuple[TestCluster, dict[str, ArpSniffer]]) -> None:
    c, _ = cluster
    leader = c.wait_healthy()
    watcher = Watcher()
    try:
        leader.stop()
        assert iface(leader) not in holders()
        assert f"VIP {VIP} removed from {iface(leader)}: shutting down" in leader.log()
        new = c.wait_leader(60, exclude=(leader.name,))
        wait_for(lambda: holders() == {iface(new)}, 30, f"the VIP on {new.name}")
    finally:
        watcher.stop()
    assert watcher.max_events <= 1 and watcher.max_polled <= 1, watcher.timeline
    for m in c.members:
        m.stop()
    assert holders() == set(), "a stopped daemon left its VIP behind"
