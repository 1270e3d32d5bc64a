"""pg_hactl list -f tsv|json|yaml: patronictl 4.1's columns, key order, omitted keys and value types."""
from __future__ import annotations

import json

import yaml
from pg_ha.core.model import Cluster, ClusterConfig, Leader, Member, SyncState
from pg_ha.ctl.machine import format_lsn, machine_table
from pg_ha.ctl.output import render
from pg_ha.ctl.table import print_members

from tests.fakes import member_data

MB = 1024 * 1024
BASE = ["Cluster", "Member", "Host", "Role", "State", "TL", "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag"]


def member(name: str, **data) -> Member:
    return Member(name, 1, member_data(**data))


def cluster_of(members: list[Member], leader: str | None = "pg0", config: dict | None = None, **extra) -> Cluster:
    return Cluster(initialize="7", config=ClusterConfig(1, config or {"ttl": 30}), members=tuple(members),
                   leader=Leader(leader, 1) if leader else None, last_lsn=100 * MB, **extra)


def listed(cluster: Cluster, fmt: str, capsys, extended: bool = False):
    print_members(cluster, "batman", extended=extended, fmt=fmt)
    out = capsys.readouterr().out
    return json.loads(out) if fmt == "json" else yaml.safe_load(out) if fmt == "yaml" else out


def test_columns_and_rows_of_a_streaming_cluster(capsys) -> None:
    cluster = cluster_of([
        member("pg2", lsn=97 * MB, port=5434, replication_state="streaming", receive_lsn=98 * MB, replay_lsn=97 * MB),
        member("pg0", role="primary", lsn=100 * MB, port=5432),
        member("pg1", lsn=100 * MB, port=5433, replication_state="streaming",
               receive_lsn=str(100 * MB), replay_lsn=100 * MB),
    ])
    columns, rows = machine_table(cluster, "batman")
    assert columns == BASE
    assert rows == [
        ["batman", "pg0", "127.0.0.1:5432", "Leader", "running", 1, "", "", "", ""],
        ["batman", "pg1", "127.0.0.1:5433", "Replica", "streaming", 1, "0/6400000", 0, "0/6400000", 0],
        ["batman", "pg2", "127.0.0.1:5434", "Replica", "streaming", 1, "0/6200000", 2, "0/6100000", 3],
    ]
    items = listed(cluster, "json", capsys)
    assert list(items[0]) == ["Cluster", "Member", "Host", "Role", "State", "TL"]  # the leader has no LSN/lag
    assert list(items[2]) == BASE and items[2]["Receive Lag"] == 2 and items[2]["TL"] == 1
    assert listed(cluster, "yaml", capsys) == items
    tsv = listed(cluster, "tsv", capsys).splitlines()
    assert tsv[0].split("\t") == BASE and tsv[1].split("\t")[6:] == ["", "", "", ""]


def test_yaml_keys_are_sorted_as_patronictl_dumps_them() -> None:
    text = render(["Member", "Host", "TL"], [["pg0", "h", 1]], "yaml")
    assert text.splitlines() == ["- Host: h", "  Member: pg0", "  TL: 1"]
    assert list(json.loads(render(["Member", "Host", "TL"], [["pg0", "h", 1]], "json"))[0]) == ["Member", "Host", "TL"]


def test_member_publishing_only_xlog_location() -> None:
    """As patronictl for older members: the one position is the receive (streaming) or replay one."""
    cluster = cluster_of([member("pg0", role="primary", lsn=100 * MB),
                          member("pg1", lsn=99 * MB, port=5433, replication_state="streaming"),
                          member("pg2", lsn=90 * MB, port=5434),
                          member("pg3", lsn=0, port=5435, state="stopped")])
    rows = {r[1]: r[6:] for r in machine_table(cluster, "b")[1]}
    assert rows["pg1"] == ["0/6300000", 1, "unknown", ""]
    assert rows["pg2"] == ["unknown", "", "0/5A00000", 10]
    assert rows["pg3"] == ["unknown", "", "unknown", ""]


