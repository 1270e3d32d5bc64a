"""A 3-member pg_ha cluster on a real 3-server ZooKeeper ensemble (Debian's 3.8): every member
is configured with all three servers. kill -9 of a ZooKeeper follower, then (with the follower
back) of the ZooKeeper leader (``srvr``), then of the server the pg_ha leader's own session is
connected to: the pg_ha cluster keeps its leader (the same member, the same
ZooKeeper session holding the leader znode, no promotion or demotion logged), writes on the
primary keep being acknowledged with a gap below retry_timeout, and every pg_ha member whose
ZooKeeper server died carries its session over to another server (``cons``) in time.

The figures (write gap, reconnect, ZooKeeper election) are printed as TIMING lines and kept in
tests/output/timings.json. In order on one cluster; waits have deadlines; every process
(three JVMs, three daemons, their PostgreSQL) is stopped by PID."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.cluster import Member, TestCluster
from tests.harness.common import REPO, SYSTEM_PYTHON, wait_for
from tests.harness.writes import AckedWriter
from tests.harness.zk_ensemble import EnsembleServer, ZooKeeperEnsemble

pytestmark = pytest.mark.integration
TIMINGS = Path(__file__).resolve().parents[2] / "tests" / "output" / "timings.json"
SCOPE = "zkens"
PREFIX = f"/service/{SCOPE}/"
TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 3
WRITE_GAP_BOUND = RETRY_TIMEOUT  # a primary that never stopped serving: far below this
STEER_TRIES = 10  # rounds of replica restarts to get a member onto the server to kill ((4/9)^10 to fail)


def record(name: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[name] = round(seconds, 2)
    TIMINGS.write_text(json.dumps(data, indent=2, sort_keys=True))
    print(f"\nTIMING {name}: {seconds:.2f}s")


@pytest.fixture(scope="module")
def ensemble() -> Iterator[ZooKeeperEnsemble]:
    ens = ZooKeeperEnsemble(3)
    try:
        ens.start()
        yield ens
    finally:
        ens.cleanup()


@pytest.fixture(scope="module")
def cluster(ensemble: ZooKeeperEnsemble) -> Iterator[TestCluster]:
    c = TestCluster(ensemble.hosts[0], scope=SCOPE, dcs_kind="zookeeper",
                    dynamic={"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT})
    try:
        for m in c.members:
            m.config["zookeeper"]["hosts"] = list(ensemble.hosts)
            m.write_config()
        c.start()
        yield c
    finally:
        print(c.logs()[-20000:])
        c.cleanup()


# -- who is connected where ------------------------------------------------------------
def read_znode(ens: ZooKeeperEnsemble, rel: str) -> tuple[bytes, Any] | None:
    """Data and stat of a znode of the scope, read through any running server."""
    for server in ens.running():
        try:
            client = server.client()
        except Exception:  # noqa: BLE001 - this one may be without a quorum just now
            continue
        try:
            return client.get(PREFIX + rel) if client.exists(PREFIX + rel) else None
        finally:
            client.stop()
            client.close()
    raise AssertionError("no running ZooKeeper server answered")


def session_of(ens: ZooKeeperEnsemble, member: Member) -> int:
    """The session owning the member's ephemeral znode."""
    found = read_znode(ens, f"members/{member.name}")
    assert found is not None and found[1].ephemeralOwner, f"{member.name} has no member znode"
    return int(found[1].ephemeralOwner)


def placement(ens: ZooKeeperEnsemble, c: TestCluster) -> dict[str, tuple[int, EnsembleServer]]:
    """Member name -> (its session, the server that session is connected to)."""
    result = {}
    for m in c.members:
        sid = session_of(ens, m)
        server = wait_for(lambda sid=sid: ens.server_of_session(sid), 10, f"session {sid:#x} in some cons")
        result[m.name] = (sid, server)
    return result


def steer_onto(ens: ZooKeeperEnsemble, c: TestCluster, target: EnsembleServer, leader: Member) -> None:
    """kazoo picks a server at random: restart both replicas until one is connected to `target`
    (the test of a dead server needs a member to lose its server); each round has a 5/9 chance."""
    for tries in range(STEER_TRIES + 1):
        where = placement(ens, c)
        if any(server is target for _sid, server in where.values()):
            if tries:
                print(f"\nsteered a member onto {target.name} in {tries} round(s) of replica restarts")
            return
        if tries == STEER_TRIES:
            break
        replicas = [m for m in c.members if m is not leader]
        for replica in replicas:
            replica.stop()
        for replica in replicas:
            replica.start()
        for replica in replicas:
            old = where[replica.name][0]
            wait_for(lambda r=replica, old=old: session_of(ens, r) != old, 60, f"{replica.name} in a new session")
            wait_for(replica.is_streaming_replica, 90, f"{replica.name} to stream again")
    raise AssertionError(f"no member got connected to {target.name} in {STEER_TRIES} rounds of restarts")


def cycles_after(member: Member, offset: int) -> int:
    return member.log()[offset:].count(f"no action. I am ({member.name}), the leader with the lock")


