"""Synchronous replication (strict) on a real 3-member cluster: the leader picks a
synchronous standby and publishes it in the `sync` key; only that standby may take
over, and it has every acknowledged commit; without a standby, commits wait."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.harness.cluster import TestCluster, running_cluster
from tests.harness.common import wait_for
from tests.harness.etcd import scope_key
from tests.harness.writes import AckedWriter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "syncstrict",
                         dynamic={"synchronous_mode": True, "synchronous_mode_strict": True}) as c:
        yield c


def sync_key(c: TestCluster) -> dict | None:
    raw = scope_key(c.etcd, c.scope, "sync")  # type: ignore[attr-defined]
    return json.loads(raw) if raw else None


def sync_standby(c: TestCluster) -> str | None:
    key = sync_key(c)
    leader = c.leader()
    if not key or leader is None or key.get("leader") != leader.name or not key.get("sync_standby"):
        return None
    return str(key["sync_standby"])


def test_leader_publishes_one_synchronous_standby(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    name = wait_for(lambda: sync_standby(cluster), 60, "a synchronous standby in the sync key")
    standby = cluster.member(name)
    other = next(m for m in cluster.members if m.name not in (leader.name, name))
    # health answers come from each member's last cycle: wait for them to see the key
    wait_for(lambda: standby.api("/sync")[0] == 200 and other.api("/async")[0] == 200, 30, "/sync and /async")
    assert other.api("/sync")[0] == 503 and standby.api("/async")[0] == 503
    assert name in leader.sql("SHOW synchronous_standby_names")[0][0]
    rows = leader.sql("SELECT application_name, sync_state FROM pg_stat_replication")
    assert (name, "sync") in rows


def test_failover_goes_to_the_sync_standby_and_loses_no_acknowledged_write(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    standby_name = wait_for(lambda: sync_standby(cluster), 60, "a synchronous standby")
    with AckedWriter(leader, "acked") as writer:
        wait_for(lambda: len(writer.acked) > 50, 30, "acknowledged writes before the crash")
        leader.kill9(postmaster=True)
        new = cluster.wait_leader(timeout=60, exclude=(leader.name,))
    assert new.name == standby_name, "only the synchronous standby may take over"
    missing = writer.missing_on(new)
    print(f"\nacknowledged {len(writer.acked)} writes, missing after failover: {len(missing)}")
    assert missing == []


def test_strict_mode_blocks_commits_without_a_standby(cluster: TestCluster) -> None:
    leader = cluster.wait_leader()
    replicas = [m for m in cluster.members if m is not leader and m.running]
    for m in replicas:
        m.stop()
    wait_for(lambda: leader.sql("SHOW synchronous_standby_names")[0][0] == "*", 60, "synchronous_standby_names='*'")
    done = threading.Event()

    def insert() -> None:
        leader.sql("CREATE TABLE IF NOT EXISTS strict_probe(x int); INSERT INTO strict_probe VALUES (1)")
        done.set()

    threading.Thread(target=insert, daemon=True).start()
    wait_for(lambda: leader.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0] >= 1,
             30, "the commit to wait for a synchronous standby")
    assert not done.is_set(), "the commit was acknowledged without any standby"
    replicas[0].start()
    wait_for(done.is_set, 120, "the commit to be acknowledged once a standby is back")
    assert replicas[0].sql("SELECT count(*) FROM strict_probe")[0][0] == 1
