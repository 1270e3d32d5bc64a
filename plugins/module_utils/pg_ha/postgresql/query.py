# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL access to the local instance: one persistent connection, and LocalState.

The HA loop calls state() every cycle, so it is one round trip on a kept-open
connection, bounded by connect_timeout and statement_timeout, and never raises.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2

from ..config.settings import PostgresqlSettings
from .layout import unix_socket_host
from .lsn import maybe_lsn, timeline_from_walfile

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 3000
APPLICATION_NAME = "pg_ha"


@dataclass(frozen=True)
class LocalState:
    """What the local PostgreSQL looks like right now (all None/False when it is down)."""

    running: bool = False
    accepting: bool = False
    in_recovery: bool | None = None
    timeline: int | None = None
    wal_lsn: int | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    replayed_timestamp: str | None = None
    pending_restart: bool = False
    server_version: int | None = None
    postmaster_start_time: str | None = None
    sysid: str | None = None
    replication: list[dict[str, Any]] = field(default_factory=list)
    wal_receiver: dict[str, Any] | None = None
    paused: bool = False
    restore_command: bool = False  # a restore_command is set: a replica not streaming restores from the archive
    error: str | None = None

    @property
    def role(self) -> str | None:
        if self.in_recovery is None:
            return None
        return "replica" if self.in_recovery else "primary"


STATE_SQL = """
SELECT pg_catalog.pg_is_in_recovery(),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE pg_catalog.pg_current_wal_lsn()::text END,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END,
       pg_catalog.pg_last_wal_receive_lsn()::text,
       pg_catalog.pg_last_wal_replay_lsn()::text,
       pg_catalog.pg_last_xact_replay_timestamp(),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused()
            ELSE false END,
       pg_catalog.current_setting('server_version_num')::int,
       pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), 'YYYY-MM-DD HH24:MI:SS.MS TZ'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart),
       (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()),
       (SELECT min_recovery_end_timeline FROM pg_catalog.pg_control_recovery()),
       (SELECT system_identifier::text FROM pg_catalog.pg_control_system()),
       (SELECT pg_catalog.json_agg(r) FROM (
            SELECT pid, usename, application_name, pg_catalog.host(client_addr) AS client_addr, state,
                   sync_state, sync_priority, sent_lsn::text AS sent_lsn,
                   write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn,
                   replay_lsn::text AS replay_lsn
              FROM pg_catalog.pg_stat_replication ORDER BY application_name, pid) r),
       (SELECT pg_catalog.row_to_json(w) FROM (
            SELECT status, sender_host, sender_port, slot_name, received_tli,
                   flushed_lsn::text AS flushed_lsn
              FROM pg_catalog.pg_stat_wal_receiver) w),
       pg_catalog.current_setting('restore_command') <> ''
"""

_LSN_KEYS = ("sent_lsn", "write_lsn", "flush_lsn", "replay_lsn", "flushed_lsn")


def local_host(listen_hosts: str) -> str:
    """Where to reach our own server over TCP, given listen_addresses."""
    first = "127.0.0.1"
    for item in listen_hosts.split(","):
        item = item.strip()
        if item in ("*", "0.0.0.0", "localhost", "127.0.0.1"):
            return "127.0.0.1"
        if item == "::":
            return "::1"
        if item and first == "127.0.0.1":
            first = item
    return first


def _lsn_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (maybe_lsn(v) if k in _LSN_KEYS else v) for k, v in row.items()}


def state_from_row(row: tuple[Any, ...]) -> LocalState:
    """Build LocalState from one STATE_SQL row (pure: unit-testable)."""
    (in_recovery, current_lsn, walfile, receive, replay, replay_ts, paused, version, started,
     pending, ckpt_tli, min_rec_tli, sysid, replication, receiver, restore_command) = row
    receive_lsn, replay_lsn = maybe_lsn(receive), maybe_lsn(replay)
    wal_receiver = _lsn_fields(receiver) if receiver else None
    if in_recovery:
        known = [x for x in (receive_lsn, replay_lsn) if x is not None]
        wal_lsn = max(known) if known else None
        tlis = [t for t in (ckpt_tli, min_rec_tli, (wal_receiver or {}).get("received_tli")) if t]
        timeline = max(tlis) if tlis else None
    else:
        wal_lsn = maybe_lsn(current_lsn)
        timeline = timeline_from_walfile(walfile) or ckpt_tli
    return LocalState(
        running=True, accepting=True, in_recovery=bool(in_recovery), timeline=timeline,
        wal_lsn=wal_lsn, receive_lsn=receive_lsn, replay_lsn=replay_lsn,
        replayed_timestamp=replay_ts.isoformat() if isinstance(replay_ts, datetime) else replay_ts,
        pending_restart=bool(pending), server_version=version, postmaster_start_time=started,
        sysid=sysid, replication=[_lsn_fields(r) for r in (replication or [])],
        wal_receiver=wal_receiver, paused=bool(paused), restore_command=bool(restore_command))


