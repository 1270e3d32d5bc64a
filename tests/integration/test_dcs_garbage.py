"""Hand-edited garbage in real etcd under a running 2-member cluster (real PostgreSQL 15):
no crash, no crash loop, a clear log line, no promotion of the wrong node.

Keys are written the way an operator with etcdctl would (plain puts, no lease)."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster
from tests.harness.common import wait_for
from tests.harness.etcd import b64, keys, put, v3_post

pytestmark = pytest.mark.integration
SCOPE = "garbled"
PREFIX = f"/service/{SCOPE}/"


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, SCOPE, size=2, healthy=180) as c:
        yield c


def etcd_value(c: TestCluster, key: str) -> str | None:
    return keys(c.etcd, "etcd3", PREFIX).get(PREFIX + key)  # type: ignore[attr-defined]


def write(c: TestCluster, key: str, value: str | bytes) -> None:
    put(c.etcd, "etcd3", PREFIX + key, value)  # type: ignore[attr-defined]


def delete(c: TestCluster, key: str) -> None:
    v3_post(c.etcd, "/v3/kv/deleterange", {"key": b64(PREFIX + key)})  # type: ignore[attr-defined]


def alive(c: TestCluster) -> None:
    for m in c.members:
        assert m.running, f"{m.name} exited:\n{m.log()[-3000:]}"
        assert m.log().count("REST API listening") == 1, f"{m.name} restarted"
        assert "Traceback" not in m.log(), f"{m.name} logged a traceback"


def logged(member: Member, text: str, timeout: float = 30) -> None:
    wait_for(lambda: text in member.log(), timeout, f"{member.name} to log {text!r}")


@pytest.mark.parametrize("key, value", [
    ("config", "{this is not json"),
    ("config", '["ttl", 30]'),
    ("failover", "garbage{"),
    ("sync", "\x00\x01 binary garbage"),
    ("failover", b"\xff\xfe not UTF-8 {"),
    ("members/ghost", "<<not a member>>"),
    ("history", '{"not": "a list"}'),
])
def test_garbage_value_is_ignored_with_one_clear_line(cluster: TestCluster, key: str, value: str | bytes) -> None:
    leader = cluster.wait_leader(60)
    original = etcd_value(cluster, key)
    write(cluster, key, value)
    try:
        for m in cluster.members:
            logged(m, f"ignoring the DCS key {key}: its value")
        # a few more HA cycles: nothing changes hands, nobody crashes
        cycles = leader.log().count("the leader with the lock")
        wait_for(lambda: leader.log().count("the leader with the lock") >= cycles + 3, 30, "three more HA cycles")
        assert cluster.leader() is leader
        alive(cluster)
        for m in cluster.members:
            assert m.log().count(f"ignoring the DCS key {key}: its value") <= 2  # once per write, not per cycle
    finally:
        if original is None:
            delete(cluster, key)
        else:
            write(cluster, key, original)


def test_config_with_wrong_types_keeps_the_current_settings(cluster: TestCluster) -> None:
    leader = cluster.wait_leader(60)
    original = etcd_value(cluster, "config")
    assert original is not None
    bad = {**json.loads(original), "ttl": "forever", "loop_wait": [1]}
    write(cluster, "config", json.dumps(bad))
    try:
        for m in cluster.members:
            logged(m, "ignoring invalid cluster config in the DCS: ")
        cycles = leader.log().count("the leader with the lock")
        wait_for(lambda: leader.log().count("the leader with the lock") >= cycles + 3, 30, "three more HA cycles")
        assert cluster.leader() is leader
        alive(cluster)
    finally:
        write(cluster, "config", original)


def test_own_member_key_garbage_is_rewritten(cluster: TestCluster) -> None:
    cluster.wait_leader(60)
    for m in cluster.members:
        write(cluster, f"members/{m.name}", "garbage")
    for m in cluster.members:
        wait_for(lambda m=m: (etcd_value(cluster, f"members/{m.name}") or "").startswith("{"), 30,
                 f"{m.name} to rewrite its member key")
        assert json.loads(etcd_value(cluster, f"members/{m.name}") or "")["conn_url"]
    cluster.wait_healthy(60)
    alive(cluster)


def test_initialize_garbage_is_not_fatal_and_the_leader_repairs_it(cluster: TestCluster) -> None:
    leader = cluster.wait_leader(60)
    sysid = etcd_value(cluster, "initialize")
    assert sysid and sysid.isdigit()
    write(cluster, "initialize", "garbage-sysid")
    logged(leader, "the initialize key holds no system identifier ('garbage-sysid'): rewriting it with " + sysid)
    wait_for(lambda: etcd_value(cluster, "initialize") == sysid, 30, "the leader to restore the initialize key")
    assert cluster.leader() is leader
    alive(cluster)


def test_leader_key_garbage_demotes_and_promotes_nobody(cluster: TestCluster) -> None:
    leader = cluster.wait_leader(60)
    replica = next(m for m in cluster.members if m is not leader)
    write(cluster, "leader", '{"garbage')  # no lease: it never expires by itself
    try:
        logged(leader, "demoting self because I do not have the lock and I was a leader")
        wait_for(lambda: not leader.is_primary(), 60, f"{leader.name} to stop being a primary")
        # while the garbage holds the lock, for three more HA cycles of each member: no primary
        owner = 'Lock owner: {"garbage'
        seen = {m.name: m.log().count(owner) for m in cluster.members}

        def three_cycles_without_primary() -> bool:
            assert not leader.is_primary() and not replica.is_primary(), "a member promoted"
            return all(m.log().count(owner) >= seen[m.name] + 3 for m in cluster.members)
        wait_for(three_cycles_without_primary, 60, "three HA cycles of each member under the garbage lock")
        alive(cluster)
    finally:
        delete(cluster, "leader")
    new = cluster.wait_healthy(120)  # the lock is free again: a normal leader race
    assert new.name in (leader.name, replica.name)
    alive(cluster)
