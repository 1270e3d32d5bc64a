# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files pg_ha owns in the data directory, and libpq connection strings.

pg_ha owns `postgresql.conf`: initdb's original is kept as `postgresql.base.conf` and
included at the top (like Patroni), or `postgresql.custom_conf` in its place when that is
set (as Patroni does); our parameters follow and win. `pg_hba.conf` is
replaced by the configured lines when there are any. Passwords only ever go to the
pgpass file (mode 0600), never into a conninfo string or a command line.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..config.settings import Auth, PostgresqlSettings
from . import gucs

logger = logging.getLogger(__name__)

MARKER = "# Written by pg_ha: do not edit, changes are overwritten. Local changes belong in pg_ha's config."
BASE_CONF = "postgresql.base.conf"
MAIN_CONF = "postgresql.conf"
HBA_CONF = "pg_hba.conf"
STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"
# recovery settings pg_ha writes itself for a replica; user values for them are ignored
MANAGED_RECOVERY = ("primary_conninfo", "primary_slot_name", "recovery_target_timeline")
# a standby leader's extra recovery settings (dynamic standby_cluster), after STANDBY_HEADER
STANDBY_RECOVERY = ("restore_command", "archive_cleanup_command", "recovery_min_apply_delay")
STANDBY_HEADER = "# standby_cluster"
# settings that come from dedicated config keys, never from `parameters`
FORCED = ("listen_addresses", "port", "hot_standby")
DEFAULTS: dict[str, Any] = {
    "max_connections": 100,
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_log_hints": True,
    # a replica whose upstream just changed (failover, switchover) retries after 1 s, not 5 s
    "wal_retrieve_retry_interval": "1s",
}
CONNECT_TIMEOUT = 3


# ---------------------------------------------------------------- postgresql.conf
def quote_conf_value(value: Any) -> str:
    """A value as postgresql.conf spells it: booleans on/off, numbers bare, the rest quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "''")
    return f"'{text}'"


def effective_parameters(settings: PostgresqlSettings) -> dict[str, Any]:
    """The server settings pg_ha writes, without the recovery ones (see render_postgresql_conf)."""
    params: dict[str, Any] = dict(DEFAULTS)
    params["cluster_name"] = settings.scope
    for name, value in settings.parameters.items():
        key = name.lower()
        if value is None:  # removed from the dynamic config: back to the default
            params.pop(key, None)
            continue
        if key in FORCED or key in MANAGED_RECOVERY:
            logger.warning("ignoring parameter %s: pg_ha sets it itself", name)
            continue
        params[key] = value
    major = gucs.binary_major(settings.bin_dir)
    segment = gucs.wal_segment_bytes(settings.bin_dir, settings.data_dir) if major else gucs.DEFAULT_SEGMENT_BYTES
    params = gucs.translate_parameters(params, major, segment)
    wal_level = str(params.get("wal_level", "replica")).lower()
    params["wal_level"] = wal_level if wal_level in ("replica", "logical") else "replica"
    if settings.use_pg_rewind and params.get("wal_log_hints") not in (True, "on", "true", 1, "1"):
        logger.warning("wal_log_hints forced on: use_pg_rewind needs it")
        params["wal_log_hints"] = True
    params["listen_addresses"] = settings.listen_hosts
    params["port"] = settings.port
    params["hot_standby"] = True
    if settings.enforce_hot_standby_feedback:  # copies of permanent logical slots need it
        params["hot_standby_feedback"] = True
    return params


def render_postgresql_conf(settings: PostgresqlSettings, recovery: Mapping[str, Any] | None,
                           include: str | None = None, files: Mapping[str, str] | None = None,
                           recovering: bool = False) -> str:
    """The text of postgresql.conf; `recovery` holds primary_conninfo & co. for a replica
    (`recovering`: an archive recovery without them, e.g. a custom bootstrap), `files`
    hba_file/ident_file unless the parameters set them (layout.py)."""
    lines = [MARKER, f"include {quote_conf_value(include or settings.custom_conf or BASE_CONF)}", ""]
    params = effective_parameters(settings)
    for name, value in (files or {}).items():
        params.setdefault(name, value)
    if recovery is not None or recovering:  # a standby must not go below what its primary had
        params = gucs.raise_to_controldata(params, gucs.controldata_settings(settings.bin_dir, settings.data_dir))
    # needs a restart to change: written for every role, so promotion leaves nothing pending
    params["recovery_target_timeline"] = (recovery or {}).get("recovery_target_timeline") or "latest"
    for name in sorted(params):
        lines.append(f"{name} = {quote_conf_value(params[name])}")
    if recovery:
        lines.append("")
        lines.append("# replica of the current leader")
        for name in ("primary_conninfo", "primary_slot_name"):
            if recovery.get(name) not in (None, ""):
                lines.append(f"{name} = {quote_conf_value(str(recovery[name]))}")
        extra = [n for n in STANDBY_RECOVERY if recovery.get(n) not in (None, "")]
        if extra:
            lines += ["", STANDBY_HEADER]
            lines += [f"{n} = {quote_conf_value(str(recovery[n]))}" for n in extra]
    return "\n".join(lines) + "\n"


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if not raw.startswith("'"):
        return raw.split("#", 1)[0].strip()
    out: list[str] = []
    i = 1
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
            continue
        if ch == "'":
            if raw[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            break
        out.append(ch)
        i += 1
    return "".join(out)


def parse_conf(text: str) -> dict[str, str]:
    """`name = value` lines of a postgresql.conf-style file (last one wins, names lowercased)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("include"):
            continue
        if "=" in line:
            name, _, value = line.partition("=")
        else:
            name, _, value = line.partition(" ")
        name = name.strip().lower()
        if name:
            result[name] = _unquote(value)
    return result