def survive_kill(ens: ZooKeeperEnsemble, c: TestCluster, victim: EnsembleServer, label: str) -> None:
    """kill -9 `victim` under a writer on the primary; assert the cluster keeps its leader and
    the members that were on `victim` move their sessions to other servers."""
    leader = c.wait_healthy()
    steer_onto(ens, c, victim, leader)
    before = placement(ens, c)
    leader_sid = session_of(ens, leader)
    leader_znode = read_znode(ens, "leader")
    assert leader_znode is not None and leader_znode[0].decode() == leader.name
    assert leader_znode[1].ephemeralOwner == leader_sid
    moved = [name for name, (_sid, server) in before.items() if server is victim]
    victim_mode = victim.mode()
    offsets = {m.name: len(m.log()) for m in c.members}
    print(f"\n{label}: killing {victim.name} ({victim_mode}), sessions on it: {moved}, "
          f"pg_ha leader {leader.name} on {before[leader.name][1].name}")
    with AckedWriter(leader, f"writes_{label}") as writer:
        wait_for(lambda: writer.acked, 10, "the first acknowledged write")
        killed_at = time.monotonic()
        victim.kill()
        if victim_mode == "leader":
            new = ens.leader(60)
            record(f"zookeeper_ensemble.{label}.election", time.monotonic() - killed_at)
            assert new is not victim
        reconnect = 0.0
        for name in moved:
            sid = before[name][0]
            server = wait_for(lambda sid=sid: ens.server_of_session(sid), TTL,
                              f"{name}'s session {sid:#x} on another ZooKeeper server")
            assert server is not victim
            reconnect = max(reconnect, time.monotonic() - killed_at)
        record(f"zookeeper_ensemble.{label}.reconnect", reconnect)
        reconnected_at = time.monotonic()
        # two HA cycles of the leader after the last member reconnected, writes going on
        wait_for(lambda: cycles_after(leader, offsets[leader.name]) >= 2 and
                 writer.acked_since(reconnected_at + LOOP_WAIT), 4 * LOOP_WAIT + RETRY_TIMEOUT + 10,
                 f"two HA cycles of {leader.name} after the reconnect")
    gap = writer.longest_gap()
    record(f"zookeeper_ensemble.{label}.write_gap", gap)
    assert writer.missing_on(leader) == []
    assert gap < WRITE_GAP_BOUND, f"writes stalled for {gap:.2f}s after kill -9 of {victim.name}"
    assert c.leader() is leader
    after = placement(ens, c)
    for m in c.members:  # every member kept its session (no new one: nothing expired)
        assert after[m.name][0] == before[m.name][0], f"{m.name} got a new ZooKeeper session"
        assert after[m.name][1] is not victim
    znode = read_znode(ens, "leader")
    assert znode is not None and znode[0].decode() == leader.name and znode[1].ephemeralOwner == leader_sid
    for m in c.members:
        new_log = m.log()[offsets[m.name]:]
        for line in ("promoted self", "demoting self", "acquired session lock", "Traceback"):
            assert line not in new_log, f"{m.name} logged {line!r} after the kill:\n{new_log[-3000:]}"
        if m is not leader:
            assert m.is_streaming_replica(), f"{m.name} no longer streams"


def test_cluster_on_the_ensemble(ensemble: ZooKeeperEnsemble, cluster: TestCluster) -> None:
    leader = cluster.wait_healthy(timeout=150)
    where = placement(ensemble, cluster)
    print("\nplacement:", {name: server.name for name, (_sid, server) in where.items()})
    assert len({sid for sid, _server in where.values()}) == 3  # one session per daemon
    for server in ensemble.servers:  # each member's session has the ttl as its timeout
        for sid, timeout in server.sessions().items():
            if sid in {s for s, _ in where.values()}:
                assert timeout == TTL * 1000
    assert read_znode(ensemble, "leader")[0].decode() == leader.name  # type: ignore[index]


def test_kill9_of_a_zookeeper_follower(ensemble: ZooKeeperEnsemble, cluster: TestCluster) -> None:
    ensemble.leader()
    leader = cluster.wait_healthy()
    where = placement(ensemble, cluster)
    # the follower the pg_ha leader is connected to, else the one with the most members
    victim = max(ensemble.followers(), key=lambda s: (where[leader.name][1] is s,
                                                      sum(1 for _sid, server in where.values() if server is s)))
    survive_kill(ensemble, cluster, victim, "zk_follower")


def test_kill9_of_the_zookeeper_leader(ensemble: ZooKeeperEnsemble, cluster: TestCluster) -> None:
    for server in ensemble.servers:  # the follower killed before comes back first (quorum 2 of 3)
        if not server.running:
            ensemble.restart(server)
    victim = ensemble.leader()
    survive_kill(ensemble, cluster, victim, "zk_leader")
    # pg_hactl given all three servers, the dead one first: it finds a live one
    url = "zookeeper://" + ",".join([victim.host_port, *(s.host_port for s in ensemble.running())])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(cluster.root), "LANG": "C.UTF-8"}
    result = subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", "--dcs-url", url, "list", SCOPE, "-f", "json"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stderr == "", result
    roles = {m["Member"]: m["Role"] for m in json.loads(result.stdout)}
    assert roles[cluster.wait_leader().name] == "Leader" and len(roles) == 3


def test_kill9_of_the_server_the_pg_ha_leader_uses(ensemble: ZooKeeperEnsemble, cluster: TestCluster) -> None:
    """Whatever its role: the lock holder's own connection is cut, every run."""
    for server in ensemble.servers:
        if not server.running:
            ensemble.restart(server)
    leader = cluster.wait_healthy()
    victim = placement(ensemble, cluster)[leader.name][1]
    survive_kill(ensemble, cluster, victim, "pg_ha_leaders_server")


def test_killed_server_rejoins_the_ensemble(ensemble: ZooKeeperEnsemble, cluster: TestCluster) -> None:
    for server in ensemble.servers:
        if not server.running:
            ensemble.restart(server)
    assert sorted(s.mode() or "" for s in ensemble.servers).count("leader") == 1
    leader = cluster.wait_healthy()
    assert read_znode(ensemble, "leader")[0].decode() == leader.name  # type: ignore[index]
