"""A real 3-member pg_ha cluster on a real ZooKeeper (Debian's 3.8, standalone), members run by
Debian's python3 with python3-kazoo: bootstrap, the znode layout, failover on kill -9 of the
primary, rejoin, switchover. In order on one cluster; waits have deadlines."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import Member, TestCluster, wait_writable
from tests.harness.common import wait_for
from tests.harness.zookeeper import ZooKeeperServer, znodes

pytestmark = pytest.mark.integration
TIMINGS = Path(__file__).resolve().parents[2] / "tests" / "output" / "timings.json"
SCOPE = "batmanzk"
PREFIX = f"/service/{SCOPE}/"


def record(name: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[name] = round(seconds, 2)
    TIMINGS.write_text(json.dumps(data, indent=2, sort_keys=True))
    print(f"\nTIMING {name}: {seconds:.2f}s")


@pytest.fixture(scope="module")
def cluster(zk_server: ZooKeeperServer) -> Iterator[TestCluster]:
    c = TestCluster(zk_server.host_port, scope=SCOPE, dcs_kind="zookeeper")
    c.zk = zk_server  # type: ignore[attr-defined]
    try:
        c.start()
        yield c
    finally:
        print(c.logs()[-20000:])
        c.cleanup()


def others(c: TestCluster, leader: Member) -> list[Member]:
    return [m for m in c.members if m is not leader]


def test_bootstrap_one_leader_two_streaming_replicas(cluster: TestCluster) -> None:
    started = time.monotonic()
    leader = cluster.wait_healthy(timeout=150)
    record("zookeeper.bootstrap_to_healthy", time.monotonic() - started)
    inits = [m.name for m in cluster.members if "initialized a new cluster" in m.log()]
    assert inits == [leader.name], "exactly one member ran initdb and it is the leader"
    clones = [m.name for m in cluster.members if "trying to bootstrap from leader" in m.log()]
    assert sorted(clones) == sorted(m.name for m in others(cluster, leader))
    assert f"no action. I am ({leader.name}), the leader with the lock" in leader.log()
    for m in cluster.members:
        assert "Traceback" not in m.log(), m.log()[-3000:]


def test_znode_layout(cluster: TestCluster) -> None:
    """Patroni's layout, as zkCli shows it: leader and members ephemeral, the rest persistent."""
    leader = cluster.wait_leader()
    zk = cluster.zk  # type: ignore[attr-defined]
    nodes = wait_for(lambda: (n := znodes(zk, PREFIX)) and PREFIX + "optime/leader" in n
                     and len([k for k in n if k.startswith(PREFIX + "members/")]) == 3 and n,
                     30, "the optime and three member znodes")
    for key in ("config", "initialize", "leader", "optime/leader"):
        assert PREFIX + key in nodes, sorted(nodes)
    value, stat = nodes[PREFIX + "leader"]
    assert value == leader.name and stat.ephemeralOwner != 0
    assert nodes[f"{PREFIX}members/{leader.name}"][1].ephemeralOwner == stat.ephemeralOwner
    owners = {nodes[f"{PREFIX}members/{m.name}"][1].ephemeralOwner for m in cluster.members}
    assert len(owners) == 3 and 0 not in owners  # one session per daemon
    assert zk.sessions()[stat.ephemeralOwner] == 10000  # the session timeout is the ttl
    for key in ("config", "initialize", "optime/leader"):
        assert nodes[PREFIX + key][1].ephemeralOwner == 0
    sysid = leader.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    assert nodes[PREFIX + "initialize"][0] == sysid
    member = json.loads(nodes[f"{PREFIX}members/{leader.name}"][0])
    assert member["role"] == "primary" and member["state"] == "running"
    assert json.loads(nodes[PREFIX + "config"][0])["ttl"] == 10


def test_failover_on_kill9_of_leader(cluster: TestCluster) -> None:
    old = cluster.wait_healthy()
    old.sql("CREATE TABLE before_failover AS SELECT 1 AS x")
    survivors = others(cluster, old)
    for m in survivors:
        wait_for(lambda m=m: m.sql("SELECT to_regclass('before_failover') IS NOT NULL")[0][0], 30, "replicated")
    killed_at = time.monotonic()
    old.kill9(postmaster=True)
    new = cluster.wait_leader(timeout=60, exclude=(old.name,))
    unavailable = time.monotonic() - killed_at + wait_writable(new, 30)
    record("zookeeper.failover_kill9_write_unavailability", unavailable)
    assert new.sql("SELECT x FROM before_failover")[0][0] == 1
    assert "promoted self to leader by acquiring session lock" in new.log()
    follower = next(m for m in survivors if m is not new)
    wait_for(follower.is_streaming_replica, 60, f"{follower.name} to follow the new leader")
    new.sql("CREATE TABLE after_failover AS SELECT 2 AS x")
    wait_for(lambda: follower.sql("SELECT to_regclass('after_failover') IS NOT NULL")[0][0], 30, "follows")


def test_killed_node_rejoins_as_replica(cluster: TestCluster) -> None:
    stopped = next(m for m in cluster.members if not m.running)
    leader = cluster.wait_leader()
    stopped.start()
    wait_for(stopped.is_streaming_replica, 90, f"{stopped.name} to rejoin as a streaming replica")
    wait_for(lambda: stopped.sql("SELECT to_regclass('after_failover') IS NOT NULL")[0][0], 30, "caught up")
    assert leader.is_primary()


def test_switchover_to_named_candidate(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    candidate = others(cluster, leader)[0]
    started = time.monotonic()
    code, body = leader.api("/switchover", method="POST", body={"leader": leader.name, "candidate": candidate.name},
                            timeout=90)
    assert code == 200, body
    assert candidate.name in str(body)
    unavailable = time.monotonic() - started + wait_writable(candidate, 30)
    record("zookeeper.switchover_request_to_writable", unavailable)
    assert cluster.wait_leader(timeout=10).name == candidate.name
    wait_for(leader.is_streaming_replica, 60, f"old leader {leader.name} to stream from {candidate.name}")
    assert PREFIX + "failover" not in znodes(cluster.zk, PREFIX)  # type: ignore[attr-defined]
