"""pg_hactl rendering: the +-bordered table, tsv/json/yaml, the member table and its footer."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import yaml
from pg_ha.core.model import Cluster, ClusterConfig, Failover, Leader, Member, SyncState
from pg_ha.ctl.members import cluster_is_empty, member_table, service_info, topology_order
from pg_ha.ctl.members import member_info as info_of
from pg_ha.ctl.output import mb, pretty_table, render, timestamp
from pg_ha.ctl.table import print_members

from tests.fakes import member_data

MB = 1024 * 1024


def member(name: str, **data) -> Member:
    return Member(name, 1, member_data(**data))


def make_cluster(members: list[Member], leader: str | None = "pg0", config: dict | None = None,
                 last_lsn: int = 100 * MB, **extra) -> Cluster:
    return Cluster(initialize="7", config=ClusterConfig(1, config or {"ttl": 30}), members=tuple(members),
                   leader=Leader(leader, 1) if leader else None, last_lsn=last_lsn, **extra)


def three(**extra) -> Cluster:
    return make_cluster([member("pg0", role="primary", lsn=100 * MB, port=5432),
                         member("pg1", lsn=100 * MB, port=5433, replication_state="streaming"),
                         member("pg2", lsn=97 * MB, port=5434)], **extra)


def test_pretty_table_is_the_seeds_layout() -> None:
    text = pretty_table(["Cluster", "Member", "Lag in MB"], [["batman", "postgresql0", 0], ["batman", "pg1", 12]],
                        right=("Lag in MB",))
    assert text.splitlines() == [
        "+---------+-------------+-----------+",
        "| Cluster | Member      | Lag in MB |",
        "+---------+-------------+-----------+",
        "| batman  | postgresql0 |         0 |",
        "| batman  | pg1         |        12 |",
        "+---------+-------------+-----------+",
    ]


def test_multiline_cells_put_a_rule_between_rows() -> None:
    lines = pretty_table(["A", "B"], [["x", "1\n2"], ["y", ""]]).splitlines()
    assert lines == ["+---+---+", "| A | B |", "+---+---+", "| x | 1 |", "|   | 2 |", "+---+---+", "| y |   |",
                     "+---+---+"]


def test_render_formats() -> None:
    columns, rows = ["Member", "Lag"], [["pg0", ""], ["pg1", 3]]
    assert render(columns, rows, "tsv") == "Member\tLag\npg0\t\npg1\t3"
    dropped = json.loads(render(columns, rows, "json", drop_empty=True))
    assert dropped == [{"Member": "pg0"}, {"Member": "pg1", "Lag": 3}]
    assert yaml.safe_load(render(columns, rows, "yaml")) == [{"Member": "pg0", "Lag": ""}, {"Member": "pg1", "Lag": 3}]
    assert render(columns, [], "json") == "[]"


def test_member_table_roles_states_lag_and_host() -> None:
    columns, rows = member_table(three(), "batman")
    assert columns == ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
    assert rows == [["batman", "pg0", "127.0.0.1:5432", "Leader", "running", 1, 0],
                    ["batman", "pg1", "127.0.0.1:5433", "Replica", "streaming", 1, 0],
                    ["batman", "pg2", "127.0.0.1:5434", "Replica", "running", 1, 3]]


def test_host_without_port_when_every_member_has_its_own_host_on_5432() -> None:
    members = [Member(f"pg{i}", 1, {"conn_url": f"postgres://10.0.0.{i}:5432/postgres", "state": "running"})
               for i in range(2)]
    _, rows = member_table(make_cluster(members), "b")
    assert [r[2] for r in rows] == ["10.0.0.0", "10.0.0.1"]


def test_sync_standby_and_unknown_lag() -> None:
    cluster = make_cluster([member("pg0", role="primary", lsn=5), member("pg1", lsn=5), member("pg2", lsn=0)],
                           config={"synchronous_mode": True}, sync=SyncState(1, "pg0", ("pg1",)))
    _, rows = member_table(cluster, "b")
    assert [r[3] for r in rows] == ["Leader", "Sync Standby", "Replica"]
    assert rows[2][6] == "unknown"
    no_sync_mode = make_cluster(list(cluster.members), sync=SyncState(1, "pg0", ("pg1",)))
    assert member_table(no_sync_mode, "b")[1][1][3] == "Replica"


def test_optional_columns_only_when_a_member_has_them() -> None:
    cluster = make_cluster([member("pg0", role="primary", lsn=MB, pending_restart=True),
                            member("pg1", lsn=MB, scheduled_restart={"schedule": "2030-01-01T00:00:00+00:00",
                                                                     "postgres_version": "15.9"})])
    columns, rows = member_table(cluster, "b")
    assert columns[-2:] == ["Pending restart", "Scheduled restart"]
    assert rows[0][-2:] == ["*", ""]
    assert rows[1][-2:] == ["", "2030-01-01T00:00:00+00:00 if version < 15.9"]
    columns, rows = member_table(make_cluster([member("pg0", role="primary", tags={"nofailover": True})]), "b",
                                 extended=True)
    assert columns[-3:] == ["Pending restart", "Scheduled restart", "Tags"] and rows[0][-1] == "nofailover: true"
    assert member_table(three(), "b", extended=True, fmt="json")[1][0][-1] == ""


def test_topology_nests_cascading_replicas() -> None:
    cluster = make_cluster([member("pg0", role="primary", lsn=1), member("pg1", lsn=1, tags={"replicatefrom": "pg2"}),
                            member("pg2", lsn=1), member("pg3", lsn=1, tags={"replicatefrom": "nosuch"})])
    assert [(d, i.name) for d, i in topology_order([info_of(cluster, m) for m in cluster.members])] == \
        [(0, "pg0"), (1, "pg2"), (2, "pg1"), (1, "pg3")]
    _, rows = member_table(cluster, "b", topology=True)
    assert [r[1] for r in rows] == ["pg0", "+ pg2", "  + pg1", "+ pg3"]


def test_footer_maintenance_mode_and_scheduled_switchover(capsys) -> None:
    at = datetime(2030, 7, 8, 3, 0, tzinfo=UTC)
    cluster = three(config={"pause": True}, failover=Failover(1, "pg0", "pg1", at))
    assert service_info(cluster) == ["Maintenance mode: on", "Switchover scheduled at: 2030-07-08T03:00:00+00:00"
                                     "\n                    from: pg0\n                      to: pg1"]
    print_members(cluster, "batman")
    out = capsys.readouterr().out
    assert out.endswith(" Maintenance mode: on\n Switchover scheduled at: 2030-07-08T03:00:00+00:00\n"
                        "                    from: pg0\n                      to: pg1\n")
    print_members(cluster, "batman", fmt="json")
    assert "Maintenance" not in capsys.readouterr().out
    assert service_info(three()) == []


def test_no_leader_and_empty_cluster() -> None:
    _, rows = member_table(make_cluster([member("pg1", lsn=MB)], leader=None, last_lsn=3 * MB), "b")
    assert rows[0][3] == "Replica" and rows[0][6] == 2
    assert cluster_is_empty(Cluster()) and not cluster_is_empty(three())


def test_timestamp_and_mb() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{5}", timestamp())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", timestamp(0))
    assert mb(0) == 0 and mb(MB // 2 + 1) == 1 and mb(3 * MB) == 3
