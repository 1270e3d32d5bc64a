"""Table tests of the pure health-check logic (pg_ha.api.health)."""
from __future__ import annotations

from typing import Any

import pytest
from pg_ha.api.health import health_status, liveness_status, readiness_status, replica_lag, tags_match
from pg_ha.core.model import Cluster, ClusterConfig, Leader, Member, SyncState

from tests.fakes import make_config, primary_status, replica_status

MB = 1024 * 1024
CONFIG = make_config("pg0")


def cluster(leader: str | None = "pg0", last_lsn: int = 100 * MB, sync: tuple[str, ...] = (),
            sync_mode: bool | str = False, standby: bool = False) -> Cluster:
    data: dict[str, Any] = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
    if sync_mode:
        data["synchronous_mode"] = sync_mode
    if standby:
        data["standby_cluster"] = {"host": "10.0.0.1", "port": 5432}
    members = tuple(Member(n, 1, {"state": "running", "role": "replica"}) for n in ("pg0", "pg1", "pg2"))
    return Cluster(
        config=ClusterConfig(1, data),
        leader=Leader(leader, 2) if leader else None,
        last_lsn=last_lsn,
        members=members,
        sync=SyncState(3, leader, sync) if sync else None,
    )


PRIMARY = primary_status(CONFIG, lsn=100 * MB)
REPLICA = replica_status(CONFIG, received=100 * MB, replayed=100 * MB)
LAGGING = replica_status(CONFIG, received=90 * MB, replayed=80 * MB)
STANDBY_LEADER = {**REPLICA, "role": "standby_leader"}
STOPPED_REPLICA = {**REPLICA, "state": "stopped"}
STARTING_PRIMARY = {**PRIMARY, "state": "starting"}
RESTARTING_PRIMARY = {**PRIMARY, "state": "restarting"}
STARTING_UNREAD = {"state": "starting", "role": "replica"}  # no query answered yet: no role from it
CRASHED = {"state": "crashed", "role": "replica"}
DIED = {**PRIMARY, "state": "unknown"}
PAUSED_PRIMARY = {**PRIMARY, "pause": True}

ALL_HEALTH = ("/", "/primary", "/master", "/read-write", "/leader", "/standby-leader", "/replica",
              "/read-only", "/health", "/sync", "/async")

