"""pg_hactl member selection: dsn building, query connection parameters, role filters,
candidate eligibility for switchover/failover, and the member-selection step of actions."""
from __future__ import annotations

import io
from argparse import Namespace

import pytest
from pg_ha.ctl.cmd_members import run_flush, split_names
from pg_ha.ctl.cmd_query import connect_params, pick_members
from pg_ha.ctl.cmd_show import dsn_of
from pg_ha.ctl.cmd_switchover import candidate_names, ineligible
from pg_ha.ctl.context import leader_first, members_with_role
from pg_ha.ctl.errors import CtlError, UsageError

from tests.fakes import three_member_dcs
from tests.unit.test_ctl_config import FakeCtx


@pytest.fixture
def dcs():
    return three_member_dcs(leader="pg1")


def test_dsn_of_leader_replica_member(dcs) -> None:
    cluster = dcs.get_cluster()
    assert dsn_of(cluster, "demo", None, None) == {"member": "pg1", "host": "127.0.0.1", "port": 5433}
    assert dsn_of(cluster, "demo", "replica", None)["member"] == "pg0"
    assert dsn_of(cluster, "demo", "any", None)["member"] == "pg0"
    assert dsn_of(cluster, "demo", None, "pg2")["port"] == 5434
    assert dsn_of(cluster, "demo", "master", None)["member"] == "pg1"
    with pytest.raises(UsageError):
        dsn_of(cluster, "demo", "replica", "pg2")
    with pytest.raises(CtlError, match="pg9 is not a member of cluster demo"):
        dsn_of(cluster, "demo", None, "pg9")
    dcs.set_leader(None)
    with pytest.raises(CtlError, match="Can not find a suitable member"):
        dsn_of(dcs.get_cluster(), "demo", None, None)
    dcs.set_json("members/pg0", {"state": "running"})
    with pytest.raises(CtlError, match="publishes no conn_url"):
        dsn_of(dcs.get_cluster(), "demo", None, "pg0")


def test_query_connection_parameters(dcs) -> None:
    cluster = dcs.get_cluster()
    params = connect_params(cluster.get_member("pg2"), "dba", "secret", None)
    assert params == {"host": "127.0.0.1", "port": 5434, "user": "dba", "dbname": "postgres", "connect_timeout": 5,
                      "application_name": "pg_hactl", "password": "secret"}
    assert "password" not in connect_params(cluster.get_member("pg2"), "u", None, "db")
    assert [m.name for m in pick_members(cluster, "demo", None, None)] == ["pg1"]
    assert [m.name for m in pick_members(cluster, "demo", None, "replica")] == ["pg0", "pg2"]
    assert [m.name for m in pick_members(cluster, "demo", "pg2", None)] == ["pg2"]


def test_role_filters(dcs) -> None:
    cluster = dcs.get_cluster()
    names = {role: [m.name for m in members_with_role(cluster, role)]
             for role in ("leader", "primary", "master", "standby-leader", "replica", "standby", "any")}
    assert names == {"leader": ["pg1"], "primary": ["pg1"], "master": ["pg1"], "standby-leader": [],
                     "replica": ["pg0", "pg2"], "standby": ["pg0", "pg2"], "any": ["pg0", "pg1", "pg2"]}
    assert [m.name for m in leader_first(cluster)] == ["pg1", "pg0", "pg2"]


def test_candidates_and_eligibility(dcs) -> None:
    dcs.set_member("pg2", lsn=50331648, port=5434, tags={"nofailover": True})
    cluster = dcs.get_cluster()
    assert candidate_names(cluster) == ["pg0"]
    assert ineligible(cluster, "demo", "pg0", immediate=True) is None
    assert "does not exist" in ineligible(cluster, "demo", "pg7", True)
    assert "already the leader" in ineligible(cluster, "demo", "pg1", True)
    assert "tagged nofailover" in ineligible(cluster, "demo", "pg2", False)
    dcs.set_member("pg0", state="stopped", lsn=50331648)
    assert "is not running (state: stopped)" in ineligible(dcs.get_cluster(), "demo", "pg0", True)
    assert ineligible(dcs.get_cluster(), "demo", "pg0", immediate=False) is None  # checked when due
    dcs.set_member("pg0", lsn=50331648 - 3 * 1048576)
    assert "3 MB (3145728 bytes) behind the leader" in ineligible(dcs.get_cluster(), "demo", "pg0", True)
    dcs.set_config({"maximum_lag_on_failover": 4 * 1048576})
    assert ineligible(dcs.get_cluster(), "demo", "pg0", True) is None


def test_select_members(dcs, capsys) -> None:
    ctx = FakeCtx(dcs)
    cluster = dcs.get_cluster()
    assert [m.name for m in ctx.select_members(cluster, "demo", [], "any", True, "restart")] == ["pg0", "pg1", "pg2"]
    assert [m.name for m in ctx.select_members(cluster, "demo", ["pg2", "pg0", "pg2"], "replica", True, "restart")] \
        == ["pg0", "pg2"]
    assert capsys.readouterr().out == ""  # --force: no table
    with pytest.raises(CtlError, match="pg7 is not a member of cluster demo"):
        ctx.select_members(cluster, "demo", ["pg7"], "any", True, "restart")
    with pytest.raises(CtlError, match="No replica among provided members"):
        ctx.select_members(cluster, "demo", ["pg1"], "replica", True, "reinitialize", ask_for_one=True)
    with pytest.raises(UsageError):
        ctx.select_members(cluster, "demo", [], "replica", True, "reinitialize", ask_for_one=True)


def test_select_members_asks_which_one(dcs, capsys, monkeypatch) -> None:
    ctx = FakeCtx(dcs)
    monkeypatch.setattr("sys.stdin", io.StringIO("pg2\n"))
    chosen = ctx.select_members(dcs.get_cluster(), "demo", [], "replica", False, "reinitialize", ask_for_one=True)
    out = capsys.readouterr().out
    assert [m.name for m in chosen] == ["pg2"] and "| Cluster |" in out
    assert out.endswith("Which member do you want to reinitialize [pg0, pg2]? []: ")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CtlError, match="Aborted"):
        ctx.select_members(dcs.get_cluster(), "demo", [], "replica", False, "reinitialize", ask_for_one=True)


def test_flush_arguments(dcs, capsys) -> None:
    ctx = FakeCtx(dcs)
    assert split_names(ctx, []) == ("demo", []) and split_names(ctx, ["b", "m1"]) == ("b", ["m1"])
    with pytest.raises(UsageError, match="restart or switchover"):
        run_flush(ctx, Namespace(names=["demo", "later"], role="any", force=True))
    with pytest.raises(UsageError, match="no member names"):
        run_flush(ctx, Namespace(names=["demo", "pg0", "switchover"], role="any", force=True))
    assert run_flush(ctx, Namespace(names=["switchover"], role="any", force=True)) == 0
    assert capsys.readouterr().out == "No pending scheduled switchover\n"
