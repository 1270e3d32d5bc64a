"""What a Patroni config says about the files around the data directory: custom_conf is
included in place of postgresql.base.conf; a config_dir outside the data directory is
refused in one line instead of being silently ignored."""
from __future__ import annotations

from pathlib import Path

import yaml
from pg_ha.config.load import build_config
from pg_ha.postgresql import config as pgconf

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seeds_demo_postgres0.yml"


def demo(**postgresql: object) -> dict:
    text = FIXTURE.read_text().replace("@API_PORT@", "8008").replace("@PG_PORT@", "5432") \
        .replace("@ETCD@", "127.0.0.1:2379").replace("@DIR@", "/tmp/demo")
    raw = yaml.safe_load(text)
    raw["postgresql"].update(postgresql)
    return raw


def test_custom_conf_is_included_in_place_of_the_base_conf() -> None:
    config, warnings = build_config(demo(custom_conf="/etc/postgresql/custom's.conf"), environ={})
    assert config.postgresql.custom_conf == "/etc/postgresql/custom's.conf"
    assert not any("custom_conf" in w for w in warnings)
    lines = pgconf.render_postgresql_conf(config.postgresql, None).splitlines()
    assert lines[1] == "include '/etc/postgresql/custom''s.conf'"
    assert "postgresql.base.conf" not in "\n".join(lines)


def test_without_custom_conf_the_base_conf_is_included() -> None:
    config, _ = build_config(demo(), environ={})
    assert config.postgresql.custom_conf is None
    assert pgconf.render_postgresql_conf(config.postgresql, None).splitlines()[1] == "include 'postgresql.base.conf'"


def test_config_dir_equal_to_the_data_dir_is_accepted() -> None:
    config, _ = build_config(demo(config_dir="/tmp/demo/data/postgresql0/"), environ={})
    assert config.postgresql.data_dir == "/tmp/demo/data/postgresql0"


def test_config_dir_elsewhere_is_where_the_config_files_go() -> None:
    """Implemented since (config/local.py, postgresql/layout.py): no longer refused."""
    config, warnings = build_config(demo(config_dir="/etc/postgresql/15/main"), environ={})
    assert config.postgresql.config_dir == "/etc/postgresql/15/main"
    assert not any("config_dir" in w for w in warnings)