CASES = [
    # (id, status, cluster, config, {path: code})
    ("running primary with the lock", PRIMARY, cluster("pg0"), CONFIG,
     {"/": 200, "/primary": 200, "/master": 200, "/read-write": 200, "/leader": 200, "/standby-leader": 503,
      "/replica": 503, "/read-only": 200, "/health": 200, "/sync": 503, "/async": 503}),
    ("primary without the lock", PRIMARY, cluster("pg1"), CONFIG,
     {"/": 503, "/primary": 503, "/leader": 503, "/replica": 503, "/read-only": 503, "/health": 200}),
    ("primary, cluster unlocked", PRIMARY, cluster(None), CONFIG,
     {"/primary": 503, "/leader": 503, "/health": 200}),
    # Patroni's answer: the lock holder whose server answers as primary while it is (re)started;
    # /health waits for "running".
    ("starting primary with the lock", STARTING_PRIMARY, cluster("pg0"), CONFIG,
     {"/primary": 200, "/leader": 200, "/read-only": 200, "/health": 503}),
    ("restarting primary with the lock", RESTARTING_PRIMARY, cluster("pg0"), CONFIG,
     {"/primary": 200, "/leader": 200, "/health": 503}),
    ("starting lock holder not answering yet", STARTING_UNREAD, cluster("pg0"), CONFIG,
     {"/primary": 503, "/leader": 503, "/read-only": 503, "/replica": 503, "/health": 503}),
    ("crashed lock holder", CRASHED, cluster("pg0"), CONFIG,
     {"/primary": 503, "/leader": 503, "/read-only": 503, "/replica": 503, "/health": 503}),
    ("lock holder whose postmaster died since the cycle", DIED, cluster("pg0"), CONFIG,
     {"/primary": 503, "/leader": 503, "/health": 503}),
    ("no DCS snapshot yet", PRIMARY, None, CONFIG, {"/primary": 503, "/health": 200, "/sync": 503}),
    ("no DCS snapshot, paused primary", PAUSED_PRIMARY, None, CONFIG, {"/primary": 200, "/leader": 200}),
    ("running replica", REPLICA, cluster("pg1"), CONFIG,
     {"/": 503, "/primary": 503, "/leader": 503, "/replica": 200, "/read-only": 200, "/health": 200,
      "/sync": 503, "/async": 200, "/asynchronous": 200, "/standby-leader": 503}),
    ("stopped replica", STOPPED_REPLICA, cluster("pg1"), CONFIG,
     {"/replica": 503, "/read-only": 503, "/health": 503, "/async": 503}),
    ("replica role but holds the lock", REPLICA, cluster("pg0"), CONFIG,
     {"/replica": 503, "/primary": 503, "/read-only": 503}),
    ("replica tagged noloadbalance in config", REPLICA, cluster("pg1"),
     make_config("pg0", tags={"noloadbalance": True}),
     {"/replica": 503, "/read-only": 503, "/health": 200}),
    ("replica tagged noloadbalance in status", {**REPLICA, "tags": {"noloadbalance": True}}, cluster("pg1"),
     CONFIG, {"/replica": 503, "/async": 503}),
    ("sync standby", REPLICA, cluster("pg1", sync=("pg0",), sync_mode=True), CONFIG,
     {"/sync": 200, "/synchronous": 200, "/async": 503, "/read-only-sync": 200, "/replica": 200}),
    ("in sync key but synchronous_mode off", REPLICA, cluster("pg1", sync=("pg0",)), CONFIG,
     {"/sync": 503, "/async": 200}),
    ("other member is the sync standby", REPLICA, cluster("pg1", sync=("pg2",), sync_mode=True), CONFIG,
     {"/sync": 503, "/async": 200, "/read-only-sync": 503}),
    ("primary and read-only-sync", PRIMARY, cluster("pg0", sync=("pg1",), sync_mode=True), CONFIG,
     {"/read-only-sync": 200, "/sync": 503}),
    ("quorum standby", REPLICA, cluster("pg1", sync=("pg0", "pg2"), sync_mode="quorum"), CONFIG,
     {"/quorum": 200, "/read-only-quorum": 200, "/sync": 503, "/async": 503, "/read-only-sync": 503,
      "/replica": 200}),
    ("not a quorum voter", REPLICA, cluster("pg1", sync=("pg2",), sync_mode="quorum"), CONFIG,
     {"/quorum": 503, "/read-only-quorum": 503, "/async": 200}),
    ("quorum primary", PRIMARY, cluster("pg0", sync=("pg1",), sync_mode="quorum"), CONFIG,
     {"/quorum": 503, "/read-only-quorum": 200}),
    ("voter listed but synchronous_mode on", REPLICA, cluster("pg1", sync=("pg0",), sync_mode=True), CONFIG,
     {"/quorum": 503, "/sync": 200}),
    ("standby leader", STANDBY_LEADER, cluster("pg0", standby=True), CONFIG,
     {"/standby-leader": 200, "/standby_leader": 200, "/leader": 200, "/primary": 503, "/replica": 503,
      "/read-only": 200}),
]


@pytest.mark.parametrize(("case", "status", "snapshot", "config", "expected"), CASES,
                         ids=[case[0] for case in CASES])
def test_health_paths(case: str, status: dict[str, Any], snapshot: Cluster | None, config: Any,
                      expected: dict[str, int]) -> None:
    got = {path: health_status(path, {}, status, snapshot, config, lease_ahead=True)[0] for path in expected}
    assert got == expected


LAG_CASES = [
    ({}, 200),
    ({"lag": "16MB"}, 503),
    ({"lag": "20MB"}, 200),
    ({"lag": "19MB"}, 503),
    ({"lag": str(20 * MB)}, 200),
    ({"lag": str(20 * MB - 1)}, 503),
    ({"lag": "1GB"}, 200),
    ({"lag": "not-a-size"}, 200),  # Patroni ignores an unparsable lag
]


@pytest.mark.parametrize(("query", "code"), LAG_CASES)
def test_replica_lag_filter(query: dict[str, str], code: int) -> None:
    # leader at 100MB, this replica replayed 80MB: 20MB behind
    assert health_status("/replica", query, LAGGING, cluster("pg1"), CONFIG, lease_ahead=True)[0] == code
    assert health_status("/async", query, LAGGING, cluster("pg1"), CONFIG, lease_ahead=True)[0] == code


def test_replica_lag_values() -> None:
    assert replica_lag(LAGGING, cluster("pg1")) == 20 * MB
    assert replica_lag(LAGGING, cluster("pg1"), mode="write") == 10 * MB
    assert replica_lag(LAGGING, None) == 0
    assert replica_lag(LAGGING, cluster("pg1", last_lsn=0)) == 0
    assert replica_lag(replica_status(CONFIG, received=200 * MB, replayed=200 * MB), cluster("pg1")) == 0


