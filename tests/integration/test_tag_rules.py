"""The leader race and the sync planner on real members: the `nosync` tag keeps a replica out of
synchronous replication (and `?tag_k=v` health checks select by tag); `maximum_lag_on_failover`
keeps a replica that lags too far behind the last known leader position out of the race."""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.harness.cluster import TestCluster, running_cluster, wait_writable
from tests.harness.common import wait_for
from tests.harness.etcd import keys as etcd_keys

pytestmark = pytest.mark.integration
MAX_LAG = 1024 * 1024


def sync_standby(c: TestCluster) -> str | None:
    raw = etcd_keys(c.etcd, "etcd3", f"/service/{c.scope}/").get(f"/service/{c.scope}/sync")  # type: ignore[attr-defined]
    key = json.loads(raw) if raw else {}
    return key.get("sync_standby") or None


def leader_optime(c: TestCluster) -> int:
    """The last leader WAL position the DCS holds (optime/leader, or the status key)."""
    found = etcd_keys(c.etcd, "etcd3", f"/service/{c.scope}/")  # type: ignore[attr-defined]
    values = [int(found.get(f"/service/{c.scope}/optime/leader") or 0)]
    status = found.get(f"/service/{c.scope}/status")
    if status:
        values.append(int(json.loads(status).get("optime") or 0))
    return max(values)


@pytest.fixture
def nosync_cluster(etcd_server) -> Iterator[TestCluster]:
    scope = "nosynctag"
    with running_cluster(etcd_server, scope, start=False, dynamic={"synchronous_mode": True},
                         tags={f"{scope}-pg1": {"nosync": True}}) as c:
        yield c


def test_nosync_replica_is_never_the_synchronous_standby(nosync_cluster: TestCluster) -> None:
    c = nosync_cluster
    pg0, pg1, pg2 = c.members
    pg0.start()
    assert c.wait_leader(90).name == pg0.name
    pg1.start()
    pg2.start()
    c.wait_streaming([pg1, pg2])
    wait_for(lambda: sync_standby(c) == pg2.name, 60, "pg2 (not the nosync pg1) as synchronous standby")
    wait_for(lambda: pg1.api("/async")[0] == 200 and pg2.api("/sync")[0] == 200, 30, "/async on pg1, /sync on pg2")
    assert pg1.api("/sync")[0] == 503
    # health checks filtered by tag: only the member carrying the tag answers 200
    assert pg1.api("/replica?tag_nosync=true")[0] == 200
    assert pg2.api("/replica?tag_nosync=true")[0] == 503
    pg2.stop()
    wait_for(lambda: sync_standby(c) is None, 60, "the sync key to drop the stopped pg2")
    deadline = time.monotonic() + 3 * 2 + 2  # three more loops: pg1 must still not be picked
    while time.monotonic() < deadline:
        assert sync_standby(c) != pg1.name, "the nosync member became the synchronous standby"
        assert pg1.name not in pg0.sql("SHOW synchronous_standby_names")[0][0]
        time.sleep(0.2)
    pg0.sql("CREATE TABLE IF NOT EXISTS nosync_probe (x int)")  # not strict: commits go on


@pytest.fixture
def lag_cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "laglimit", size=2, start=False,
                         dynamic={"maximum_lag_on_failover": MAX_LAG}) as c:
        stopped: list[int] = []
        c.stopped_pids = stopped  # type: ignore[attr-defined]
        try:
            yield c
        finally:
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass


def test_replica_lagging_beyond_maximum_lag_does_not_promote(lag_cluster: TestCluster) -> None:
    c = lag_cluster
    pg0, pg1 = c.members
    pg0.start()
    assert c.wait_leader(90).name == pg0.name
    pg1.start()
    c.wait_streaming([pg1])
    # freeze pg1's WAL receiver (a real stall of its replication), then write well past the limit
    receiver = wait_for(lambda: (pg1.sql("SELECT pid FROM pg_stat_wal_receiver") or [[None]])[0][0], 30,
                        "pg1's WAL receiver")
    os.kill(receiver, signal.SIGSTOP)
    c.stopped_pids.append(receiver)  # type: ignore[attr-defined]
    received = int(pg1.sql("SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')")[0][0])
    pg0.sql("CREATE TABLE lag_filler AS SELECT repeat('x', 1000) AS pad FROM generate_series(1, 8000)")
    target = int(pg0.sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")[0][0])
    assert target - received > 4 * MAX_LAG
    wait_for(lambda: leader_optime(c) >= target, 30, "the leader to publish its new WAL position")
    pg0.kill9()
    wait_for(lambda: "by more than maximum_lag_on_failover" in pg1.log(), 60, "pg1 to refuse the race (lag)")
    deadline = time.monotonic() + 12  # more than a ttl (10 s) after the refusal: still no promotion
    while time.monotonic() < deadline:
        assert not pg1.is_primary() and c.leader() is None, "a replica beyond maximum_lag_on_failover promoted"
        time.sleep(0.5)
    # the former leader, which has every write, comes back and leads again; pg1 catches up
    os.kill(receiver, signal.SIGCONT)
    pg0.start()
    assert c.wait_leader(90).name == pg0.name
    wait_writable(pg0, 60)
    wait_for(lambda: pg1.sql("SELECT to_regclass('lag_filler') IS NOT NULL")[0][0], 120, "pg1 to catch up")


@pytest.fixture
def timeline_cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "tlcheck", start=False,
                         dynamic={"check_timeline": True, "maximum_lag_on_failover": 64 * MAX_LAG}) as c:
        yield c


def history_lines(c: TestCluster) -> list:
    raw = etcd_keys(c.etcd, "etcd3", f"/service/{c.scope}/").get(f"/service/{c.scope}/history")  # type: ignore[attr-defined]
    return json.loads(raw) if raw else []


def test_check_timeline_keeps_a_member_on_an_old_timeline_out_of_the_race(timeline_cluster: TestCluster) -> None:
    c = timeline_cluster
    pg0, pg1, pg2 = c.members
    pg0.start()
    assert c.wait_leader(90).name == pg0.name
    pg1.start()
    pg2.start()
    c.wait_streaming([pg1, pg2])
    pg2.stop()  # pg2 keeps timeline 1 on disk
    code, body = pg0.api("/switchover", method="POST", body={"leader": pg0.name, "candidate": pg1.name}, timeout=90)
    assert code == 200, body
    assert c.wait_leader(60).name == pg1.name
    wait_for(lambda: len(history_lines(c)) >= 1, 30, "the history key to record timeline 1")
    pg1.kill9()
    pg0.kill9()
    pg2.start()  # alone, with every write it had, but on the timeline before the switchover
    wait_for(lambda: "is behind last known cluster timeline 2" in pg2.log(), 90,
             "pg2 to refuse the race because of its timeline")
    deadline = time.monotonic() + 12  # more than a ttl: still nobody promoted
    while time.monotonic() < deadline:
        assert not pg2.is_primary(), "a member on an old timeline promoted with check_timeline on"
        time.sleep(0.5)
    pg1.start()  # the member on the newest timeline leads again, and pg2 follows it
    assert c.wait_leader(90).name == pg1.name
    c.wait_streaming([pg2], timeout=120)
