"""Config loading: Patroni's schema, environment overrides, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pg_ha.config.load import ConfigError, build_config, dynamic_from, load_config, merge_dicts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seeds_demo_postgres0.yml"
REPO = Path(__file__).resolve().parents[2]


def demo() -> dict:
    text = FIXTURE.read_text().replace("@API_PORT@", "8008").replace("@PG_PORT@", "5432") \
        .replace("@ETCD@", "127.0.0.1:2379").replace("@DIR@", "/tmp/demo")
    return yaml.safe_load(text)


def test_seeds_demo_config_loads() -> None:
    config, warnings = build_config(demo(), environ={})
    assert config.scope == "batman" and config.name == "postgresql0"
    assert config.namespace == "/service/"
    assert config.dcs.kind == "etcd" and config.dcs.hosts == ("127.0.0.1:2379",)
    assert config.restapi.listen_port == 8008
    assert config.restapi.api_url == "http://127.0.0.1:8008/patroni"
    assert config.postgresql.port == 5432 and config.postgresql.data_dir == "/tmp/demo/data/postgresql0"
    assert config.postgresql.conn_url == "postgres://127.0.0.1:5432/postgres"
    assert config.postgresql.superuser.password == "zalando"
    assert config.postgresql.replication.username == "replicator"
    assert config.postgresql.use_pg_rewind is True
    assert config.dynamic.ttl == 30 and config.dynamic.loop_wait == 10
    assert config.postgresql.pg_hba[0] == "host replication replicator 127.0.0.1/32 md5"
    assert config.tags["nofailover"] is False
    assert warnings == ["bootstrap.users is not applied (Patroni removed it in 3.0): create roles in "
                        "bootstrap.post_bootstrap instead"]


@pytest.mark.parametrize("mutate, message", [
    # a ttl below Patroni's minimum is raised to it (test_timing_adjusted_as_patroni); one no
    # etcd lease can hold is refused
    (lambda c: c["bootstrap"]["dcs"].update(ttl=10 ** 31), "bootstrap.dcs.ttl: must be <= 1000000000"),
    (lambda c: c["bootstrap"]["dcs"].update(loop_wait="often"), "bootstrap.dcs.loop_wait: expected int"),
    (lambda c: c["postgresql"].pop("data_dir"), "postgresql.data_dir: missing"),
    (lambda c: c.update(consul={"host": "x"}) or c.pop("etcd"), "consul: DCS not supported"),
    (lambda c: c.pop("etcd"), "etcd3: no DCS configured"),
    (lambda c: c.update(etcd3={"hosts": ["x:1"]}), "more than one DCS configured"),
    (lambda c: c["restapi"].update(listen="127.0.0.1:99999"), "restapi.listen: port out of range"),
    (lambda c: c["restapi"].update(authentication={"username": "admin"}), "restapi.authentication.password: missing"),
    (lambda c: c["restapi"].update(authentication={"password": "x"}), "restapi.authentication.username: missing"),
    (lambda c: c["restapi"].update(verify_client="sometimes"), "restapi.verify_client: expected none, optional"),
    (lambda c: c["restapi"].update(allowlist_include_members="maybe"), "restapi.allowlist_include_members"),
    (lambda c: c.update(scope=None), "scope: missing"),
    (lambda c: c["postgresql"].update(parameters=[1]), "postgresql.parameters: expected dict"),
    (lambda c: c["tags"].update(nofailover="maybe"), "tags.nofailover: expected a boolean"),
    (lambda c: c["tags"].update(failover_priority=-1), "tags.failover_priority: must be >= 0"),
    (lambda c: c["tags"].update(failover_priority="high"), "tags.failover_priority"),
    (lambda c: c.update(restapi="x"), "restapi: expected dict"),
])
def test_invalid_config_one_clear_line(mutate, message: str) -> None:
    raw = demo()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        build_config(raw, environ={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_keys_warn() -> None:
    raw = demo()
    raw["colour"] = "blue"
    raw["postgresql"]["frobnicate"] = 1
    _, warnings = build_config(raw, environ={})
    assert "unknown configuration key colour (ignored)" in warnings
    assert "unknown configuration key postgresql.frobnicate (ignored)" in warnings


def test_patroni_environment_overrides() -> None:
    env = {"PATRONI_NAME": "pgX", "PATRONI_SCOPE": "robin", "PATRONI_ETCD_HOSTS": "10.0.0.1:2379,10.0.0.2:2379",
           "PATRONI_RESTAPI_USERNAME": "admin", "PATRONI_RESTAPI_PASSWORD": "s3cret",
           "PATRONI_POSTGRESQL_DATA_DIR": "/srv/pg", "PATRONI_SUPERUSER_PASSWORD": "su",
           "PG_HA_NAME": "pgY"}
    config, _ = build_config(demo(), environ=env)
    assert config.name == "pgY"  # PG_HA_ wins over PATRONI_
    assert config.scope == "robin"
    assert config.dcs.hosts == ("10.0.0.1:2379", "10.0.0.2:2379")
    assert (config.restapi.username, config.restapi.password) == ("admin", "s3cret")
    assert config.postgresql.data_dir == "/srv/pg"
    assert config.postgresql.superuser.password == "su"


def test_etcd3_urls_and_protocol() -> None:
    raw = demo()
    raw.pop("etcd")
    raw["etcd3"] = {"hosts": ["https://a:2379", "b:2380"]}
    config, _ = build_config(raw, environ={})
    assert config.dcs.kind == "etcd3" and config.dcs.protocol == "https"
    assert config.dcs.hosts == ("a:2379", "b:2380")


def test_dynamic_layer_and_local_override() -> None:
    raw = demo()
    raw["postgresql"]["parameters"]["work_mem"] = "4MB"
    config, _ = build_config(raw, environ={})
    dyn = dynamic_from({"ttl": 20, "loop_wait": 2, "retry_timeout": 3,
                        "postgresql": {"parameters": {"work_mem": "8MB", "max_connections": 101}}}, "config")
    merged = config.with_dynamic(dyn)
    assert merged.dynamic.ttl == 20
    assert merged.postgresql.parameters["max_connections"] == 101
    assert merged.postgresql.parameters["work_mem"] == "4MB"  # the local file wins


def test_merge_dicts_null_deletes() -> None:
    assert merge_dicts({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}


def test_daemon_refuses_bad_config_exit_2(tmp_path: Path) -> None:
    raw = demo()
    raw["bootstrap"]["dcs"]["ttl"] = "soon"  # a ttl of 5 is adjusted now (as Patroni does), a word is not
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "pg_ha", str(path)], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO / "plugins" / "module_utils"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bootstrap.dcs.ttl" in lines[0]


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("scope: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert "invalid YAML" in str(err.value) and "\n" not in str(err.value)


def test_validate_config_flag(tmp_path: Path) -> None:
    path = tmp_path / "ok.yml"
    path.write_text(yaml.safe_dump(demo()))
    env = {"PYTHONPATH": str(REPO / "plugins" / "module_utils"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "pg_ha", "--validate-config", str(path)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("slots, message", [
    ({"s": {"type": "weird"}}, "config.slots.s.type: expected physical or logical"),
    ({"s": {"type": "logical", "database": "postgres"}}, "config.slots.s: a logical slot needs database and plugin"),
    ({"s": "physical"}, "config.slots.s: expected dict"),
])
def test_permanent_slots_validation(slots: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        dynamic_from({"slots": slots}, "config")
    assert message in str(err.value)


def test_synchronous_mode_settings() -> None:
    dyn = dynamic_from({"synchronous_mode": "on", "synchronous_mode_strict": True, "synchronous_node_count": 2})
    assert (dyn.synchronous_mode, dyn.synchronous_mode_strict, dyn.synchronous_node_count) == (True, True, 2)
    quorum = dynamic_from({"synchronous_mode": "quorum", "synchronous_node_count": 1})
    assert (quorum.synchronous_mode, quorum.synchronous_quorum, quorum.synchronous_node_count) == (True, True, 1)
    assert dynamic_from({"synchronous_mode": True}).synchronous_quorum is False
    with pytest.raises(ConfigError, match="synchronous_mode"):
        dynamic_from({"synchronous_mode": "sometimes"})


@pytest.mark.parametrize("value, seconds", [(1800, 1800), ("30min", 1800), ("45s", 45), ("2h", 7200), ("0", 0)])
def test_member_slots_ttl_units(value: object, seconds: int) -> None:
    assert dynamic_from({"member_slots_ttl": value}).member_slots_ttl == seconds


def test_member_slots_ttl_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="member_slots_ttl"):
        dynamic_from({"member_slots_ttl": "soon"})


def test_remove_data_directory_options_default_false_as_patroni() -> None:
    config, _ = build_config(demo(), environ={})
    assert config.postgresql.remove_data_directory_on_rewind_failure is False
    assert config.postgresql.remove_data_directory_on_diverged_timelines is False
    raw = demo()
    raw["postgresql"]["remove_data_directory_on_rewind_failure"] = True
    config, _ = build_config(raw, environ={})
    assert config.postgresql.remove_data_directory_on_rewind_failure is True


def test_authentication_ssl_options() -> None:
    raw = demo()
    tls = {"sslmode": "verify-ca", "sslrootcert": "/c/ca.crt", "sslcert": "/c/u.crt", "sslkey": "/c/u.key"}
    for role in ("superuser", "replication", "rewind"):
        raw["postgresql"]["authentication"].setdefault(role, {"username": role}).update(tls)
    raw["postgresql"]["authentication"]["replication"]["gssencmode"] = "disable"
    config, _ = build_config(raw, environ={"PATRONI_REWIND_SSLMODE": "verify-full"})
    pg = config.postgresql
    assert pg.superuser.conn_options == tls
    assert pg.replication.conn_options == {**tls, "gssencmode": "disable"}
    assert pg.rewind is not None and pg.rewind.conn_options["sslmode"] == "verify-full"
    raw["postgresql"]["authentication"]["superuser"]["sslmode"] = ["x"]
    with pytest.raises(ConfigError, match="postgresql.authentication.superuser.sslmode"):
        build_config(raw, environ={})


def test_maximum_lag_on_syncnode() -> None:
    assert dynamic_from({}, "config").maximum_lag_on_syncnode == -1
    assert dynamic_from({"maximum_lag_on_syncnode": 15000000}, "config").maximum_lag_on_syncnode == 15000000
    with pytest.raises(ConfigError, match="maximum_lag_on_syncnode"):
        dynamic_from({"maximum_lag_on_syncnode": -5}, "config")


@pytest.mark.parametrize("tags, nofailover, priority, warning", [
    ({"failover_priority": "1", "nofailover": True}, True, 1,
     "Conflicting configuration between nofailover: True and failover_priority: 1. Defaulting to nofailover: True"),
    ({"failover_priority": "0", "nofailover": False}, False, 0,
     "Conflicting configuration between nofailover: False and failover_priority: 0. Defaulting to nofailover: False"),
    ({"failover_priority": "0"}, True, 0, None),
    ({"failover_priority": 2}, False, 2, None),
    ({"nofailover": True}, True, 1, None),
    ({}, False, 1, None),
])
def test_nofailover_and_failover_priority_as_patroni(tags: dict, nofailover: bool, priority: int,
                                                     warning: str | None) -> None:
    """The nofailover tag, when given, wins over failover_priority (with Patroni's warning)."""
    from pg_ha.core.model import Member

    raw = demo()
    raw["tags"] = dict(tags)
    config, warnings = build_config(raw, environ={})
    assert config.nofailover is nofailover and config.failover_priority == priority
    assert [w for w in warnings if w.startswith("Conflicting")] == ([warning] if warning else [])
    assert Member("m", 1, {"tags": config.tags}).nofailover is nofailover
    assert config.tags.get("failover_priority") == tags.get("failover_priority")  # published as written


def test_published_tags_as_patroni() -> None:
    from pg_ha.core.status import published_tags

    tags = {"failover_priority": "1", "nofailover": True, "noloadbalance": False, "clonefrom": False,
            "nosync": False, "replicatefrom": "pg1"}
    assert repr(published_tags(tags)) == "{'failover_priority': '1', 'nofailover': True, 'replicatefrom': 'pg1'}"
    assert published_tags({"nofailover": False, "noloadbalance": False, "nostream": False}) == {}
    assert published_tags({"failover_priority": "0", "nofailover": False}) == {"failover_priority": "0",
                                                                              "nofailover": False}


def test_permanent_slots_as_patroni_reads_them() -> None:
    """`name: 0` (Patroni's acceptance suite) or `{}` is a physical slot; database + plugin
    without a type is a logical one."""
    slots = dynamic_from({"slots": {"test_physical": 0, "p2": {}, "l": {"database": "postgres",
                                                                      "plugin": "test_decoding"}}},
                         "config").slots
    assert slots == {"test_physical": {"type": "physical"}, "p2": {"type": "physical"},
                     "l": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}
