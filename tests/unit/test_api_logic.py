"""Table tests of the other pure parts of the REST API: routing, parsers, config merge and
validation, switchover validation and waiting, /cluster and /metrics views."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pg_ha.api import routes
from pg_ha.api.config_patch import deep_merge, validate_dynamic
from pg_ha.api.messages import ApiError
from pg_ha.api.metrics import metrics_text, padded_version
from pg_ha.api.switchover import FailoverRequest, check_possible, parse_request, wait_for_result
from pg_ha.api.units import parse_bool, parse_duration, parse_size, parse_timestamp
from pg_ha.api.views import cluster_as_json, format_lsn, history_as_json
from pg_ha.core.model import Cluster, ClusterConfig, Failover, Leader, Member, SyncState, TimelineHistory

from tests.fakes import FakeDCS, make_config, member_data, primary_status, replica_status, three_member_dcs

CONFIG = make_config("pg0")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# -- routing -------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/", "health"),
    ("OPTIONS", "/primary", "health"),
    ("HEAD", "/replica", "health"),
    ("GET", "/replica/", "health"),
    ("GET", "/patroni", "patroni"),
    ("GET", "/config", "get_config"),
    ("PATCH", "/config", "patch_config"),
    ("PUT", "/config", "put_config"),
    ("POST", "/switchover", "switchover"),
    ("DELETE", "/switchover", "delete_switchover"),
    ("POST", "/failover", "failover"),
    ("POST", "/restart", "restart"),
    ("DELETE", "/restart", "delete_restart"),
    ("POST", "/reload", "reload"),
    ("POST", "/reinitialize", "reinitialize"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/nope", 404),
    ("POST", "/nope", 404),
    ("GET", "/switchover", 405),
    ("POST", "/patroni", 405),
    ("DELETE", "/failover", 405),
])
def test_resolve(method: str, path: str, expected: str | int) -> None:
    assert routes.resolve(method, path) == expected


def test_allowed_methods() -> None:
    assert routes.allowed_methods("/config") == ["GET", "HEAD", "OPTIONS", "PATCH", "PUT"]
    assert routes.allowed_methods("/switchover") == ["DELETE", "POST"]
    assert routes.allowed_methods("/nothing") == []


# -- parsers -------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("1048576", 1048576), (1024, 1024), ("16MB", 16 * 1024 ** 2), ("16 mb", 16 * 1024 ** 2),
    ("1kB", 1024), ("2GB", 2 * 1024 ** 3), ("10B", 10), ("1.5MB", 1572864),
    ("abc", None), ("-1", None), (-5, None), ("16XB", None), (True, None), (None, None),
])
def test_parse_size(value: Any, expected: int | None) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (30, 30.0), ("30", 30.0), ("30s", 30.0), ("5min", 300.0), ("500ms", 0.5), ("1h", 3600.0),
    ("x", None), ("-3", None), (False, None),
])
def test_parse_duration(value: Any, expected: float | None) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (None, False), ("true", True), ("off", False), ("1", True), (0, False),
    ("maybe", None), (7, None), ([], None),
])
def test_parse_bool(value: Any, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("2030-01-01T13:00:00+00:00", datetime(2030, 1, 1, 13, 0, tzinfo=UTC)),
    ("2030-01-01T13:00:00Z", datetime(2030, 1, 1, 13, 0, tzinfo=UTC)),
    ("2030-01-01T13:00:00", (400, "Timezone information is mandatory for the scheduled switchover")),
    ("2029-01-01T13:00:00+00:00", (422, "Cannot schedule switchover in the past")),
    ("tomorrow", 422),
    (12, 422),
])
def test_parse_timestamp(value: Any, expected: Any) -> None:
    got = parse_timestamp(value, "switchover", NOW)
    if isinstance(expected, int):
        assert isinstance(got, tuple) and got[0] == expected
    else:
        assert got == expected


# -- config merge and validation ----------------------------------------------
def test_deep_merge_sets_nested_and_deletes_nulls() -> None:
    base = {"ttl": 30, "postgresql": {"parameters": {"max_connections": 100, "work_mem": "4MB"},
                                      "use_pg_rewind": True}, "pause": True}
    patch = {"ttl": 40, "pause": None, "postgresql": {"parameters": {"work_mem": None, "wal_level": "replica"}},
             "new": {"a": {"b": 1}}, "absent": None}
    merged = deep_merge(base, patch)
    assert merged == {"ttl": 40, "postgresql": {"parameters": {"max_connections": 100, "wal_level": "replica"},
                                                "use_pg_rewind": True}, "new": {"a": {"b": 1}}}
    assert base["postgresql"]["parameters"]["work_mem"] == "4MB"  # input untouched
    # Patroni's patch_config: a mapping where there was none is taken as given, nulls kept
    assert deep_merge({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"b": None, "c": 2}}
    assert deep_merge({"ttl": 30}, {"slots": {"s1": None, "s2": {"type": "physical"}}}) == \
        {"ttl": 30, "slots": {"s1": None, "s2": {"type": "physical"}}}
    assert deep_merge({"slots": {"s1": None, "s2": {"type": "physical"}}}, {"slots": {"s2": None}}) == \
        {"slots": {"s1": None}}


@pytest.mark.parametrize(("data", "error"), [
    ({"ttl": 30, "loop_wait": 10, "retry_timeout": 10}, None),
    ({}, None),
    ({"ttl": 20, "loop_wait": 2, "retry_timeout": 5}, None),
    # timings Patroni runs with are stored as given and adjusted by every member (adjust_timing)
    ({"ttl": 20}, None),
    ({"ttl": 5, "loop_wait": 0, "retry_timeout": 1}, None),
    ({"ttl": "30"}, "ttl must be an integer, got '30'"),
    ({"loop_wait": 1.5}, "loop_wait must be an integer, got 1.5"),
    ({"retry_timeout": True}, "retry_timeout must be an integer, got True"),
    ({"maximum_lag_on_failover": "1MB"}, "maximum_lag_on_failover must be an integer, got '1MB'"),
    ({"maximum_lag_on_failover": -1}, "maximum_lag_on_failover must be >= 0, got -1"),
    ({"loop_wait": 0}, None),
    ({"pause": "yes"}, "pause must be a boolean, got 'yes'"),
    ({"postgresql": []}, "postgresql must be a mapping, got list"),
    ({"postgresql": {"parameters": "x"}}, "postgresql.parameters must be a mapping"),
    # found by the REST fuzz run: values etcd or postgresql.conf cannot hold must never reach the DCS
    ({"ttl": 10 ** 31}, "config.ttl: must be <= 1000000000, got " + str(10 ** 31)),
    ({"postgresql": {"use_slots": "maybe"}}, "config.postgresql.use_slots: expected a boolean, got 'maybe'"),
    ({"postgresql": {"parameters": {"work_mem": [False]}}},
     "config.postgresql.parameters.work_mem: expected a string, number or boolean, got list"),
    ({"postgresql": {"parameters": {"bad name=": 1}}},
     "config.postgresql.parameters: 'bad name=' is not a valid PostgreSQL parameter name"),
    ({"postgresql": {"parameters": {"auto_explain.log_min_duration": "1s", "work_mem": 4096}}}, None),
    ({"synchronous_node_count": 10 ** 6}, "config.synchronous_node_count: must be <= 1000, got 1000000"),
])
def test_validate_dynamic(data: dict[str, Any], error: str | None) -> None:
    assert validate_dynamic(data) == error


# -- switchover validation -------------------------------------------------------
@pytest.mark.parametrize(("action", "body", "paused", "code", "message"), [
    ("switchover", None, False, 400, "request body must be a JSON object"),
    ("switchover", [1], False, 400, "request body must be a JSON object"),
    ("switchover", {}, False, 400, "request body must be a non-empty JSON object"),
    ("switchover", {"candidate": "pg1"}, False, 400, "Switchover could be performed only from a specific leader"),
    ("switchover", {"leader": 5}, False, 400, "leader must be a string"),
    ("failover", {"leader": "pg0"}, False, 400, "Failover could be performed only to a specific candidate"),
    ("switchover", {"leader": "pg0", "candidate": "pg0"}, False, 400,
     "Switchover target and source are the same"),
    ("switchover", {"leader": "pg0"}, True, 400,
     "Switchover is possible only to a specific candidate in a paused state"),
    ("switchover", {"leader": "pg0", "scheduled_at": "2030-01-01T13:00:00"}, False, 400,
     "Timezone information is mandatory for the scheduled switchover"),
    ("switchover", {"leader": "pg0", "scheduled_at": "2029-01-01T13:00:00+00:00"}, False, 422,
     "Cannot schedule switchover in the past"),
    ("switchover", {"leader": "pg0", "scheduled_at": "soon"}, False, 422,
     "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
    ("switchover", {"leader": "pg0", "candidate": "pg1", "scheduled_at": "2030-01-01T13:00:00+00:00"},
     True, 400, "Can't schedule switchover in the paused state"),
    ("failover", {"candidate": "pg1", "scheduled_at": "2030-01-01T13:00:00+00:00"}, False, 400,
     "Failover can't be scheduled"),
    ("switchover", {"leader": "pg0", "timeout": "x"}, False, 400, "timeout should be a positive number of seconds"),
    ("switchover", {"leader": "pg0", "timeout": 0}, False, 400, "timeout should be a positive number of seconds"),
])
def test_parse_request_errors(action: str, body: Any, paused: bool, code: int, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_request(action, body, {}, paused, NOW)
    assert (err.value.code, err.value.message) == (code, message)


def test_parse_request_ok() -> None:
    req = parse_request("switchover", {"leader": "pg0", "member": "pg1", "timeout": "45s"}, {}, False, NOW)
    assert req == FailoverRequest("switchover", "pg0", "pg1", None, 45.0)
    req = parse_request("failover", {"candidate": "pg1", "leader": "pg0"}, {"timeout": "5"}, False, NOW)
    assert req == FailoverRequest("switchover", "pg0", "pg1", None, 5.0)  # failover naming the leader
    req = parse_request("switchover", {"leader": "pg0", "scheduled_at": "2030-01-01T13:00:00+01:00"}, {}, False,
                        NOW)
    assert req.scheduled_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _cluster(members: dict[str, dict[str, Any]], leader: str | None = "pg0", sync: tuple[str, ...] = (),
             config: dict[str, Any] | None = None) -> Cluster:
    return Cluster(
        config=ClusterConfig(1, config or {}),
        leader=Leader(leader, 1) if leader else None,
        members=tuple(Member(name, 1, member_data(**data)) for name, data in members.items()),
        sync=SyncState(2, leader, sync) if sync else None,
    )


HEALTHY = {"pg0": {"role": "primary"}, "pg1": {}, "pg2": {}}


@pytest.mark.parametrize(("members", "req", "reason", "extra"), [
    (HEALTHY, ("switchover", "pg0", "pg1"), None, {}),
    (HEALTHY, ("switchover", "pg0", None), None, {}),
    (HEALTHY, ("switchover", "pg1", None), "leader name does not match", {}),
    (HEALTHY, ("switchover", "pg0", "pg9"), "candidate pg9 does not exist", {}),
    ({**HEALTHY, "pg1": {"state": "stopped"}}, ("switchover", "pg0", "pg1"),
     "switchover is not possible: no good candidates have been found", {}),  # Patroni's exact text
    ({**HEALTHY, "pg1": {"tags": {"nofailover": True}}}, ("switchover", "pg0", "pg1"),
     "switchover is not possible: no good candidates have been found", {}),
    ({"pg0": {"role": "primary"}}, ("switchover", "pg0", None),
     "switchover is not possible: cluster does not have members except leader", {}),
    ({"pg0": {"role": "primary"}, "pg1": {"state": "stopped"}, "pg2": {"tags": {"nofailover": True}}},
     ("switchover", "pg0", None), "switchover is not possible: no good candidates have been found", {}),
    (HEALTHY, ("failover", None, "pg1"), None, {"leader": None}),
    (HEALTHY, ("failover", None, "pg0"), "candidate pg0 is already the leader", {}),
    (HEALTHY, ("switchover", "pg0", "pg2"), "candidate name does not match with sync_standby",
     {"sync": ("pg1",), "config": {"synchronous_mode": True}}),
    (HEALTHY, ("switchover", "pg0", None), None, {"sync": ("pg1",), "config": {"synchronous_mode": True}}),
    (HEALTHY, ("switchover", "pg0", None), "switchover is not possible: can not find sync_standby",
     {"config": {"synchronous_mode": True}}),
])
def test_check_possible(members: dict[str, dict[str, Any]], req: tuple[str, str | None, str | None],
                        reason: str | None, extra: dict[str, Any]) -> None:
    leader = extra.pop("leader", "pg0")
    snapshot = _cluster(members, leader=leader, **extra)
    assert check_possible(snapshot, FailoverRequest(req[0], req[1], req[2], None, None)) == reason


def test_check_possible_scheduled_only_needs_existing_names() -> None:
    snapshot = _cluster({**HEALTHY, "pg1": {"state": "stopped"}})
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert check_possible(snapshot, FailoverRequest("switchover", "pg0", "pg1", later, None)) is None
    assert check_possible(snapshot, FailoverRequest("switchover", "pg0", "pg7", later, None)) == \
        "candidate pg7 does not exist"
    assert check_possible(snapshot, FailoverRequest("switchover", "pg2", None, later, None)) == \
        "leader name does not match"


# -- switchover waiting -------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.25)


def _script(dcs: FakeDCS, steps: dict[int, Any]) -> Clock:
    """A clock whose sleep() applies steps[n] (a callable on dcs) at the n-th poll."""
    clock = Clock()
    count = {"n": 0}

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        count["n"] += 1
        if count["n"] in steps:
            steps[count["n"]](dcs)

    clock.sleep_script = sleep  # type: ignore[attr-defined]
    return clock


def _promote(name: str, state: str = "running") -> Any:
    def apply(dcs: FakeDCS) -> None:
        dcs.set_leader(name)
        dcs.set_member(name, role="primary", state=state)
    return apply


def _clear_failover(dcs: FakeDCS) -> None:
    dcs.delete("failover")


def _wait(dcs: FakeDCS, steps: dict[int, Any], candidate: str | None = "pg1", timeout: float = 10,
          action: str = "switchover", old_leader: str | None = "pg0") -> tuple[int, str]:
    clock = _script(dcs, steps)
    return wait_for_result(dcs, action, old_leader, candidate, timeout, 2.0, clock=clock,
                           sleep=clock.sleep_script)  # type: ignore[attr-defined]


def test_wait_success_when_candidate_confirmed() -> None:
    dcs = three_member_dcs()
    dcs.manual_failover("pg0", "pg1")
    steps = {2: lambda d: d.set_leader(None), 4: _promote("pg1", "starting"), 6: _promote("pg1"),
             7: _clear_failover}
    assert _wait(dcs, steps) == (200, 'Successfully switched over to "pg1"')


def test_wait_needs_failover_key_gone() -> None:
    dcs = three_member_dcs()
    dcs.manual_failover("pg0", "pg1")
    code, message = _wait(dcs, {1: _promote("pg1")}, timeout=3)
    assert code == 503
    assert message == ('Switchover failed: no result after 3s; "pg1" holds the leader lock'
                       " (state=running, role=primary); the failover key is still present")


def test_wait_failover_without_candidate_and_other_leader() -> None:
    dcs = three_member_dcs()
    dcs.manual_failover("pg0", None)
    assert _wait(dcs, {1: _promote("pg2"), 2: _clear_failover}, candidate=None) == \
        (200, 'Successfully switched over to "pg2"')
    dcs = three_member_dcs()
    dcs.manual_failover(None, "pg1")
    assert _wait(dcs, {1: _promote("pg1"), 2: _clear_failover}, action="failover") == \
        (200, 'Successfully failed over to "pg1"')


def test_wait_other_member_won() -> None:
    dcs = three_member_dcs()
    dcs.manual_failover("pg0", "pg1")
    assert _wait(dcs, {1: _promote("pg2"), 2: _clear_failover}) == \
        (503, 'Switchover failed: "pg2" became the leader instead of "pg1"')


def test_wait_refused_by_leader() -> None:
    dcs = three_member_dcs()
    dcs.manual_failover("pg0", "pg1")
    code, message = _wait(dcs, {1: _clear_failover}, timeout=60)
    assert code == 503
    assert message == 'Switchover failed: the failover key was removed and "pg0" still holds the leader lock'


def test_wait_timeout_reports_no_leader_and_dcs_errors() -> None:
    dcs = three_member_dcs()
    dcs.manual_failover("pg0", "pg1")
    code, message = _wait(dcs, {1: lambda d: d.set_leader(None)}, timeout=2)
    assert (code, message) == (503, "Switchover failed: no result after 2s; no member holds the leader lock;"
                                    " the failover key is still present")

    def break_dcs(d: FakeDCS) -> None:
        d.fail_with = "etcd unreachable"
    code, message = _wait(three_member_dcs(), {1: break_dcs}, timeout=2)
    assert (code, message) == (503, "Switchover failed: no result after 2s; DCS error: etcd unreachable")


# -- views ----------------------------------------------------------------------
def test_format_lsn() -> None:
    assert format_lsn(0) == "0/0"
    assert format_lsn(50331648) == "0/3000000"
    assert format_lsn((1 << 32) + 0x60) == "1/60"


def test_cluster_as_json() -> None:
    dcs = three_member_dcs(config={"ttl": 30, "synchronous_mode": True, "pause": True})
    dcs.set_member("pg1", role="replica", lsn=50331648 - 100, port=5433, tags={"nofailover": True},
                   pending_restart=True)
    dcs.set_member("pg2", role="replica", lsn=0, port=5434, state="streaming")
    dcs.set_json("sync", {"leader": "pg0", "sync_standby": "pg1"})
    dcs.manual_failover("pg0", "pg2", scheduled_at=datetime(2030, 1, 1, tzinfo=UTC))
    body = cluster_as_json(dcs.get_cluster(), CONFIG)
    assert body["scope"] == "demo" and body["pause"] is True
    assert body["scheduled_switchover"] == {"at": "2030-01-01T00:00:00+00:00", "from": "pg0", "to": "pg2"}
    pg0, pg1, pg2 = body["members"]
    assert pg0 == {"name": "pg0", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni",
                   "host": "127.0.0.1", "port": 5432, "timeline": 1}
    assert pg1["role"] == "sync_standby" and pg1["lag"] == 100 and pg1["lsn"] == "0/2FFFF9C"
    assert pg1["tags"] == {"nofailover": True} and pg1["pending_restart"] is True
    assert pg2["role"] == "replica" and pg2["lag"] == "unknown" and pg2["state"] == "streaming"


def test_cluster_as_json_standby_leader() -> None:
    dcs = three_member_dcs(config={"standby_cluster": {"host": "10.0.0.9", "port": 5432}})
    assert cluster_as_json(dcs.get_cluster(), CONFIG)["members"][0]["role"] == "standby_leader"


def test_history_as_json() -> None:
    lines = ((1, 50331808, "no recovery target specified", "2024-05-01T10:00:00+00:00", "pg1"),)
    snapshot = Cluster(history=TimelineHistory(1, lines))
    assert history_as_json(snapshot) == [list(lines[0])]
    assert history_as_json(Cluster()) == []
    assert history_as_json(None) == []


# -- metrics --------------------------------------------------------------------
def _metric(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"{name} missing")


def test_padded_version() -> None:
    assert padded_version("3.0.2") == "030002"
    assert padded_version("0.1.0") == "000100"
    assert padded_version("4.1") == "040100"


def test_metrics_primary_and_replica() -> None:
    snapshot = Cluster(leader=Leader("pg0", 1), config=ClusterConfig(1, {"pause": True}))
    status = {**primary_status(CONFIG, lsn=1234), "pause": True, "pending_restart": True}
    text = metrics_text(status, snapshot, CONFIG)
    assert 'patroni_primary{scope="demo",name="pg0"} 1' in text
    assert _metric(text, "patroni_xlog_location") == "1234"
    assert _metric(text, "patroni_postgres_running") == "1"
    assert _metric(text, "patroni_is_paused") == "1"
    assert _metric(text, "patroni_pending_restart") == "1"
    assert _metric(text, "patroni_cluster_unlocked") == "0"
    assert _metric(text, "patroni_version") == "000100"
    assert _metric(text, "patroni_postmaster_start_time") == "1714557600"
    assert _metric(text, "patroni_dcs_last_seen") == "1714557600"
    assert _metric(text, "patroni_postgres_timeline") == "1"
    assert "# TYPE patroni_xlog_location counter" in text
    replica = metrics_text({**replica_status(CONFIG, 300, 200), "cluster_unlocked": True}, None, CONFIG)
    assert _metric(replica, "patroni_replica") == "1" and _metric(replica, "patroni_primary") == "0"
    assert _metric(replica, "patroni_xlog_received_location") == "300"
    assert _metric(replica, "patroni_xlog_replayed_location") == "200"
    assert _metric(replica, "patroni_cluster_unlocked") == "1"
    assert _metric(replica, "patroni_postgres_streaming") == "1"
    stopped = metrics_text({"state": "stopped", "role": "unknown"}, None, CONFIG)
    assert _metric(stopped, "patroni_postgres_running") == "0"
    assert _metric(stopped, "patroni_postmaster_start_time") == "0"


def test_metrics_label_escaping() -> None:
    text = metrics_text({}, None, make_config('we"ird\\name'))
    assert 'name="we\\"ird\\\\name"' in text


def test_failover_from_value_roundtrip() -> None:
    # the failover key written by the API is read back by the HA loop's value object
    dcs = FakeDCS()
    when = NOW + timedelta(hours=1)
    dcs.manual_failover("pg0", "pg1", scheduled_at=when)
    assert dcs.get_cluster().failover == Failover(dcs.keys["failover"][0], "pg0", "pg1", when)


def test_metrics_quorum_standby() -> None:
    voters = SyncState(2, "pg1", ("pg0", "pg2"), 1)
    status = replica_status(CONFIG, 300, 200)
    quorum = Cluster(leader=Leader("pg1", 1), config=ClusterConfig(1, {"synchronous_mode": "quorum"}), sync=voters)
    text = metrics_text(status, quorum, CONFIG)
    assert _metric(text, "patroni_quorum_standby") == "1" and _metric(text, "patroni_sync_standby") == "0"
    sync_on = Cluster(leader=Leader("pg1", 1), config=ClusterConfig(1, {"synchronous_mode": True}), sync=voters)
    text = metrics_text(status, sync_on, CONFIG)
    assert _metric(text, "patroni_quorum_standby") == "0" and _metric(text, "patroni_sync_standby") == "1"
