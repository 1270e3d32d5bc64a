"""Patroni settings beyond the basics: implemented ones take effect, the others are reported
once each as accepted, not supported; timings are adjusted as Patroni 4.1 does."""
from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pg_ha.__main__ import setup_logging
from pg_ha.api.config_patch import validate_dynamic
from pg_ha.config.compat import DYNAMIC_NOT_SUPPORTED, LOCAL_NOT_SUPPORTED
from pg_ha.config.load import ConfigError, build_config, dynamic_from
from pg_ha.config.parse import adjust_timing
from pg_ha.config.settings import LogSettings, PostgresqlSettings
from pg_ha.core import ha
from pg_ha.core.model import Cluster, Leader
from pg_ha.core.status import CycleFacts, member_data
from pg_ha.postgresql import config as pgconfig
from pg_ha.postgresql import layout
from pg_ha.postgresql.ctl import Ctl
from pg_ha.postgresql.query import Db

from .test_config import demo


def build(mutate: Any = None, environ: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    raw = demo()
    if mutate is not None:
        mutate(raw)
    return build_config(raw, environ=environ or {})


# -- timings: Patroni's _validate_and_adjust_timeouts ---------------------------------
@pytest.mark.parametrize(("given", "used"), [
    ((30, 10, 10), (30, 10, 10)),
    ((20, 10, 10), (20, 1, 9)),     # 1 + 2*10 > 20: loop_wait to 1, retry_timeout (20-1)//2
    ((25, 10, 10), (25, 5, 10)),    # only loop_wait reduced: 25 - 2*10
    ((5, 10, 10), (5, 1, 2)),       # pg_ha keeps a short ttl (Patroni would raise it to 20)
    ((30, 0, 0), (30, 1, 1)),       # loop_wait >= 1, retry_timeout >= 1
    ((3, -1, -2), (3, 1, 1)),
    ((-4, -1, -2), (3, 1, 1)),
    ((60, 40, 10), (60, 40, 10)),   # 40 + 20 == 60 holds
])
def test_adjust_timing_as_patroni(given: tuple[int, int, int], used: tuple[int, int, int]) -> None:
    ttl, loop_wait, retry, warnings = adjust_timing(*given)
    assert (ttl, loop_wait, retry) == used
    assert bool(warnings) == (given != used)


def test_adjust_timing_warning_names_the_values() -> None:
    assert adjust_timing(20, 10, 10)[3] == [
        'Violated the rule "loop_wait + 2*retry_timeout <= ttl", where ttl=20. '
        "Adjusting loop_wait from 10 to 1 and retry_timeout from 10 to 9"]
    assert adjust_timing(30, 0, 10)[3][0] == "loop_wait=0 can't be smaller than 1, adjusting to 1"


@pytest.mark.parametrize("ttl", [2, 0, -4])
def test_a_ttl_no_loop_wait_and_retry_timeout_fit_in_is_raised_to_3(ttl: int) -> None:
    warnings: list[str] = []
    dyn = dynamic_from({"ttl": ttl}, "config", warnings)
    assert (dyn.ttl, dyn.loop_wait, dyn.retry_timeout) == (3, 1, 1)
    assert warnings[0] == f"config: ttl={ttl} can't be smaller than 3, adjusting to 3"
    assert validate_dynamic({"ttl": ttl}) is None


def test_timing_adjusted_at_start_with_a_warning() -> None:
    config, warnings = build(lambda c: c["bootstrap"]["dcs"].update(ttl=20, loop_wait=10, retry_timeout=10))
    assert (config.dynamic.ttl, config.dynamic.loop_wait, config.dynamic.retry_timeout) == (20, 1, 9)
    assert [w for w in warnings if "Violated" in w] == [
        'bootstrap.dcs: Violated the rule "loop_wait + 2*retry_timeout <= ttl", where ttl=20. '
        "Adjusting loop_wait from 10 to 1 and retry_timeout from 10 to 9"]


def test_timing_from_the_dcs_is_adjusted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        dyn = dynamic_from({"ttl": 20}, "config")
    assert (dyn.ttl, dyn.loop_wait, dyn.retry_timeout) == (20, 1, 9)
    assert any(r.getMessage().startswith("config: Violated the rule") for r in caplog.records)


def test_patch_config_accepts_what_patroni_runs_with() -> None:
    assert validate_dynamic({"ttl": 20}) is None
    assert validate_dynamic({"ttl": 20, "retry_timeout": 10}) is None
    assert validate_dynamic({"ttl": "20"}) == "ttl must be an integer, got '20'"


# -- accepted, not supported --------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(LOCAL_NOT_SUPPORTED))
def test_local_not_supported_is_one_warning_naming_the_key(path: str) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        parts = path.split(".")
        if parts[0] == "etcd3":  # one DCS only: rename the demo's etcd section
            raw["etcd3"] = raw.pop("etcd")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = {"database": "citus", "group": 0} if path == "citus" else \
            1 if path == "tags.sync_priority" else True  # a priority is a number (validated)

    _, warnings = build(mutate)
    found = [w for w in warnings if "accepted, not supported" in w]
    assert len(found) == 1 and found[0].startswith(f"{path}: accepted, not supported (")
    assert not [w for w in warnings if w.startswith("unknown configuration key")]


@pytest.mark.parametrize("path", sorted(DYNAMIC_NOT_SUPPORTED))
def test_dynamic_not_supported_is_one_warning_naming_the_key(path: str) -> None:
    data: dict[str, Any] = {}
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = 1
    warnings: list[str] = []
    dynamic_from(data, "bootstrap.dcs", warnings)
    assert warnings == [f"bootstrap.dcs.{path}: accepted, not supported ({DYNAMIC_NOT_SUPPORTED[path]})"]


def test_tag_nostream_is_applied() -> None:
    config, warnings = build(lambda c: c["tags"].update(nostream="true"))  # as the features write it
    assert config.nostream is True and not [w for w in warnings if "nostream" in w]
    config, _ = build(lambda c: c["tags"].update(nostream=False))
    assert config.nostream is False


# -- postgresql.*: implemented ------------------------------------------------------------
def test_postgresql_local_settings() -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw["postgresql"].update(bin_name={"pg_ctl": "pg_ctl.real", "postgres": "postgres15"},
                                 pg_ctl_timeout=90, config_dir="/etc/pg", custom_conf="/etc/pg/custom.conf",
                                 use_unix_socket=True, use_unix_socket_repl="on", before_stop="/bin/true x",
                                 proxy_address="10.0.0.5:6432", pg_ident=["map1 os db"])

    config, warnings = build(mutate)
    pg = config.postgresql
    assert pg.bin_name == {"pg_ctl": "pg_ctl.real", "postgres": "postgres15"}
    assert pg.pg_ctl_timeout == 90 and pg.config_dir == "/etc/pg" and pg.custom_conf == "/etc/pg/custom.conf"
    assert pg.use_unix_socket and pg.use_unix_socket_repl and pg.before_stop == "/bin/true x"
    assert pg.proxy_url == "postgres://10.0.0.5:6432/postgres" and pg.pg_ident == ("map1 os db",)
    # parsed, but there is nothing for it to change (no local replication connection)
    assert [w for w in warnings if "postgresql" in w] == [
        f"postgresql.use_unix_socket_repl: accepted, not supported "
        f"({LOCAL_NOT_SUPPORTED['postgresql.use_unix_socket_repl']})"]


def test_before_stop_under_callbacks_is_accepted() -> None:
    config, _ = build(lambda c: c["postgresql"].setdefault("callbacks", {}).update(before_stop="/bin/x"))
    assert config.postgresql.before_stop == "/bin/x"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["postgresql"].update(bin_name="pg_ctl"), "postgresql.bin_name: expected dict"),
    (lambda c: c["postgresql"].update(bin_name={"pg_ctl": "/usr/bin/pg_ctl"}), "postgresql.bin_name.pg_ctl"),
    (lambda c: c["postgresql"].update(pg_ctl_timeout="soon"), "postgresql.pg_ctl_timeout: expected int"),
    (lambda c: c["postgresql"].update(pg_ctl_timeout=-1), "postgresql.pg_ctl_timeout: must be >= 0"),
    (lambda c: c["postgresql"].update(use_unix_socket="maybe"), "postgresql.use_unix_socket: expected a bool"),
    (lambda c: c["postgresql"].update(proxy_address="nohost"), "postgresql.proxy_address: expected host:port"),
    (lambda c: c["postgresql"].update(pg_ident="map"), "postgresql.pg_ident: expected list"),
    (lambda c: c["log"].update(level="LOUD"), "log.level: expected one of"),
    (lambda c: c["log"].update(format="%(nonsense"), "log.format: invalid format"),
    (lambda c: c["log"].update(file_size="big"), "log.file_size: expected int"),
    (lambda c: c["log"].update(mode=0o1777), "log.mode: must be <= 511"),
    (lambda c: c["log"].update(loggers={"pg_ha.dcs": "LOUD"}), "log.loggers.pg_ha.dcs: expected one of"),
])
def test_invalid_local_settings_one_clear_line(mutate: Any, message: str) -> None:
    def with_log(raw: dict[str, Any]) -> None:
        raw.setdefault("log", {})
        mutate(raw)

    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        build(with_log)


