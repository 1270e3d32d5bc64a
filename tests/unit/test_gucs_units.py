# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parameters renamed or removed between PostgreSQL majors, translated as Patroni does."""
from __future__ import annotations

import logging

import pytest
from pg_ha.config.settings import PostgresqlSettings
from pg_ha.postgresql import config, gucs
from pg_ha.postgresql.ctl import log_tail

MB = 1024 * 1024


def test_wal_keep_segments_becomes_wal_keep_size_from_13():
    out = gucs.translate_parameters({"wal_keep_segments": 8, "work_mem": "4MB"}, 150000)
    assert out == {"wal_keep_size": "128MB", "work_mem": "4MB"}


def test_wal_keep_size_uses_the_segment_size():
    assert gucs.translate_parameters({"wal_keep_segments": "10"}, 130000, 64 * MB)["wal_keep_size"] == "640MB"


def test_explicit_wal_keep_size_wins_over_segments():
    out = gucs.translate_parameters({"wal_keep_segments": 8, "wal_keep_size": "1GB"}, 150000)
    assert out == {"wal_keep_size": "1GB"}


def test_wal_keep_default_is_patronis_8_segments():
    assert gucs.translate_parameters({}, 150000) == {"wal_keep_size": "128MB"}
    assert gucs.translate_parameters({}, 120000) == {"wal_keep_segments": 8}


def test_wal_keep_size_becomes_segments_before_13():
    assert gucs.translate_parameters({"wal_keep_size": "1GB"}, 120000) == {"wal_keep_segments": 64}
    assert gucs.translate_parameters({"wal_keep_size": 256}, 110000) == {"wal_keep_segments": 16}


def test_wal_level_hot_standby_is_replica_from_9_6():
    assert gucs.translate_parameters({"wal_level": "hot_standby"}, 150000)["wal_level"] == "replica"
    assert gucs.translate_parameters({"wal_level": "replica"}, 90500)["wal_level"] == "hot_standby"


def test_removed_and_renamed_parameters(caplog):
    params = {"stats_temp_directory": "/tmp", "force_parallel_mode": "on", "vacuum_defer_cleanup_age": 0}
    with caplog.at_level(logging.WARNING):
        on15 = gucs.translate_parameters(params, 150000)
        on16 = gucs.translate_parameters(params, 160000)
    assert "stats_temp_directory" not in on15 and on15["force_parallel_mode"] == "on"
    assert on15["vacuum_defer_cleanup_age"] == 0
    assert on16 == {"debug_parallel_query": "on", "wal_keep_size": "128MB"}
    assert "removing parameter stats_temp_directory" in caplog.text
    assert "translated parameter force_parallel_mode to debug_parallel_query" in caplog.text


def test_unknown_major_changes_nothing():
    params = {"wal_keep_segments": 8, "stats_temp_directory": "/x"}
    assert gucs.translate_parameters(params, None) == params


@pytest.mark.parametrize("text,major", [("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 150000),
                                        ("postgres (PostgreSQL) 9.6.24", 90600),
                                        ("postgres (PostgreSQL) 17devel", 170000), ("garbage", None)])
def test_parse_version_output(text, major):
    assert gucs.parse_version_output(text) == major


def test_binary_major_without_a_binary_is_none(tmp_path):
    assert gucs.binary_major(str(tmp_path / "nobin")) is None


def test_rendered_conf_has_no_wal_keep_segments_on_15(tmp_path):
    """The config of Patroni's features (and many real ones) sets wal_keep_segments."""
    s = PostgresqlSettings(name="n", scope="s", data_dir=str(tmp_path / "data"),
                           parameters={"wal_keep_segments": 100})
    text = config.render_postgresql_conf(s, None)
    assert gucs.binary_major(s.bin_dir) == 150000
    assert "wal_keep_segments" not in text and "wal_keep_size = '1600MB'" in text


def test_log_tail_reads_only_what_the_start_wrote(tmp_path):
    log = tmp_path / "postmaster.log"
    log.write_text("old line\n")
    offset = log.stat().st_size
    with log.open("a") as fh:
        fh.write("".join(f"line {i}\n" for i in range(30)))
        fh.write('FATAL:  unrecognized configuration parameter "wal_keep_segments"\n')
    tail = log_tail(str(log), offset)
    assert len(tail) == 20 and tail[-1].startswith("FATAL:") and "old line" not in tail
    assert log_tail(str(log), offset + 10 ** 6)[-1].startswith("FATAL:")  # a log started anew
    assert log_tail(str(tmp_path / "missing")) == []


def test_a_standby_never_goes_below_what_pg_control_recorded(caplog):
    """A restored backup or replica of a primary with max_connections 101 refuses to start
    with 100 ("recovery aborted because of insufficient parameter settings")."""
    control = {"max_connections setting": "101", "max_worker_processes setting": "8",
               "max_wal_senders setting": "10", "max_prepared_xacts setting": "0",
               "max_locks_per_xact setting": "64"}
    with caplog.at_level(logging.WARNING):
        out = gucs.raise_to_controldata({"max_connections": 100, "max_wal_senders": 20, "work_mem": "4MB"}, control)
    assert out["max_connections"] == 101 and out["max_wal_senders"] == 20 and out["work_mem"] == "4MB"
    # not configured and not above the server's default: left out (writing them made a reload
    # report pending_restart on a rewound replica forever, test_cluster's pending_restart test)
    assert "max_locks_per_transaction" not in out and "max_worker_processes" not in out
    raised = gucs.raise_to_controldata({}, {**control, "max_worker_processes setting": "16"})
    assert raised == {"max_connections": 101, "max_worker_processes": 16}
    assert "max_connections value in pg_controldata: 101" in caplog.text
    assert gucs.raise_to_controldata({"max_connections": 100}, {}) == {"max_connections": 100}

