# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patroni's local settings beyond the basics of load.py: the postgresql.* file layout,
binaries, timeouts and hooks, and the `log` section. Errors are one line naming the key."""
from __future__ import annotations

import logging
import os
from typing import Any

from .parse import ConfigError, as_bool, as_int, as_str, expect
from .settings import LogSettings

# the tools Patroni's bin_name names (validator.py); pg_waldump is one pg_ha also runs
BIN_NAMES = ("pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "postgres", "pg_isready", "pg_rewind",
             "pg_waldump")
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL")
LOG_KEYS = {"type", "level", "traceback_level", "format", "dateformat", "static_fields", "max_queue_size",
            "dir", "file_num", "file_size", "mode", "loggers", "deduplicate_heartbeat_logs"}


def _opt_str(section: dict[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    return None if value in (None, "") else as_str(value, f"{where}.{key}")


def _bin_name(value: Any, warnings: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    expect(value, dict, "postgresql.bin_name")
    names: dict[str, str] = {}
    for tool, name in value.items():
        key = f"postgresql.bin_name.{tool}"
        if tool not in BIN_NAMES:
            warnings.append(f"unknown configuration key {key} (ignored)")
            continue
        name = as_str(name, key).strip()
        if not name or "/" in name:
            raise ConfigError(f"{key}: expected the name of an executable in bin_dir, got {name!r}")
        names[str(tool)] = name
    return names


def _host_port(value: Any, key: str) -> str:
    text = as_str(value, key).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: expected host:port, got {text!r}")
    return text


def postgresql_local(section: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """PostgresqlSettings fields from Patroni's bin_name, pg_ctl_timeout, config_dir,
    custom_conf, use_unix_socket(_repl), before_stop, proxy_address, pg_ident."""
    callbacks = section.get("callbacks") if isinstance(section.get("callbacks"), dict) else {}
    before_stop = _opt_str(section, "before_stop", "postgresql")
    if before_stop is None:  # also accepted beside the other hooks
        before_stop = _opt_str(callbacks, "before_stop", "postgresql.callbacks")
    config_dir = _opt_str(section, "config_dir", "postgresql")
    pg_ident = section.get("pg_ident") or []
    expect(pg_ident, list, "postgresql.pg_ident")
    return {
        "bin_name": _bin_name(section.get("bin_name"), warnings),
        "pg_ctl_timeout": as_int(section.get("pg_ctl_timeout", 60), "postgresql.pg_ctl_timeout", 0, 10 ** 6),
        "config_dir": None if config_dir is None else os.path.abspath(config_dir),
        "custom_conf": _opt_str(section, "custom_conf", "postgresql"),
        "use_unix_socket": as_bool(section.get("use_unix_socket", False), "postgresql.use_unix_socket"),
        "use_unix_socket_repl": as_bool(section.get("use_unix_socket_repl", False),
                                        "postgresql.use_unix_socket_repl"),
        "before_stop": before_stop,
        "proxy_address": None if section.get("proxy_address") in (None, "")
        else _host_port(section["proxy_address"], "postgresql.proxy_address"),
        "pg_ident": tuple(as_str(line, "postgresql.pg_ident") for line in pg_ident),
    }


def _level(value: Any, key: str) -> str:
    level = as_str(value, key).strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{key}: expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)


def _mode(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit() and value.strip().startswith("0"):
        value = int(value.strip(), 8)  # "0640" from the environment
    return as_int(value, "log.mode", 0, 0o777)


def log_settings(section: dict[str, Any], warnings: list[str]) -> LogSettings:
    """Patroni's `log` section: level, format, dateformat, loggers and a rotating file."""
    for key in section:
        if key not in LOG_KEYS:
            warnings.append(f"unknown configuration key log.{key} (ignored)")
    default = LogSettings()
    fmt = section.get("format", default.format)
    if not isinstance(fmt, str):  # Patroni's list form belongs to log.type json
        warnings.append("log.format: only a string format is supported (json logs are not), "
                        "using the default format")
        fmt = default.format
    dateformat = _opt_str(section, "dateformat", "log")
    try:
        logging.Formatter(fmt, dateformat, validate=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"log.format: invalid format {fmt!r}: {exc}") from None
    loggers = section.get("loggers") or {}
    expect(loggers, dict, "log.loggers")
    return LogSettings(
        level=_level(section.get("level", default.level), "log.level"),
        format=fmt, dateformat=dateformat,
        dir=_opt_str(section, "dir", "log"),
        file_size=as_int(section.get("file_size", default.file_size), "log.file_size", 0),
        file_num=as_int(section.get("file_num", default.file_num), "log.file_num", 0),
        mode=_mode(section.get("mode")),
        loggers={str(name): _level(level, f"log.loggers.{name}") for name, level in loggers.items()},
    )
