"""Custom bootstrap and standby cluster: config validation, argv, recovery plan, conf files,
the standby_leader role."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pg_ha.config.load import ConfigError, build_config, dynamic_from
from pg_ha.config.settings import DynamicSettings, PostgresqlSettings
from pg_ha.core.status import CycleFacts, member_role, patroni_status
from pg_ha.node import standby
from pg_ha.postgresql import config as pgconf
from pg_ha.postgresql import custom_bootstrap


def raw(bootstrap: dict[str, Any] | None = None, postgresql: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"scope": "demo", "name": "pg0", "restapi": {"listen": "127.0.0.1:8008"},
            "etcd3": {"hosts": ["127.0.0.1:2379"]},
            "postgresql": {"data_dir": "/tmp/d", "listen": "127.0.0.1:5432", **(postgresql or {})},
            "bootstrap": bootstrap or {}}


def test_bootstrap_method_is_parsed_with_its_options() -> None:
    config, warnings = build_config(raw({"method": "restore", "post_bootstrap": "/bin/post",
                                         "restore": {"command": "/bin/restore --from s3", "no_params": "off",
                                                     "keep_existing_recovery_conf": True, "bucket": "b"}}),
                                    environ={})
    pg = config.postgresql
    assert pg.bootstrap_method == "restore" and pg.post_bootstrap == "/bin/post"
    assert pg.bootstrap_method_options == {"command": "/bin/restore --from s3", "no_params": False,
                                           "keep_existing_recovery_conf": True, "bucket": "b"}
    assert warnings == [], "the method's own section is not an unknown key"


def test_initdb_method_and_post_init_alias() -> None:
    config, _ = build_config(raw({"method": "initdb", "post_init": "/bin/p"}), environ={})
    assert config.postgresql.bootstrap_method is None and config.postgresql.post_bootstrap == "/bin/p"


def test_replica_method_options_survive_a_bootstrap_method() -> None:
    config, _ = build_config(raw({"method": "restore", "restore": {"command": "/bin/r"}},
                                 {"create_replica_methods": ["wal_g", "basebackup"], "wal_g": {"command": "/bin/w"}}),
                             environ={})
    assert config.postgresql.replica_method_options == {"wal_g": {"command": "/bin/w"}}


@pytest.mark.parametrize("bootstrap, message", [
    ({"method": "restore"}, "bootstrap.restore: missing"),
    ({"method": "restore", "restore": "x"}, "bootstrap.restore: expected dict"),
    ({"method": "restore", "restore": {"no_params": True}}, "bootstrap.restore.command: missing"),
    ({"method": "restore", "restore": {"command": "c", "no_params": "maybe"}}, "bootstrap.restore.no_params"),
    ({"method": "restore", "restore": {"command": "c", "recovery_conf": ["x"]}}, "bootstrap.restore.recovery_conf"),
])
def test_bad_bootstrap_method_is_one_line(bootstrap: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_config(raw(bootstrap), environ={})


def test_standby_cluster_in_dynamic_config() -> None:
    dyn = dynamic_from({"standby_cluster": {"host": "10.0.0.9", "port": "5433", "primary_slot_name": "s",
                                            "create_replica_methods": ["basebackup"]}}, "config")
    assert dyn.standby_cluster == {"host": "10.0.0.9", "port": 5433, "primary_slot_name": "s",
                                   "create_replica_methods": ["basebackup"]}
    assert dynamic_from({}, "config").standby_cluster is None
    assert dynamic_from({"standby_cluster": None}, "config").standby_cluster is None


@pytest.mark.parametrize("mode", [True, "quorum"])
def test_a_standby_cluster_runs_no_synchronous_replication(mode: Any) -> None:
    """As Patroni: synchronous_mode is ignored while standby_cluster is set, and applies again
    once the standby cluster is promoted (standby_cluster removed)."""
    sync = {"synchronous_mode": mode, "synchronous_mode_strict": True}
    dyn = dynamic_from({**sync, "standby_cluster": {"host": "h"}}, "config")
    assert (dyn.synchronous_mode, dyn.synchronous_quorum, dyn.synchronous_mode_strict) == (False, False, False)
    dyn = dynamic_from(sync, "config")
    assert (dyn.synchronous_mode, dyn.synchronous_quorum, dyn.synchronous_mode_strict) == \
        (True, mode == "quorum", True)
    with pytest.raises(ConfigError, match="synchronous_mode_strict"):
        dynamic_from({"synchronous_mode_strict": "maybe", "standby_cluster": {"host": "h"}}, "config")


@pytest.mark.parametrize("section, message", [
    ("h", "config.standby_cluster: expected dict"),
    ({"port": 5432}, "config.standby_cluster: needs host"),
    ({"host": "h", "port": "x"}, "config.standby_cluster.port"),
    ({"host": "h", "port": 70000}, "config.standby_cluster.port: must be <= 65535"),
    ({"host": "h", "create_replica_methods": "basebackup"}, "config.standby_cluster.create_replica_methods"),
])
def test_bad_standby_cluster_is_one_line(section: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        dynamic_from({"standby_cluster": section}, "config")


def test_remote_name() -> None:
    assert standby.remote_name(DynamicSettings()) is None
    assert standby.remote_name(DynamicSettings(standby_cluster={"host": "h", "port": 6000})) == "h:6000"
    assert standby.remote_name(DynamicSettings(standby_cluster={"host": "h"})) == "h:5432"
    assert standby.remote_name(DynamicSettings(standby_cluster={"restore_command": "c"})) == "restore_command"


def test_custom_bootstrap_argv() -> None:
    opts = {"command": "/bin/restore --from 's3 bucket'", "keep_existing_recovery_conf": True,
            "recovery_conf": {"a": 1}, "no_params": False, "target": "latest"}
    assert custom_bootstrap.command_argv("demo", "/d", opts) == [
        "/bin/restore", "--from", "s3 bucket", "--scope=demo", "--datadir=/d", "--target=latest"]
    assert custom_bootstrap.command_argv("demo", "/d", {"command": "/bin/r", "no_params": True}) == ["/bin/r"]


def test_recovery_plan(tmp_path: Path) -> None:
    assert custom_bootstrap.recovery_plan(str(tmp_path), {}) == ({}, False)
    conf = {"restore_command": "cp /a/%f %p", "recovery_target_action": "promote"}
    assert custom_bootstrap.recovery_plan(str(tmp_path), {"recovery_conf": conf}) == (conf, True)
    (tmp_path / "standby.signal").write_text("")
    assert custom_bootstrap.recovery_plan(str(tmp_path), {}) == ({}, False), "dropped unless kept"
    assert custom_bootstrap.recovery_plan(str(tmp_path), {"keep_existing_recovery_conf": True}) == ({}, True)


def test_standby_recovery_settings_round_trip(tmp_path: Path) -> None:
    s = PostgresqlSettings(name="pg0", scope="demo", data_dir=str(tmp_path),
                           parameters={"restore_command": "user-value"})
    text = pgconf.render_postgresql_conf(s, {"primary_conninfo": "host=h", "restore_command": "cp %f %p",
                                             "recovery_min_apply_delay": "5min"})
    (tmp_path / "postgresql.conf").write_text(text)
    assert pgconf.read_recovery_params(str(tmp_path)) == {
        "primary_conninfo": "host=h", "recovery_target_timeline": "latest", "restore_command": "cp %f %p",
        "recovery_min_apply_delay": "5min"}
    plain = pgconf.render_postgresql_conf(s, {"primary_conninfo": "host=h"})
    (tmp_path / "postgresql.conf").write_text(plain)
    assert "restore_command" not in pgconf.read_recovery_params(str(tmp_path)), \
        "a restore_command parameter is not taken for a standby_cluster setting"


def test_standby_leader_role() -> None:
    facts = CycleFacts(running=True, in_recovery=True, standby_leader=True)
    assert member_role(facts) == "standby_leader"
    assert member_role(CycleFacts(running=True, in_recovery=False, standby_leader=True)) == "primary"
    assert member_role(CycleFacts(running=True, in_recovery=True)) == "replica"
    config, _ = build_config(raw(), environ={})
    assert patroni_status(config, facts)["role"] == "standby_leader"


@pytest.mark.parametrize(("facts", "state"), [
    (CycleFacts(running=True, in_recovery=True, streaming=True, restore_command=True), "streaming"),
    (CycleFacts(running=True, in_recovery=True, restore_command=True), "in archive recovery"),
    (CycleFacts(running=True, in_recovery=True), None),
    (CycleFacts(running=True, in_recovery=False, restore_command=True), None),  # a primary
    (CycleFacts(running=False, in_recovery=True, restore_command=True), None),
])
def test_replication_state_as_patroni_publishes_it(facts: CycleFacts, state: str | None) -> None:
    from pg_ha.core.status import member_data, patroni_status, replication_state

    from tests.fakes import make_config

    assert replication_state(facts) == state
    config = make_config("pg1")
    assert member_data(config, facts).get("replication_state") == state
    assert patroni_status(config, facts).get("replication_state") == state


@pytest.mark.parametrize("data, sync, quorum", [
    ({"synchronous_mode": True}, True, False),
    ({"synchronous_mode": "on"}, True, False),
    ({"synchronous_mode": "quorum"}, True, True),
    ({"synchronous_mode": "off"}, False, False),
    ({"synchronous_mode": False}, False, False),
    ({}, False, False),
    ({"synchronous_mode": True, "standby_cluster": {"host": "h"}}, False, False),
    ({"synchronous_mode": "quorum", "standby_cluster": {"restore_command": "x"}}, False, False),
    ({"synchronous_mode": True, "standby_cluster": None}, True, False),
])
def test_the_cluster_config_key_says_synchronous_mode_as_patroni(data: dict, sync: bool, quorum: bool) -> None:
    """What the REST API (switchover checks, /sync) and pg_hactl read from the DCS config key."""
    from pg_ha.core.model import ClusterConfig
    config = ClusterConfig(1, data)
    assert (config.synchronous_mode, config.quorum_commit) == (sync, quorum)