def test_roles_states_and_hosts() -> None:
    sync = cluster_of([member("pg0", role="primary", lsn=MB), member("pg1", lsn=MB, port=5433),
                       member("pg2", lsn=MB, port=5434, replication_state="in archive recovery")],
                      config={"synchronous_mode": "quorum"}, sync=SyncState(1, "pg0", ("pg1",)))
    assert [(r[3], r[4]) for r in machine_table(sync, "b")[1]] == \
        [("Leader", "running"), ("Quorum Standby", "running"), ("Replica", "in archive recovery")]
    standby = cluster_of([member("pg0", role="standby_leader", lsn=MB, replication_state="streaming")],
                         config={"standby_cluster": {"host": "10.0.0.1"}})
    assert machine_table(standby, "b")[1] == [["b", "pg0", "127.0.0.1", "Standby Leader", "streaming", 1,
                                               "", "", "", ""]]
    apart = cluster_of([Member(f"pg{i}", 1, {"conn_url": f"postgres://10.0.0.{i}:5432/postgres", "state": "running"})
                        for i in range(2)])
    assert [r[2] for r in machine_table(apart, "b")[1]] == ["10.0.0.0", "10.0.0.1"]
    no_timeline = cluster_of([Member("pg0", 1, {"conn_url": "postgres://h/postgres", "state": "stopped"})])
    assert machine_table(no_timeline, "b")[1][0][5] == ""


def test_optional_columns_and_omitted_keys(capsys) -> None:
    cluster = cluster_of([
        member("pg0", role="primary", lsn=100 * MB, pending_restart=True,
               pending_restart_reason={"max_connections": {"old_value": "100", "new_value": "200"},
                                       "shared_buffers": {"old_value": "128MB", "new_value": "256MB"}}),
        member("pg1", lsn=100 * MB, port=5433, tags={"nofailover": True},
               scheduled_restart={"schedule": "2030-01-01T00:00:00+00:00", "postgres_version": "15.9"}),
    ])
    columns, rows = machine_table(cluster, "b")
    assert columns == [*BASE, "Pending restart", "Pending restart reason", "Scheduled restart", "Tags"]
    assert rows[0][-4:] == ["*", "max_connections: 100->200\nshared_buffers: 128MB->256MB", "", ""]
    assert rows[1][-4:] == ["", "", "2030-01-01T00:00:00+00:00 if version < 15.9", {"nofailover": True}]
    items = listed(cluster, "json", capsys)
    assert "Tags" not in items[0] and items[1]["Tags"] == {"nofailover": True}
    assert items[0]["Pending restart"] == "*" and "Pending restart" not in items[1]
    tsv = listed(cluster, "tsv", capsys).splitlines()
    assert tsv[2].split("\t")[-1] == "{nofailover: true}"
    plain = cluster_of([member("pg0", role="primary", lsn=MB)])
    assert machine_table(plain, "b", extended=True)[0][-4:] == ["Pending restart", "Pending restart reason",
                                                                "Scheduled restart", "Tags"]
    assert list(listed(plain, "json", capsys, extended=True)[0]) == ["Cluster", "Member", "Host", "Role", "State", "TL"]


def test_pretty_keeps_the_seeds_layout(capsys) -> None:
    print_members(cluster_of([member("pg0", role="primary", lsn=MB)]), "b")
    assert "| Cluster | Member | Host      | Role   | State   | TL | Lag in MB |" in capsys.readouterr().out


def test_format_lsn() -> None:
    assert format_lsn(0) == "0/0" and format_lsn(4294967296 + 0x3000148) == "1/3000148"


def test_query_output_as_patronictl(capsys) -> None:
    from argparse import Namespace

    from pg_ha.ctl.cmd_query import _print

    rows = [[1, "two", None, True], [2, "x", 3, False]]
    _print(["one", "two", "three", "four"], rows, Namespace(fmt="tsv", delimiter="\t"))
    assert capsys.readouterr().out.splitlines() == ["one\ttwo\tthree\tfour", "1\ttwo\tNone\tTrue", "2\tx\t3\tFalse"]
    _print(["one", "two", "three", "four"], rows, Namespace(fmt="json", delimiter="\t"))
    assert json.loads(capsys.readouterr().out) == [{"one": 1, "two": "two", "three": None, "four": True},
                                                  {"one": 2, "two": "x", "three": 3, "four": False}]
    _print(["one", "two"], [[1, None]], Namespace(fmt="yaml", delimiter="\t"))
    assert capsys.readouterr().out == "- one: 1\n  two: null\n"
    _print(None, [["CREATE TABLE"]], Namespace(fmt="tsv", delimiter=","))
    assert capsys.readouterr().out == "CREATE TABLE\n"
