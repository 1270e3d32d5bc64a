"""The zookeeper: section (Patroni's schema) and PATRONI_ZOOKEEPER_* -> DcsSettings."""
from __future__ import annotations

import copy

import pytest
from pg_ha.config.load import ConfigError, build_config

BASE = {
    "scope": "batman", "name": "pg0",
    "restapi": {"listen": "127.0.0.1:8008"},
    "postgresql": {"listen": "127.0.0.1:5432", "data_dir": "/tmp/pg0"},
}


def with_zk(section: object, **extra: object) -> dict:
    raw = copy.deepcopy(BASE)
    raw["zookeeper"] = section
    raw.update(extra)
    return raw


def test_hosts_list_and_string() -> None:
    config, warnings = build_config(with_zk({"hosts": ["zk1:2181", "zk2", "[::1]:2182"]}), environ={})
    assert config.dcs.kind == "zookeeper"
    assert config.dcs.hosts == ("zk1:2181", "zk2:2181", "[::1]:2182")
    assert warnings == []
    config, _ = build_config(with_zk({"hosts": "zk1:2181, zk2:2182"}), environ={})
    assert config.dcs.hosts == ("zk1:2181", "zk2:2182")
    assert not config.dcs.use_ssl and config.dcs.verify and config.dcs.set_acls == () and config.dcs.auth_data == ()


def test_tls_acls_auth() -> None:
    section = {"hosts": ["zk1:2281"], "use_ssl": True, "cacert": "/etc/ca.crt", "cert": "/etc/c.crt",
               "key": "/etc/c.key", "key_password": "pw", "verify": False,
               "set_acls": {"CN=principal1": ["ALL"], "CN=principal2": ["read", "Write"]},
               "auth_data": {"digest": "user:secret"}}
    config, warnings = build_config(with_zk(section), environ={})
    dcs = config.dcs
    assert dcs.use_ssl and not dcs.verify
    assert (dcs.cacert, dcs.cert, dcs.key, dcs.key_password) == ("/etc/ca.crt", "/etc/c.crt", "/etc/c.key", "pw")
    assert dcs.set_acls == (("CN=principal1", ("ALL",)), ("CN=principal2", ("READ", "WRITE")))
    assert dcs.auth_data == (("digest", "user:secret"),)
    assert warnings == []


def test_patroni_environment() -> None:
    env = {"PATRONI_ZOOKEEPER_HOSTS": "'zk1:2181','zk2:2181'", "PATRONI_ZOOKEEPER_USE_SSL": "true",
           "PATRONI_ZOOKEEPER_CACERT": "/ca.crt", "PATRONI_ZOOKEEPER_CERT": "/c.crt",
           "PATRONI_ZOOKEEPER_KEY": "/c.key", "PATRONI_ZOOKEEPER_KEY_PASSWORD": "pw",
           "PATRONI_ZOOKEEPER_VERIFY": "false", "PATRONI_ZOOKEEPER_SET_ACLS": "CN=p1: [READ, WRITE]",
           "PATRONI_ZOOKEEPER_AUTH_DATA": "{digest: 'u:p'}"}
    config, _ = build_config(with_zk({"hosts": ["ignored:1"]}), environ=env)
    dcs = config.dcs
    assert dcs.kind == "zookeeper" and dcs.hosts == ("zk1:2181", "zk2:2181")
    assert dcs.use_ssl and not dcs.verify and dcs.key_password == "pw"
    assert (dcs.cacert, dcs.cert, dcs.key) == ("/ca.crt", "/c.crt", "/c.key")
    assert dcs.set_acls == (("CN=p1", ("READ", "WRITE")),)
    assert dcs.auth_data == (("digest", "u:p"),)
    # the environment alone makes the section, as for etcd3 (PATRONI_ETCD3_HOSTS)
    raw = copy.deepcopy(BASE)
    config, _ = build_config(raw, environ={"PATRONI_ZOOKEEPER_HOSTS": "[zk3:2181, zk4]"})
    assert config.dcs.kind == "zookeeper" and config.dcs.hosts == ("zk3:2181", "zk4:2181")
    config, _ = build_config(raw, environ={"PG_HA_ZOOKEEPER_HOSTS": "zk5", "PATRONI_ZOOKEEPER_HOSTS": "zk6"})
    assert config.dcs.hosts == ("zk5:2181",)  # PG_HA_ wins


@pytest.mark.parametrize("section, message", [
    ({}, "zookeeper.hosts: missing"),
    ({"hosts": []}, "zookeeper.hosts: no ZooKeeper server"),
    ({"hosts": {"a": 1}}, "zookeeper.hosts: expected list"),
    ({"hosts": ["zk1:port"]}, "zookeeper.hosts: invalid port"),
    ({"hosts": ["zk1"], "use_ssl": "maybe"}, "zookeeper.use_ssl: expected a boolean"),
    ({"hosts": ["zk1"], "verify": "perhaps"}, "zookeeper.verify: expected a boolean"),
    ({"hosts": ["zk1"], "set_acls": {"CN=x": ["EAT"]}}, "zookeeper.set_acls.CN=x: unknown permission 'EAT'"),
    ({"hosts": ["zk1"], "set_acls": ["CN=x"]}, "zookeeper.set_acls: expected dict"),
    ({"hosts": ["zk1"], "auth_data": "digest: [1"}, "zookeeper.auth_data: cannot parse"),
    ("zk1:2181", "zookeeper: expected dict"),
])
def test_invalid_section_one_clear_line(section: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(with_zk(section), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_key_warns_and_one_dcs_only() -> None:
    _, warnings = build_config(with_zk({"hosts": ["zk1"], "exhibitor": {"hosts": ["x"]}, "colour": "red"}),
                               environ={})
    assert "unknown configuration key zookeeper.colour (ignored)" in warnings
    with pytest.raises(ConfigError, match="more than one DCS configured"):
        build_config(with_zk({"hosts": ["zk1"]}, etcd3={"hosts": ["e:2379"]}), environ={})