def test_unknown_bin_name_is_a_warning() -> None:
    config, warnings = build(lambda c: c["postgresql"].update(bin_name={"pg_dumpall": "x"}))
    assert config.postgresql.bin_name == {}
    assert "unknown configuration key postgresql.bin_name.pg_dumpall (ignored)" in warnings


def test_environment_spellings() -> None:
    config, _ = build(environ={"PATRONI_POSTGRESQL_BIN_PG_CTL": "pg_ctl.wrapper",
                               "PATRONI_POSTGRESQL_CONFIG_DIR": "/etc/pgconf",
                               "PATRONI_POSTGRESQL_PROXY_ADDRESS": "proxy:6432",
                               "PATRONI_LOGLEVEL": "ERROR", "PATRONI_LOG_LEVEL": "DEBUG",
                               "PATRONI_LOG_DIR": "/var/log/pg_ha", "PATRONI_LOG_FILE_SIZE": "1000",
                               "PATRONI_LOG_FILE_NUM": "2", "PATRONI_LOG_MODE": "0640",
                               "PATRONI_LOG_DATEFMT": "%H:%M"})
    assert config.postgresql.bin_name == {"pg_ctl": "pg_ctl.wrapper"}
    assert config.postgresql.config_dir == "/etc/pgconf" and config.postgresql.proxy_address == "proxy:6432"
    assert config.log == LogSettings(level="DEBUG", dateformat="%H:%M", dir="/var/log/pg_ha", file_size=1000,
                                     file_num=2, mode=0o640)


