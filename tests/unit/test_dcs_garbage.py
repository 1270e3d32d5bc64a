"""Hand-edited DCS values: each row is (key, raw value, attribute of the snapshot, expected).
Garbage must parse to "absent" (or a safe default), never raise, never a wrong type."""
from __future__ import annotations

from typing import Any

import pytest
from pg_ha.core.model import valid_sysid
from pg_ha.dcs import garbage
from pg_ha.dcs.base import Node, cluster_from_nodes

ROWS: list[tuple[str, str, str, Any]] = [
    # member keys
    ("members/m", "garbage{", "member.data", {}),
    ("members/m", '{"conn_url": 5, "api_url": ["x"]}', "member.conn_url", None),
    ("members/m", '{"conn_url": 5, "api_url": ["x"]}', "member.api_url", None),
    ("members/m", '{"api_url": ""}', "member.api_url", None),
    ("members/m", '{"xlog_location": true, "timeline": false}', "member.lsn", 0),
    ("members/m", '{"xlog_location": -7}', "member.lsn", 0),
    ("members/m", '{"xlog_location": "123"}', "member.lsn", 0),
    ("members/m", '{"timeline": true}', "member.timeline", None),
    ("members/m", '{"timeline": "3"}', "member.timeline", None),
    ("members/m", '{"tags": ["nofailover"]}', "member.tags", {}),
    ("members/m", '{"tags": {"nofailover": "yes"}}', "member.nofailover", True),  # unclear: the safe side
    ("members/m", '{"state": {"a": 1}, "role": null}', "member.role", "None"),
    ("members/m", '{"conn_url": "postgres://h:5432/postgres"}', "member.conn_url", "postgres://h:5432/postgres"),
    # failover key
    ("failover", "garbage", "failover", None),
    ("failover", "[1,2]", "failover", None),
    ("failover", '{"leader": 5, "member": [1]}', "failover", None),
    ("failover", '{"leader": "", "member": {}}', "failover", None),
    ("failover", '{"leader": "pg0", "member": 7}', "failover.candidate", None),
    ("failover", '{"member": "pg1", "scheduled_at": "tomorrow"}', "failover.scheduled_at", None),
    ("failover", '{"member": "pg1", "scheduled_at": "2030-01-01T00:00:00"}', "failover.scheduled_at", None),
    ("failover", '{"candidate": "pg2"}', "failover.candidate", "pg2"),
    # sync key
    ("sync", "not json", "sync", None),
    ("sync", '"pg1"', "sync", None),
    ("sync", '{"leader": ["pg0"], "sync_standby": 5}', "sync.leader", None),
    ("sync", '{"leader": ["pg0"], "sync_standby": 5}', "sync.sync_standby", ()),
    ("sync", '{"leader": "pg0", "sync_standby": {"a": 1}}', "sync.sync_standby", ()),
    ("sync", '{"leader": "pg0", "sync_standby": "pg1, pg2,"}', "sync.sync_standby", ("pg1", "pg2")),
    # config key
    ("config", "{not json", "config.data", {}),
    ("config", '["ttl", 30]', "config.data", {}),
    ("config", "{not json", "config.valid", False),
    ("config", "", "config.valid", False),
    ("config", "{}", "config.valid", True),
    ("config", '{"ttl": "abc"}', "config.data", {"ttl": "abc"}),  # types are checked by config.dynamic_from
    ("config", '{"pause": "no"}', "paused", True),  # a non-empty string: paused, the safe side
    # history
    ("history", "{]", "history", None),
    ("history", '{"a": 1}', "history", None),
    # leader and initialize keep their text: the decision treats unknown names / invalid ids
    ("leader", '{"garbage', "leader.name", '{"garbage'),
    ("initialize", "garbage", "initialize", "garbage"),
]


def resolve(cluster: Any, attribute: str) -> Any:
    node: Any = cluster
    for part in attribute.split("."):
        node = cluster.members[0] if part == "member" else getattr(node, part)
    return node


@pytest.mark.parametrize("key, value, attribute, expected", ROWS,
                         ids=[f"{r[0]}:{r[2]}:{i}" for i, r in enumerate(ROWS)])
def test_garbage_value_parses_safely(key: str, value: str, attribute: str, expected: Any) -> None:
    cluster = cluster_from_nodes({key: Node(value, 4)})
    assert resolve(cluster, attribute) == expected


@pytest.mark.parametrize("value, valid", [
    ("7300000000000000001", True), ("", False), (None, False), ("garbage", False), ("73000 1", False),
    ("-7300", False), ("\u0663\u0664", False), ("7300000000000000001\n", False),
])
def test_valid_sysid(value: str | None, valid: bool) -> None:
    assert valid_sysid(value) is valid


@pytest.mark.parametrize("path, value, reason", [
    ("config", '{"ttl": 30}', None),
    ("config", "{not json", "is not valid JSON"),
    ("config", "[1]", "is not a JSON object"),
    ("history", "{}", "is not a JSON array"),
    ("history", "[]", None),
    ("members/pg1", "garbage", "is not valid JSON"),
    ("members/pg1", '"text"', "is not a JSON object"),
    ("failover", '{"member": "pg1"}', None),
    ("sync", "null", "is not a JSON object"),
    ("initialize", "", None),
    ("initialize", "7300000000000000001", None),
    ("initialize", "garbage", "holds no system identifier (digits)"),
    ("optime/leader", "12345", None),
    ("optime/leader", "x", "is not a WAL position (an integer)"),
    ("leader", "anything", None),  # any name: the decision treats unknown names
    ("config", None, None),
])
def test_garbage_problem(path: str, value: str | None, reason: str | None) -> None:
    assert garbage.problem(path, value) == reason


def test_garbage_is_reported_once_per_version(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
    for version in (101, 101, 101, 102):
        cluster_from_nodes({"sync": Node("garbage{", version), "config": Node("{}", version)})
    lines = [r.getMessage() for r in caplog.records if "ignoring the DCS key" in r.getMessage()]
    assert lines == ["ignoring the DCS key sync: its value is not valid JSON: 'garbage{'"] * 2
