"""pg_hactl demote-cluster / promote-cluster: options, checks, prompt, PATCH /config, waiting."""
from __future__ import annotations

import io
import re
from typing import Any

import pytest
from pg_ha.config.settings import Auth
from pg_ha.ctl import cmd_cluster_role as role_mod
from pg_ha.ctl.cli import build_parser
from pg_ha.ctl.cmd_cluster_role import change_cluster_role, progress, run_demote, run_promote, standby_config
from pg_ha.ctl.context import Ctx
from pg_ha.ctl.ctlconfig import CtlConfig, RestAuth
from pg_ha.ctl.errors import CtlError, UsageError

from tests.fakes import FakeDCS, three_member_dcs

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


class FakeClient:
    def __init__(self, ctx: RoleCtx, name: str) -> None:
        self.ctx, self.name = ctx, name

    def patch_config(self, changes: dict[str, Any]) -> tuple[int, Any]:
        self.ctx.patches.append((self.name, changes))
        if self.ctx.answer is not None:
            return self.ctx.answer
        config = dict(self.ctx.fake.get_cluster().config.data)  # type: ignore[union-attr]
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        self.ctx.fake.set_config(config)
        return 200, config


class RoleCtx(Ctx):
    def __init__(self, dcs: FakeDCS) -> None:
        super().__init__(CtlConfig(scope="demo", namespace="/service/", dcs=None, rest=RestAuth(),
                                   superuser=Auth("postgres")))
        self._dcs["demo"] = dcs
        self.fake = dcs
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.answer: tuple[int, Any] | None = None

    def client(self, member, timeout: float = 5.0):  # type: ignore[no-untyped-def, override]
        return FakeClient(self, member.name)


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def standby_dcs() -> FakeDCS:
    dcs = three_member_dcs()
    dcs.set_config({"ttl": 30, "loop_wait": 10, "standby_cluster": {"host": "10.0.0.9", "port": 5432}})
    dcs.set_member("pg0", role="standby_leader", lsn=50331648, port=5432, api_port=8008)
    return dcs


def test_options_as_patronictl() -> None:
    args = parse("demote-cluster", "batman", "--host", "10.0.0.1", "--port", "5433", "--restore-command",
                 "cp /a/%f %p", "--primary-slot-name", "slot1", "--force")
    assert (args.cluster_name, args.host, args.port, args.restore_command, args.primary_slot_name, args.force) == \
        ("batman", "10.0.0.1", 5433, "cp /a/%f %p", "slot1", True)
    assert standby_config(args) == {"host": "10.0.0.1", "port": 5433, "primary_slot_name": "slot1",
                                    "restore_command": "cp /a/%f %p"}
    assert list(standby_config(parse("demote-cluster", "--restore-command", "x", "--host", "h"))) == \
        ["host", "restore_command"]
    assert standby_config(parse("demote-cluster", "--port", "6432")) == {"port": 6432}
    promote = parse("promote-cluster", "batman", "--force")
    assert (promote.cluster_name, promote.force) == ("batman", True)
    assert parse("promote-cluster").cluster_name is None and not parse("promote-cluster").force


def test_demote_needs_host_port_or_restore_command() -> None:
    with pytest.raises(UsageError, match=r"^At least --host, --port or --restore-command should be specified$"):
        standby_config(parse("demote-cluster", "--primary-slot-name", "s"))
    with pytest.raises(SystemExit) as exc:
        parse("demote-cluster", "--port", "x")
    assert exc.value.code == 2


def test_demote_patches_the_leader_and_waits_for_the_standby_leader(capsys) -> None:
    ctx = RoleCtx(three_member_dcs())
    looks: list[str] = []

    def sleep(_: float) -> None:  # the daemon restarts the leader as a standby leader meanwhile
        looks.append("slept")
        if len(looks) == 1:
            ctx.fake.set_member("pg0", role="standby_leader", state="starting", lsn=50331648, port=5432)
        else:
            ctx.fake.set_member("pg0", role="standby_leader", state="running", lsn=50331648, port=5432)

    args = parse("demote-cluster", "--host", "10.0.0.1", "--port", "5433", "--force")
    assert change_cluster_role(ctx, "demo", True, standby_config(args), sleep=sleep) == 0
    assert ctx.patches == [("pg0", {"standby_cluster": {"host": "10.0.0.1", "port": 5433}})]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Current cluster topology" and lines[1].startswith("+---")
    progress_lines = [line for line in lines if re.match(STAMP, line)]
    assert re.fullmatch(STAMP + " cluster is unlocked: False, leader role: primary, leader state: running",
                        progress_lines[0])
    assert progress_lines[1].endswith("leader role: standby_leader, leader state: starting")
    assert re.fullmatch(STAMP + " cluster is successfully demoted", progress_lines[2]) and len(progress_lines) == 3
    final = lines[lines.index(progress_lines[2]) + 1:]
    assert final[0].startswith("+---") and final[-1].startswith("+---")
    assert "| Leader " in lines[4]  # the topology shown before
    assert "| pg0    | 127.0.0.1:5432 | Standby Leader |" in "\n".join(final)  # the cluster after