# -- their effect -------------------------------------------------------------------------
def settings(tmp_path: Path, **kw: Any) -> PostgresqlSettings:
    return PostgresqlSettings(name="pg0", scope="s", data_dir=str(tmp_path / "data"), bin_dir="/opt/pg/bin", **kw)


def test_bin_name_renames_the_tools(tmp_path: Path) -> None:
    ctl = Ctl(settings(tmp_path, bin_name={"pg_ctl": "pg_ctl.wrapper"}))
    assert ctl.binary("pg_ctl") == "/opt/pg/bin/pg_ctl.wrapper"
    assert ctl.binary("initdb") == "/opt/pg/bin/initdb"


def test_config_dir_layout(tmp_path: Path) -> None:
    data, conf = tmp_path / "data", tmp_path / "etc"
    data.mkdir()
    (data / "postgresql.conf").write_text("shared_buffers = 16MB\n")  # initdb's
    s = settings(tmp_path, config_dir=str(conf), pg_hba=("local all all trust",), pg_ident=("m os db",))
    layout.prepare(s)
    assert (conf / "postgresql.base.conf").read_text() == "shared_buffers = 16MB\n"
    layout.write_files(s, None)
    text = (conf / "postgresql.conf").read_text()
    assert "include 'postgresql.base.conf'" in text
    assert f"hba_file = '{conf}/pg_hba.conf'" in text and f"ident_file = '{conf}/pg_ident.conf'" in text
    assert (conf / "pg_hba.conf").read_text().endswith("local all all trust\n")
    assert (conf / "pg_ident.conf").read_text().endswith("m os db\n")
    assert layout.server_options(s) == {"config_file": str(conf / "postgresql.conf")}
    assert layout.server_options(settings(tmp_path)) == {}