TAGS = {"dc": "east", "nosync": True, "weight": 3}
TAG_CASES = [
    ({"tag_dc": "east"}, True),
    ({"tag_dc": "west"}, False),
    ({"tag_dc": "east", "tag_nosync": "true"}, True),
    ({"tag_dc": "east", "tag_nosync": "false"}, False),
    ({"tag_weight": "3"}, True),
    ({"tag_missing": "x"}, False),
    ({"tag_missing": "false"}, True),
    ({"tag_missing": "0"}, True),
    ({"lag": "1MB", "other": "x"}, True),
]


@pytest.mark.parametrize(("query", "matches"), TAG_CASES)
def test_tags_match(query: dict[str, str], matches: bool) -> None:
    assert tags_match(query, TAGS) is matches


def test_tag_filters_apply_to_replica_but_not_primary() -> None:
    config = make_config("pg0", tags={"dc": "east"})
    assert health_status("/replica", {"tag_dc": "east"}, REPLICA, cluster("pg1"), config, lease_ahead=True)[0] == 200
    assert health_status("/replica", {"tag_dc": "west"}, REPLICA, cluster("pg1"), config, lease_ahead=True)[0] == 503
    assert health_status("/read-only", {"tag_dc": "west"}, PRIMARY, cluster("pg0"), config, lease_ahead=True)[0] == 503
    assert health_status("/primary", {"tag_dc": "west"}, PRIMARY, cluster("pg0"), config, lease_ahead=True)[0] == 200


def test_replication_state_filter() -> None:
    assert health_status("/replica", {"replication_state": "streaming"}, REPLICA, cluster("pg1"), CONFIG,
                         lease_ahead=True)[0] == 200
    assert health_status("/replica", {"replication_state": "in archive recovery"}, REPLICA, cluster("pg1"),
                         CONFIG, lease_ahead=True)[0] == 503


def test_body_is_the_status() -> None:
    code, body = health_status("/replica", {}, REPLICA, cluster("pg1"), CONFIG, lease_ahead=True)
    assert code == 200 and body == REPLICA


@pytest.mark.parametrize(("age", "status", "code"), [
    (1.0, PRIMARY, 200),
    (29.9, PRIMARY, 200),
    (30.0, PRIMARY, 503),
    (45.0, REPLICA, 200),  # replicas get 2 * ttl
    (60.0, REPLICA, 503),
    (1000.0, PAUSED_PRIMARY, 200),  # maintenance mode: a stuck loop is fine
    (45.0, STARTING_PRIMARY, 200),  # not a running primary: 2 * ttl
])
def test_liveness(age: float, status: dict[str, Any], code: int) -> None:
    assert liveness_status(age, 30, status) == code


READINESS_CASES = [
    ("leader running primary", PRIMARY, cluster("pg0"), {}, 200),
    ("leader not running", STARTING_PRIMARY, cluster("pg0"), {}, 503),
    ("replica in sync", REPLICA, cluster("pg1"), {}, 200),
    ("replica lagging past maximum_lag_on_failover", LAGGING, cluster("pg1"), {}, 503),
    ("replica lagging but within ?lag", LAGGING, cluster("pg1"), {"lag": "32MB"}, 200),
    ("replica mode=write uses received", LAGGING, cluster("pg1"), {"lag": "15MB", "mode": "write"}, 200),
    ("replica stopped", STOPPED_REPLICA, cluster("pg1"), {}, 503),
    ("replica not streaming", {**REPLICA, "replication_state": "in archive recovery"}, cluster("pg1"), {}, 503),
    ("replica without DCS", REPLICA, None, {}, 503),
    ("primary without the lock", PRIMARY, cluster("pg1"), {}, 503),
]


@pytest.mark.parametrize(("case", "status", "snapshot", "query", "code"), READINESS_CASES,
                         ids=[case[0] for case in READINESS_CASES])
def test_readiness(case: str, status: dict[str, Any], snapshot: Cluster | None, query: dict[str, str],
                   code: int) -> None:
    got, reason = readiness_status(query, status, snapshot, CONFIG)
    assert got == code
    assert (reason == "") is (code == 200)


def test_readiness_lag_threshold_from_config() -> None:
    loose = make_config("pg0", maximum_lag_on_failover=64 * MB)
    assert readiness_status({}, LAGGING, cluster("pg1"), loose)[0] == 200
    code, reason = readiness_status({}, LAGGING, cluster("pg1"), CONFIG)
    assert code == 503 and "lag 20971520 exceeds maximum allowable 1048576" in reason
