"""pg_hactl show-config / edit-config: -s/-p paths, diffs, validation, compare-and-swap."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
from pg_ha.config.settings import Auth
from pg_ha.ctl.cmd_config import apply_pairs, config_yaml, flatten, run_edit, run_show, set_path, unified_diff
from pg_ha.ctl.context import Ctx
from pg_ha.ctl.ctlconfig import CtlConfig, RestAuth
from pg_ha.ctl.errors import CtlError, UsageError

from tests.fakes import FakeDCS, three_member_dcs

CONFIG = {"loop_wait": 10, "maximum_lag_on_failover": 1048576, "retry_timeout": 10, "ttl": 30,
          "postgresql": {"parameters": {"max_connections": 100}, "use_pg_rewind": True}}


def test_set_path_dotted_keys_and_null_removes() -> None:
    data: dict[str, Any] = {"postgresql": {"parameters": {"a": 1}}}
    set_path(data, ["postgresql", "parameters", "work_mem"], "8MB")
    set_path(data, ["synchronous_mode"], True)
    set_path(data, ["standby_cluster", "host"], "10.0.0.1")
    assert data == {"postgresql": {"parameters": {"a": 1, "work_mem": "8MB"}}, "synchronous_mode": True,
                    "standby_cluster": {"host": "10.0.0.1"}}
    set_path(data, ["standby_cluster", "host"], None)
    set_path(data, ["nothing", "here"], None)
    assert "standby_cluster" not in data and "nothing" not in data
    set_path(data, ["postgresql", "parameters", "auto_explain", "log_min_duration"], 100)
    assert data["postgresql"]["parameters"]["auto_explain.log_min_duration"] == 100


def test_apply_pairs_takes_yaml_values_and_keeps_the_input() -> None:
    changed = apply_pairs(CONFIG, ["ttl=40", "synchronous_mode=on", "postgresql.parameters.work_mem=8MB",
                                   "postgresql.parameters.max_connections=null", "tags=[a, b]", "pause=true"])
    assert changed["ttl"] == 40 and changed["synchronous_mode"] is True and changed["pause"] is True
    assert changed["postgresql"]["parameters"] == {"work_mem": "8MB"} and changed["tags"] == ["a", "b"]
    assert CONFIG["postgresql"]["parameters"] == {"max_connections": 100}
    assert "ttl" not in apply_pairs(CONFIG, ["ttl="])  # an empty value removes, like null
    for bad in ("ttl", "=1", "a..b=1", "x=[unclosed"):
        with pytest.raises(UsageError):
            apply_pairs(CONFIG, [bad])


def test_unified_diff_as_the_seeds_show_it() -> None:
    before = config_yaml(CONFIG)
    after = config_yaml(apply_pairs(CONFIG, ["postgresql.parameters.work_mem=8MB", "ttl=60"]))
    assert unified_diff(before, after) == [
        "---", "+++", "@@ -3,6 +3,7 @@", " postgresql:", "   parameters:", "     max_connections: 100",
        "+    work_mem: 8MB", "   use_pg_rewind: true", " retry_timeout: 10", "-ttl: 30", "+ttl: 60"]
    assert unified_diff(before, before) == []


def test_flatten_for_tsv() -> None:
    assert flatten(CONFIG)[:3] == [("loop_wait", 10), ("maximum_lag_on_failover", 1048576),
                                   ("postgresql.parameters.max_connections", 100)]
    assert flatten({"a": [1, 2], "b": {}}) == [("a", "[1, 2]"), ("b", "{}")]


class FakeCtx(Ctx):
    """A Ctx on a FakeDCS; ``race`` runs right after the snapshot is read."""

    def __init__(self, dcs: FakeDCS) -> None:
        super().__init__(CtlConfig(scope="demo", namespace="/service/", dcs=None, rest=RestAuth(),
                                   superuser=Auth("postgres")))
        self._dcs["demo"] = dcs
        self.fake = dcs
        self.race: Any = None

    def cluster(self, scope: str, must_exist: bool = True):  # type: ignore[no-untyped-def]
        snapshot = super().cluster(scope, must_exist)
        if self.race is not None:
            self.race(self.fake)
        return snapshot


def edit_args(**kw: Any) -> Namespace:
    base = {"cluster_name": None, "quiet": False, "kvpairs": [], "pgkvpairs": [], "apply_file": None,
            "replace_file": None, "force": True}
    base.update(kw)
    return Namespace(**base)


@pytest.fixture
def ctx() -> FakeCtx:
    return FakeCtx(three_member_dcs(config=json.loads(json.dumps(CONFIG))))


def test_edit_writes_with_the_version_read(ctx: FakeCtx, capsys) -> None:
    assert run_edit(ctx, edit_args(pgkvpairs=["work_mem=8MB"], kvpairs=["ttl=40"])) == 0
    out = capsys.readouterr().out
    assert "+    work_mem: 8MB" in out and "+ttl: 40" in out and out.endswith("Configuration changed\n")
    assert ctx.fake.value("config")["postgresql"]["parameters"]["work_mem"] == "8MB"
    assert run_edit(ctx, edit_args(pgkvpairs=["work_mem=8MB"])) == 0
    assert capsys.readouterr().out == "Not changed\n"


def test_concurrent_change_is_an_error_not_a_lost_update(ctx: FakeCtx) -> None:
    ctx.race = lambda dcs: dcs.set_config({**CONFIG, "loop_wait": 5})
    with pytest.raises(CtlError, match="concurrent changes"):
        run_edit(ctx, edit_args(kvpairs=["ttl=40"]))
    assert ctx.fake.value("config")["loop_wait"] == 5 and ctx.fake.value("config")["ttl"] == 30


def test_invalid_config_is_refused_before_writing(ctx: FakeCtx) -> None:
    writes = len(ctx.fake.writes)
    for pairs in (["ttl=soon"], ["loop_wait=soon"], ["postgresql.parameters=[1]"]):
        with pytest.raises(CtlError, match="invalid, nothing changed"):
            run_edit(ctx, edit_args(kvpairs=pairs))
    assert len(ctx.fake.writes) == writes


def test_apply_and_replace_files(ctx: FakeCtx, tmp_path: Path, capsys) -> None:
    patch = tmp_path / "p.yaml"
    patch.write_text("postgresql:\n  parameters:\n    max_connections: null\n    work_mem: 4MB\n")
    run_edit(ctx, edit_args(apply_file=str(patch), quiet=True))
    assert ctx.fake.value("config")["postgresql"]["parameters"] == {"work_mem": "4MB"}
    whole = tmp_path / "w.yaml"
    whole.write_text("ttl: 30\nloop_wait: 10\nretry_timeout: 10\n")
    run_edit(ctx, edit_args(replace_file=str(whole), quiet=True))
    assert ctx.fake.value("config") == {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
    assert capsys.readouterr().out == "Configuration changed\nConfiguration changed\n"


def test_declined_changes_are_not_written(ctx: FakeCtx, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert run_edit(ctx, edit_args(kvpairs=["ttl=40"], force=False)) == 0
    assert capsys.readouterr().out.endswith("Apply these changes? [y/N]: Not applied\n")
    assert ctx.fake.value("config")["ttl"] == 30


def test_editor_is_run_on_the_yaml(ctx: FakeCtx, tmp_path: Path, monkeypatch) -> None:
    editor = tmp_path / "ed.sh"
    editor.write_text("#!/bin/sh\ncase \"$1\" in */demo-config-*.yaml) ;; *) exit 9 ;; esac\n"
                      "sed -i 's/ttl: 30/ttl: 45/' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    run_edit(ctx, edit_args())
    assert ctx.fake.value("config")["ttl"] == 45
    monkeypatch.setenv("EDITOR", "false")
    with pytest.raises(CtlError, match="Editor exited with return code 1"):
        run_edit(ctx, edit_args())


def test_show_config_formats(ctx: FakeCtx, capsys) -> None:
    run_show(ctx, Namespace(cluster_name=None, fmt="yaml"))
    assert capsys.readouterr().out.startswith("loop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n")
    run_show(ctx, Namespace(cluster_name=None, fmt="json"))
    assert json.loads(capsys.readouterr().out) == CONFIG
    run_show(ctx, Namespace(cluster_name=None, fmt="tsv"))
    assert "postgresql.parameters.max_connections\t100\n" in capsys.readouterr().out
    ctx.fake.delete("config")
    with pytest.raises(CtlError, match="The config key does not exist"):
        run_edit(ctx, edit_args(kvpairs=["ttl=40"]))