def test_custom_conf_is_included_instead_of_the_base(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    s = settings(tmp_path, custom_conf="/etc/custom 'x'.conf")
    layout.prepare(s)
    layout.write_files(s, None)
    text = (tmp_path / "data" / "postgresql.conf").read_text()
    assert "include '/etc/custom ''x''.conf'" in text and pgconfig.BASE_CONF not in text
    assert not (tmp_path / "data" / pgconfig.BASE_CONF).exists()


def test_use_unix_socket_host(tmp_path: Path) -> None:
    def host(**kw: Any) -> Any:
        return Db(settings(tmp_path, **kw)).connect_kwargs()["host"]

    assert host() == "127.0.0.1"
    assert host(use_unix_socket=True) == ""  # libpq's default socket directory
    assert host(use_unix_socket=True, parameters={"unix_socket_directories": "@abstract, /run/pg,/tmp"}) == "/run/pg"
    assert host(use_unix_socket=True, parameters={"unix_socket_directories": "relative"}) == "127.0.0.1"


def test_proxy_url_in_member_key(tmp_path: Path) -> None:
    config, _ = build(lambda c: c["postgresql"].update(proxy_address="10.0.0.5:6432"))
    assert member_data(config, CycleFacts())["proxy_url"] == "postgres://10.0.0.5:6432/postgres"
    plain, _ = build()
    assert "proxy_url" not in member_data(plain, CycleFacts())


def test_before_stop_runs_before_pg_ctl_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pg_ha.postgresql import Postgresql

    marker = tmp_path / "ran"
    pg = Postgresql(settings(tmp_path, before_stop=f"touch {marker}", pg_ctl_timeout=7))
    calls: list[tuple[str, float, bool]] = []
    monkeypatch.setattr(pg.ctl, "is_running", lambda: True)
    monkeypatch.setattr(pg.ctl, "stop", lambda mode, timeout: calls.append((mode, timeout, marker.exists())) or True)
    assert pg.stop("fast")
    assert calls == [("fast", 7, True)]  # the script had run, and pg_ctl_timeout bounds the stop


def test_log_dir_rotating_file(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(LogSettings(level="DEBUG", dir=str(tmp_path), file_size=200, file_num=2, mode=0o640,
                                  dateformat="%Y", loggers={"pg_ha.test": "ERROR"}))
        for i in range(20):
            logging.getLogger("pg_ha.x").debug("line %s of the rotating log", i)
        logging.getLogger("pg_ha.test").warning("not shown")
        for handler in root.handlers:
            handler.flush()
        files = sorted(os.listdir(tmp_path))
        assert files == ["pg_ha.log", "pg_ha.log.1", "pg_ha.log.2"]
        assert os.stat(tmp_path / "pg_ha.log").st_mode & 0o777 == 0o640
        text = (tmp_path / "pg_ha.log").read_text()
        assert f"{datetime.now(UTC).year} DEBUG: line 19 of the rotating log" in text
        assert "not shown" not in "".join((tmp_path / f).read_text() for f in files)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.getLogger("pg_ha.test").setLevel(logging.NOTSET)


# -- primary_start_timeout ----------------------------------------------------------------
def crashed_leader(peers: dict[str, ha.PeerInfo]) -> tuple[Cluster, ha.LocalView]:
    cluster = Cluster(leader=Leader(name="pg0", version=1))
    local = ha.LocalView(name="pg0", now=datetime.now(UTC), sysid="1", running=False, peers=peers)
    return cluster, local


def test_primary_start_timeout_zero_fails_over_when_possible() -> None:
    healthy = {"pg1": ha.PeerInfo(name="pg1", reachable=True, running=True)}
    cluster, local = crashed_leader(healthy)
    decision = ha._not_running(cluster, local, False, ha.Policy(primary_start_timeout=0))
    assert (decision.action, decision.message) == (ha.Action.RELEASE_LOCK, "Primary crashed. Failing over.")
    unhealthy = {"pg1": ha.PeerInfo(name="pg1", reachable=False)}
    cluster, local = crashed_leader(unhealthy)
    assert ha._not_running(cluster, local, False, ha.Policy(primary_start_timeout=0)).action == \
        ha.Action.START_PRIMARY
    cluster, local = crashed_leader(healthy)
    assert ha._not_running(cluster, local, False, ha.Policy(primary_start_timeout=300)).action == \
        ha.Action.START_PRIMARY