class Db:
    """A kept-open superuser connection to the local server, reconnected when broken."""

    def __init__(self, settings: PostgresqlSettings) -> None:
        self._settings = settings
        self._conn: Any = None
        self._lock = threading.RLock()
        self.running_port: int | None = None  # the live postmaster's port, if known

    @property
    def settings(self) -> PostgresqlSettings:
        return self._settings

    @settings.setter
    def settings(self, value: PostgresqlSettings) -> None:
        with self._lock:
            changed = (value.superuser, value.port, value.listen_hosts) != (
                self._settings.superuser, self._settings.port, self._settings.listen_hosts)
            self._settings = value
            if changed:
                self.close()

    def connect_kwargs(self, statement_timeout_ms: int | None = STATEMENT_TIMEOUT_MS) -> dict[str, Any]:
        s = self._settings
        kwargs: dict[str, Any] = {
            "host": local_host(s.listen_hosts), "port": self.running_port or s.port, "user": s.superuser.username,
            "dbname": "postgres", "connect_timeout": CONNECT_TIMEOUT,
            "application_name": APPLICATION_NAME, "passfile": s.pgpass,
        }
        socket_dir = unix_socket_host(s)
        if socket_dir is not None:  # postgresql.use_unix_socket
            kwargs["host"] = socket_dir  # "": libpq's default directory
        if s.superuser.password is not None:
            kwargs["password"] = s.superuser.password
        if "PGGSSENCMODE" not in os.environ:
            # our own server on this host: GSS encryption protects nothing here, and libpq's
            # default (prefer) loads and initialises Kerberos on every connect (~1 MB resident,
            # ~15 ms per connection measured). Set PGGSSENCMODE to choose otherwise.
            kwargs["gssencmode"] = "disable"
        kwargs.update(s.superuser.conn_options)  # postgresql.authentication.superuser.ssl*
        if statement_timeout_ms is not None:
            kwargs["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
        return kwargs

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg2.Error:
                    pass
            self._conn = None

    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed and self.running_port \
                and self._conn.info.port != self.running_port:
            self.close()
        if self._conn is None or self._conn.closed:
            conn = psycopg2.connect(**self.connect_kwargs())
            conn.autocommit = True
            self._conn = conn
        return self._conn

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement on the kept connection; retried once on a fresh connection
        if the kept one turned out to be broken. Raises psycopg2.Error."""
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None and not self._conn.closed
                try:
                    with self._connection().cursor() as cur:
                        cur.execute(sql, params)
                        return cur.fetchall() if cur.description is not None else []
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    if self._conn is not None and not self._conn.closed:
                        raise  # e.g. statement timeout: the connection itself is fine
                    self.close()
                    if attempt == 2 or not reused:
                        raise
            raise AssertionError("unreachable")

    def execute_once(self, statements: list[tuple[str, Any]], statement_timeout_ms: int | None = None,
                     ) -> list[list[tuple[Any, ...]]]:
        """Run statements on a separate short-lived connection (for slow or sensitive work)."""
        conn = psycopg2.connect(**self.connect_kwargs(statement_timeout_ms))
        try:
            conn.autocommit = True
            results = []
            with conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
                    results.append(cur.fetchall() if cur.description is not None else [])
            return results
        finally:
            conn.close()

    def state(self, running: bool) -> LocalState:
        """LocalState from SQL; running=False skips the connection attempt entirely."""
        if not running:
            self.close()
            return LocalState()
        try:
            rows = self.query(STATE_SQL)
            return state_from_row(rows[0])
        except psycopg2.Error as exc:
            return LocalState(running=True, error=str(exc).strip().splitlines()[0] if str(exc) else
                              type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - state() must never raise
            logger.exception("unexpected error while reading the local state")
            return LocalState(running=True, error=repr(exc))
