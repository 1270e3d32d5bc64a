"""A real 3-member pg_ha cluster on a real etcd, once per DCS backend.

The scenarios run in order on one cluster per backend (bootstrap is what the later ones
start from); each asserts its own outcome and waits with deadlines, never fixed sleeps.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster, wait_writable
from tests.harness.common import wait_for

pytestmark = pytest.mark.integration
TIMINGS = Path(__file__).resolve().parents[2] / "tests" / "output" / "timings.json"


def record(name: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[name] = round(seconds, 2)
    TIMINGS.write_text(json.dumps(data, indent=2, sort_keys=True))
    print(f"\nTIMING {name}: {seconds:.2f}s")


def etcd_keys(etcd_server, kind: str, prefix: str) -> dict[str, str]:
    """The raw keys under prefix, read with etcdctl as an operator would."""
    env = dict(os.environ, ETCDCTL_API="3" if kind == "etcd3" else "2")
    if kind == "etcd3":
        out = subprocess.run(["etcdctl", f"--endpoints={etcd_server.client_url}", "get", "--prefix", prefix],
                             env=env, capture_output=True, text=True, check=True, timeout=10).stdout.splitlines()
        return dict(zip(out[0::2], out[1::2], strict=False))
    out = subprocess.run(["etcdctl", f"--endpoints={etcd_server.client_url}", "ls", "--recursive", "-p", prefix],
                         env=env, capture_output=True, text=True, check=True, timeout=10).stdout.split()
    keys = {}
    for key in out:
        if not key.endswith("/"):
            keys[key] = subprocess.run(["etcdctl", f"--endpoints={etcd_server.client_url}", "get", key], env=env,
                                       capture_output=True, text=True, timeout=10).stdout.strip()
    return keys


@pytest.fixture(scope="module", params=["etcd3", "etcd"])
def cluster(request, etcd_server) -> Iterator[TestCluster]:
    kind = request.param
    with running_cluster(etcd_server, f"batman{kind}", dcs_kind=kind) as c:
        yield c


def others(c: TestCluster, leader: Member) -> list[Member]:
    return [m for m in c.members if m is not leader]


def test_bootstrap_one_leader_two_streaming_replicas(cluster: TestCluster) -> None:
    started = time.monotonic()
    leader = cluster.wait_healthy(timeout=150)
    record(f"{cluster.dcs_kind}.bootstrap_to_healthy", time.monotonic() - started)
    inits = [m.name for m in cluster.members if "initialized a new cluster" in m.log()]
    assert inits == [leader.name], "exactly one member ran initdb and it is the leader"
    clones = [m.name for m in cluster.members if "trying to bootstrap from leader" in m.log()]
    assert sorted(clones) == sorted(m.name for m in others(cluster, leader))
    assert f"no action. I am ({leader.name}), the leader with the lock" in leader.log()
    replica = others(cluster, leader)[0]
    assert f"no action. I am ({replica.name}), a secondary, and following a leader ({leader.name})" in replica.log()
    # one physical slot per replica on the leader, all active
    slots = wait_for(lambda: (rows := leader.sql(
        "SELECT slot_name FROM pg_replication_slots WHERE slot_type='physical' AND active")) and len(rows) == 2
        and rows, 30, "two active physical slots")
    assert sorted(r[0] for r in slots) == sorted(m.name.replace("-", "_") for m in others(cluster, leader))


def test_dcs_layout(cluster: TestCluster) -> None:
    leader = cluster.wait_leader()
    prefix = f"/service/{cluster.scope}/"
    keys = wait_for(lambda: (k := etcd_keys(cluster.etcd, cluster.dcs_kind, prefix))  # type: ignore[attr-defined]
                    and f"{prefix}optime/leader" in k and k, 20, "optime key")
    for key in ("config", "initialize", "leader", "optime/leader"):
        assert prefix + key in keys, sorted(keys)
    for m in cluster.members:
        assert f"{prefix}members/{m.name}" in keys
    assert keys[prefix + "leader"] == leader.name
    sysid = leader.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    assert keys[prefix + "initialize"] == sysid
    member = json.loads(keys[f"{prefix}members/{leader.name}"])
    assert member["role"] == "primary" and member["state"] == "running"
    assert member["conn_url"] == f"postgres://127.0.0.1:{leader.pg_port}/postgres"
    assert member["api_url"] == f"http://127.0.0.1:{leader.api_port}/patroni"
    assert isinstance(member["xlog_location"], int) and member["timeline"] == 1
    config = json.loads(keys[prefix + "config"])
    assert config["ttl"] == 10 and config["loop_wait"] == 2


def test_table_written_on_leader_reaches_replicas(cluster: TestCluster) -> None:
    leader = cluster.wait_leader()
    leader.sql("CREATE TABLE replicated(id int); INSERT INTO replicated SELECT generate_series(1, 1000)")
    for m in others(cluster, leader):
        wait_for(lambda m=m: m.sql("SELECT count(*) FROM replicated")[0][0] == 1000, 30, f"rows on {m.name}")


def test_rest_health_endpoints(cluster: TestCluster) -> None:
    leader = cluster.wait_leader()
    replica = others(cluster, leader)[0]
    assert leader.api("/primary")[0] == 200 and replica.api("/primary")[0] == 503
    assert replica.api("/replica")[0] == 200 and leader.api("/replica")[0] == 503
    assert leader.api("/primary", method="OPTIONS")[0] == 200
    assert replica.api("/health")[0] == 200 and replica.api("/read-only")[0] == 200
    status = leader.api("/patroni")[1]
    assert status["role"] == "primary" and status["state"] == "running"
    assert status["patroni"]["scope"] == cluster.scope and status["database_system_identifier"]


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
    record(f"{cluster.dcs_kind}.failover_kill9_write_unavailability", unavailable)
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


def test_split_brain_old_primary_is_rewound(cluster: TestCluster) -> None:
    """The seeds' demo: the leader's daemon dies, its PostgreSQL keeps running as an
    unmanaged primary and takes a write; a replica is promoted; the old daemon comes
    back, demotes, rewinds, and the stray table is gone."""
    old = cluster.wait_healthy()
    old.kill9(postmaster=False)  # daemon only: PostgreSQL keeps running read-write
    new = cluster.wait_leader(timeout=60, exclude=(old.name,))
    old.sql("CREATE TABLE splitbrain()")  # diverge the unmanaged primary
    old.start()
    wait_for(old.is_streaming_replica, 120, f"{old.name} to rewind and stream from {new.name}")
    log = old.log()
    assert "demoting self because I do not have the lock and I was a leader" in log
    assert "running pg_rewind from" in log
    assert old.sql("SELECT to_regclass('splitbrain') IS NULL")[0][0], "the stray table is gone"
    new.sql("CREATE TABLE after_rewind AS SELECT 3 AS x")
    wait_for(lambda: old.sql("SELECT to_regclass('after_rewind') IS NOT NULL")[0][0], 30, "streams after rewind")


def test_switchover_to_named_candidate(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    candidate = others(cluster, leader)[0]
    started = time.monotonic()
    code, body = leader.api("/switchover", method="POST", body={"leader": leader.name, "candidate": candidate.name},
                            timeout=90)
    assert code == 200, body
    assert candidate.name in str(body)
    unavailable = time.monotonic() - started + wait_writable(candidate, 30)
    record(f"{cluster.dcs_kind}.switchover_request_to_writable", unavailable)
    assert cluster.wait_leader(timeout=10).name == candidate.name
    wait_for(leader.is_streaming_replica, 60, f"old leader {leader.name} to stream from {candidate.name}")


def test_switchover_errors(cluster: TestCluster) -> None:
    leader = cluster.wait_leader()
    replica = others(cluster, leader)[0]
    code, _ = leader.api("/switchover", method="POST", body={"leader": replica.name, "candidate": leader.name})
    assert code == 412
    code, _ = leader.api("/switchover", method="POST", body={"leader": leader.name, "candidate": "nobody"})
    assert code == 412
    assert cluster.wait_leader().name == leader.name


def test_patch_config_reload_and_pending_restart(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    code, body = leader.api("/config", method="PATCH", body={"postgresql": {"parameters": {"work_mem": "8MB"}}})
    assert code == 200, body
    for m in cluster.members:
        wait_for(lambda m=m: m.sql("SHOW work_mem")[0][0] == "8MB", 30, f"work_mem on {m.name}")
    code, body = leader.api("/config", method="PATCH", body={"postgresql": {"parameters": {"max_connections": 101}}})
    assert code == 200, body
    for m in cluster.members:
        wait_for(lambda m=m: (m.status() or {}).get("pending_restart") is True, 30, f"pending_restart on {m.name}")
        assert m.sql("SHOW max_connections")[0][0] == "100"
    code, body = leader.api("/config", method="PATCH", body={"postgresql": {"parameters": {"max_connections": None}}})
    assert code == 200 and "max_connections" not in body["postgresql"]["parameters"]
    for m in cluster.members:
        wait_for(lambda m=m: "pending_restart" not in (m.status() or {"pending_restart": 1}), 30,
                 f"pending_restart cleared on {m.name}")


def test_a_lost_config_key_comes_back_with_the_edits(cluster: TestCluster) -> None:
    """As Patroni: each member caches the dynamic config in PGDATA/patroni.dynamic.json, and a
    leader that finds the `config` key gone writes back what it runs with, not bootstrap.dcs."""
    leader = cluster.wait_healthy()
    code, body = leader.api("/config", method="PATCH", body={"maximum_lag_on_failover": 3333333})
    assert code == 200, body

    def cached(m: Member) -> dict:
        try:
            return json.loads((m.data_dir / "patroni.dynamic.json").read_text())
        except (OSError, ValueError):
            return {}

    for m in cluster.members:
        wait_for(lambda m=m: cached(m).get("maximum_lag_on_failover") == 3333333, 30, f"the cache of {m.name}")
    key = f"/service/{cluster.scope}/config"
    env = dict(os.environ, ETCDCTL_API="3" if cluster.dcs_kind == "etcd3" else "2")
    verb = "del" if cluster.dcs_kind == "etcd3" else "rm"
    subprocess.run(["etcdctl", f"--endpoints={cluster.etcd.client_url}", verb, key],  # type: ignore[attr-defined]
                   env=env, check=True, capture_output=True, timeout=10)
    restored = wait_for(lambda: (c := etcd_keys(cluster.etcd, cluster.dcs_kind, key).get(key))  # type: ignore[attr-defined]
                        and json.loads(c), 30, "the leader to write the config key back")
    assert restored["maximum_lag_on_failover"] == 3333333 and restored["ttl"] == 10, restored
    code, body = leader.api("/config", method="PATCH", body={"maximum_lag_on_failover": None})
    assert code == 200, body


def test_second_cluster_on_same_etcd_does_not_interfere(cluster: TestCluster) -> None:
    leader = cluster.wait_leader()
    other = TestCluster(cluster.etcd_hostport, scope=f"robin{cluster.dcs_kind}", size=1, dcs_kind=cluster.dcs_kind)
    try:
        other.start()
        other_leader = other.wait_leader(timeout=90)
        assert other_leader.sql("SELECT system_identifier FROM pg_control_system()") != \
            leader.sql("SELECT system_identifier FROM pg_control_system()")
        assert cluster.wait_leader().name == leader.name
        names = {m["name"] for m in leader.api("/cluster")[1]["members"]}
        assert names == {m.name for m in cluster.members}
    finally:
        other.cleanup()