def read_recovery_params(data_dir: str) -> dict[str, str]:
    """primary_conninfo & co. as written in our postgresql.conf (empty when none)."""
    try:
        with open(os.path.join(data_dir, MAIN_CONF), encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {}
    conf = parse_conf(text)
    result = {k: conf[k] for k in MANAGED_RECOVERY if conf.get(k)}
    _, header, tail = text.partition("\n" + STANDBY_HEADER + "\n")
    if header:
        standby = parse_conf(tail)
        result.update({k: standby[k] for k in STANDBY_RECOVERY if standby.get(k)})
    return result


def ensure_base_conf(data_dir: str) -> None:
    """Keep a non-pg_ha postgresql.conf (from initdb or a replica method) as postgresql.base.conf."""
    main = os.path.join(data_dir, MAIN_CONF)
    base = os.path.join(data_dir, BASE_CONF)
    try:
        with open(main, encoding="utf-8") as fh:
            ours = MARKER in fh.read()
    except FileNotFoundError:
        if not os.path.exists(base):
            write_file(base, "# postgresql.base.conf created empty by pg_ha\n", 0o600)
        return
    if ours:
        if not os.path.exists(base):
            write_file(base, "# postgresql.base.conf created empty by pg_ha\n", 0o600)
        return
    if os.path.exists(base):
        logger.warning("replacing foreign %s, keeping the existing %s", main, BASE_CONF)
        return
    os.replace(main, base)
    logger.info("kept the original postgresql.conf as %s", BASE_CONF)


def render_pg_hba(lines: Iterable[str]) -> str:
    return "\n".join([MARKER, *[line.strip() for line in lines]]) + "\n"


def set_signal(data_dir: str, name: str, present: bool) -> bool:
    """Create or remove a signal file; True if something changed."""
    path = os.path.join(data_dir, name)
    exists = os.path.exists(path)
    if present and not exists:
        write_file(path, "", 0o600)
        return True
    if not present and exists:
        os.unlink(path)
        return True
    return False


# ---------------------------------------------------------------- files
def write_file(path: str, text: str, mode: int = 0o600) -> None:
    """Write atomically (temp file + rename) with the given mode."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pg_ha.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_if_changed(path: str, text: str, mode: int = 0o600) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    write_file(path, text, mode)
    return True


# ---------------------------------------------------------------- pgpass & conninfo
def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def render_pgpass(users: Iterable[Auth]) -> str:
    """`*:*:*:user:password` for every user that has a password (first entry per user wins)."""
    seen: set[str] = set()
    lines = []
    for auth in users:
        if auth.password is None or auth.username in seen:
            continue
        seen.add(auth.username)
        lines.append(f"*:*:*:{_pgpass_escape(auth.username)}:{_pgpass_escape(auth.password)}")
    return "".join(line + "\n" for line in lines)


def pgpass_users(settings: PostgresqlSettings) -> list[Auth]:
    users = [settings.replication, settings.superuser]
    if settings.rewind is not None:
        users.append(settings.rewind)
    return users


def write_pgpass(settings: PostgresqlSettings) -> bool:
    """(Re)write settings.pgpass with mode 0600; True if its content changed."""
    return write_if_changed(settings.pgpass, render_pgpass(pgpass_users(settings)), 0o600)


def conninfo_for(settings: PostgresqlSettings, conn_url: str) -> dict[str, str]:
    """libpq parameters to replicate from the member whose conn_url is given."""
    parts = urlsplit(conn_url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ValueError(f"not a postgres:// URL: {conn_url!r}")
    info = {
        "user": settings.replication.username,
        "passfile": settings.pgpass,
        "host": parts.hostname,
        "port": str(parts.port or 5432),
        "sslmode": "prefer",
        "application_name": settings.name,
        "dbname": parts.path.lstrip("/") or "postgres",
        "connect_timeout": str(CONNECT_TIMEOUT),
    }
    info.update(settings.replication.conn_options)  # postgresql.authentication.replication.ssl*
    for key, value in parse_qsl(parts.query):
        if key != "password":
            info.setdefault(key, value)
    return info


def rewind_conninfo(settings: PostgresqlSettings, conninfo: Mapping[str, Any]) -> dict[str, str]:
    """A leader's replication conninfo turned into a normal connection as the rewind user."""
    replication_only = set(settings.replication.conn_options) - set(settings.rewind_auth.conn_options)
    info = {k: str(v) for k, v in conninfo.items()
            if k not in ("password", "replication") and k not in replication_only}
    info["user"] = settings.rewind_auth.username
    info.update(settings.rewind_auth.conn_options)
    info["dbname"] = info.get("dbname") or "postgres"
    info.setdefault("passfile", settings.pgpass)
    return info


def _conninfo_quote(value: str) -> str:
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_to_str(conninfo: Mapping[str, Any]) -> str:
    """{'host': 'a b'} -> "host='a b'" (libpq key/value syntax); never includes a password."""
    return " ".join(f"{k}={_conninfo_quote(str(v))}" for k, v in conninfo.items()
                    if v is not None and k != "password")


def parse_conninfo(text: str) -> dict[str, str]:
    """The inverse of conninfo_to_str for libpq key/value strings."""
    result: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError(f"bad conninfo near {text[i:]!r}")
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
        result[key] = "".join(value)
    return result