def test_promote_removes_standby_cluster(capsys) -> None:
    ctx = RoleCtx(standby_dcs())

    def sleep(_: float) -> None:
        ctx.fake.set_member("pg0", role="primary", lsn=50331648, port=5432)

    assert change_cluster_role(ctx, "demo", True, None, sleep=sleep) == 0
    assert ctx.patches == [("pg0", {"standby_cluster": None})]
    assert "standby_cluster" not in ctx.fake.get_cluster().config.data  # type: ignore[union-attr]
    out = capsys.readouterr().out
    assert re.search(STAMP + " cluster is successfully promoted\n", out)


def test_refusals_change_nothing(monkeypatch) -> None:
    ctx = RoleCtx(three_member_dcs())
    with pytest.raises(CtlError, match=r"^Cluster is already in the required state$"):
        run_promote(ctx, parse("promote-cluster", "--force"))
    with pytest.raises(CtlError, match=r"^Cluster is already in the required state$"):
        run_demote(RoleCtx(standby_dcs()), parse("demote-cluster", "--host", "h", "--force"))
    leaderless = three_member_dcs()
    leaderless.set_leader(None)
    with pytest.raises(CtlError, match=r"^Cluster has no leader, demotion is not possible$"):
        run_demote(RoleCtx(leaderless), parse("demote-cluster", "--host", "h", "--force"))
    with pytest.raises(CtlError, match=r"^Cluster has no leader, promotion is not possible$"):
        run_promote(RoleCtx(leaderless), parse("promote-cluster", "--force"))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    with pytest.raises(CtlError, match=r"^Aborted cluster demotion$"):
        run_demote(ctx, parse("demote-cluster", "--host", "h"))
    assert ctx.patches == []


def test_prompt_wording_and_yes(monkeypatch, capsys) -> None:
    ctx = RoleCtx(standby_dcs())
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    monkeypatch.setattr(role_mod.time, "sleep",
                        lambda _: ctx.fake.set_member("pg0", role="primary", lsn=50331648, port=5432))
    assert run_promote(ctx, parse("promote-cluster", "demo")) == 0
    assert "Are you sure you want to promote demo cluster? [y/N]: " in capsys.readouterr().out
    assert ctx.patches == [("pg0", {"standby_cluster": None})]


def test_refused_patch_is_an_error() -> None:
    ctx = RoleCtx(three_member_dcs())
    ctx.answer = (503, "not now\n")
    with pytest.raises(CtlError, match=r"^Failed to demote demo cluster: /config PATCH status code=503, \(not now\)$"):
        run_demote(ctx, parse("demote-cluster", "--host", "h", "--force"))


def test_progress_waits_for_the_old_leader_after_a_change_of_leader() -> None:
    dcs = standby_dcs()
    dcs.set_member("pg1", role="standby_leader", lsn=50331648, port=5433, api_port=8009)
    dcs.set_leader("pg1")
    dcs.set_member("pg0", role="replica", state="stopped", lsn=50331648, port=5432)
    done, line = progress(dcs.get_cluster(), "pg0", demote=True)
    assert not done and line.endswith("leader role: standby_leader, leader state: running, "
                                      "previous leader state: 'stopped'")
    dcs.set_member("pg0", role="replica", state="running", lsn=50331648, port=5432)
    assert progress(dcs.get_cluster(), "pg0", demote=True)[0]
    dcs.set_leader(None)
    done, line = progress(dcs.get_cluster(), "pg0", demote=False)
    assert not done and line.endswith("cluster is unlocked: True, leader role: None, leader state: None")
