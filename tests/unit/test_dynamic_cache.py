"""patroni.dynamic.json: the dynamic config cached in the data directory, as Patroni keeps it."""
from __future__ import annotations

import dataclasses
import json
import os

from pg_ha.node import dynamic_cache
from pg_ha.node.daemon import Daemon

from tests.fakes import FakeDCS, make_config


def test_written_only_into_a_data_directory_that_holds_a_cluster_and_only_on_change(tmp_path) -> None:
    cache = dynamic_cache.DynamicCache(str(tmp_path))
    assert not cache.save({"ttl": 30})  # no PG_VERSION: being created or cloned
    assert not (tmp_path / "patroni.dynamic.json").exists()
    (tmp_path / "PG_VERSION").write_text("15\n")
    assert cache.save({"ttl": 30})
    assert json.loads((tmp_path / "patroni.dynamic.json").read_text()) == {"ttl": 30}
    assert os.stat(tmp_path / "patroni.dynamic.json").st_mode & 0o777 == 0o600
    assert not cache.save({"ttl": 30})
    assert cache.save({"ttl": 40, "loop_wait": 5})
    assert dynamic_cache.load(str(tmp_path)) == {"ttl": 40, "loop_wait": 5}
    again = dynamic_cache.DynamicCache(str(tmp_path), dynamic_cache.load(str(tmp_path)))
    assert not again.save({"loop_wait": 5, "ttl": 40})  # what it read: not rewritten


def test_unreadable_or_foreign_content_is_ignored(tmp_path) -> None:
    assert dynamic_cache.load(str(tmp_path)) is None
    (tmp_path / "patroni.dynamic.json").write_text("[1, 2]")
    assert dynamic_cache.load(str(tmp_path)) is None
    (tmp_path / "patroni.dynamic.json").write_text("{not json")
    assert dynamic_cache.load(str(tmp_path)) is None


def test_the_cache_wins_over_bootstrap_dcs_at_start(tmp_path) -> None:
    base = make_config("pg0", ttl=30, loop_wait=10)
    config = dataclasses.replace(base, postgresql=dataclasses.replace(base.postgresql, data_dir=str(tmp_path)))
    assert Daemon(config, FakeDCS("pg0"), object()).config.dynamic.ttl == 30
    (tmp_path / "patroni.dynamic.json").write_text(json.dumps({"ttl": 40, "loop_wait": 5, "retry_timeout": 10,
                                                               "postgresql": {"parameters": {"work_mem": "8MB"}}}))
    daemon = Daemon(config, FakeDCS("pg0"), object())
    assert (daemon.config.dynamic.ttl, daemon.config.dynamic.loop_wait) == (40, 5)
    assert daemon.config.postgresql.parameters["work_mem"] == "8MB"
    (tmp_path / "patroni.dynamic.json").write_text(json.dumps({"ttl": "soon"}))  # invalid: bootstrap.dcs
    assert Daemon(config, FakeDCS("pg0"), object()).config.dynamic.ttl == 30
