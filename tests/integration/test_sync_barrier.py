"""The sync barrier on a real cluster (#12 item 3, core/sync.py ready_standbys): a standby
that replaces the synchronous one is named in the sync key only once it has the primary's
flush position of the change. PostgreSQL calls it `sync` the moment it is listed; named then,
a failover could promote it without the commits the old synchronous standby acknowledged."""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest

from tests.harness.cluster import TestCluster, running_cluster
from tests.harness.common import wait_for
from tests.harness.etcd import scope_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "syncbarrier", dynamic={"synchronous_mode": True}, healthy=150) as c:
        yield c


def key_standbys(c: TestCluster) -> tuple[str, ...]:
    raw = scope_key(c.etcd, c.scope, "sync")  # type: ignore[attr-defined]
    value = json.loads(raw) if raw else {}
    return tuple(n for n in (value.get("sync_standby") or "").split(",") if n)


def test_a_lagging_replacement_is_named_synchronous_only_once_it_caught_up(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    sync_name = wait_for(lambda: (key_standbys(cluster) or (None,))[0], 60, "a synchronous standby in the key")
    standby = cluster.member(sync_name)
    other = next(m for m in cluster.members if m.name not in (leader.name, sync_name))
    receiver = other.sql("SELECT pid FROM pg_stat_wal_receiver")[0][0]
    os.kill(receiver, signal.SIGSTOP)  # the other replica stays connected but receives nothing
    try:
        leader.sql("CREATE TABLE barrier_probe (x int); INSERT INTO barrier_probe SELECT generate_series(1, 1000)")
        # acknowledged by the synchronous standby alone; now it goes away
        standby.stop()
        wait_for(lambda: f'"{other.name}"' in leader.sql("SHOW synchronous_standby_names")[0][0], 60,
                 f"{other.name} listed in synchronous_standby_names")
        wait_for(lambda: (other.name, "sync") in leader.sql("SELECT application_name, sync_state "
                                                             "FROM pg_stat_replication"),
                 30, f"PostgreSQL to call {other.name} synchronous")
        named: list[tuple[str, ...]] = []

        def held_back() -> bool:
            if other.name in (now := key_standbys(cluster)):
                named.append(now)
            return bool(named) or f"{other.name} is listed as synchronous but has not reached" in leader.log()

        wait_for(held_back, 30, "the leader to hold the lagging standby back")
        assert not named, f"{other.name} named synchronous while it lacked acknowledged commits: {named}"
        lag = leader.sql("SELECT pg_current_wal_flush_lsn() - flush_lsn FROM pg_stat_replication "
                         "WHERE application_name = %s", (other.name,))[0][0]
        assert lag > 0, "the replacement was not behind: the test shows nothing"
        assert other.name not in key_standbys(cluster)
    finally:
        os.kill(receiver, signal.SIGCONT)
    wait_for(lambda: key_standbys(cluster) == (other.name,), 60, f"{other.name} in the sync key once caught up")
    assert other.sql("SELECT count(*) FROM barrier_probe")[0][0] == 1000
    standby.start()
    cluster.wait_streaming([m for m in cluster.members if m is not leader])
