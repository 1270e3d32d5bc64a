# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local PostgreSQL instance, behind one facade: `Postgresql(settings)`.

ctl.py runs the processes, config.py writes the files, query.py reads the state,
bootstrap.py makes data directories, rewind.py rejoins a former primary, slots.py keeps
the replication slots. The daemon runs as the OS user that owns the data directory.
"""
from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..config.settings import PostgresqlSettings
from . import archive, config, layout
from . import bootstrap as _bootstrap
from . import custom_bootstrap as _custom
from . import rewind as _rewind
from . import slots as _slots
from .ctl import Ctl, run
from .lsn import format_lsn, parse_lsn
from .query import Db, LocalState

__all__ = ["LocalState", "Postgresql", "ReloadResult", "format_lsn", "parse_lsn"]

logger = logging.getLogger(__name__)

CLONE_TIMEOUT = 24 * 3600.0
RELOAD_WAIT = 5.0
AUTH_ERRORS = ("authentication failed", "no pg_hba.conf entry")  # waiting will not help


@dataclass(frozen=True)
class ReloadResult:
    changed: tuple[str, ...] = ()  # server parameters whose configured value changed
    hba_changed: bool = False
    reloaded: bool = False
    pending_restart: bool = False  # some setting waits for a restart (pg_settings)
    pending_restart_params: tuple[str, ...] = ()


class Postgresql:
    """Facade over the modules of this package; one instance per data directory."""

    def __init__(self, settings: PostgresqlSettings, postmaster_log: str | None = None) -> None:
        self._settings = settings
        self.ctl = Ctl(settings, postmaster_log)
        self.db = Db(settings)
        self.api_db = Db(settings)  # the REST API's own connection (probe_state), never the HA loop's
        self.clone_timeout = CLONE_TIMEOUT
        self._sysid_cache: tuple[int, str | None] | None = None

    @property
    def settings(self) -> PostgresqlSettings:
        return self._settings

    def _set_settings(self, settings: PostgresqlSettings) -> None:
        self._settings = settings
        self.ctl.settings = settings
        self.db.settings = settings
        self.api_db.settings = settings

    def _path(self, name: str) -> str:
        return os.path.join(self._settings.data_dir, name)

    # ------------------------------------------------------------ data directory
    def data_dir_empty(self) -> bool:
        return _bootstrap.data_dir_empty(self._settings.data_dir)

    def controldata(self) -> dict[str, str]:
        return self.ctl.controldata()

    def sysid(self) -> str | None:
        """pg_controldata's "Database system identifier" (cached while pg_control is unchanged)."""
        try:
            mtime = os.stat(self._path("global/pg_control")).st_mtime_ns
        except OSError:
            return None
        if self._sysid_cache is None or self._sysid_cache[0] != mtime:
            self._sysid_cache = (mtime, self.ctl.controldata().get("Database system identifier"))
        return self._sysid_cache[1]

    def remove_data_dir(self) -> bool:
        if self.is_running():
            logger.error("refusing to remove the data directory of a running PostgreSQL")
            return False
        logger.info("removing the contents of data directory %s", self._settings.data_dir)
        try:
            _bootstrap.remove_data_dir(self._settings.data_dir)
        except OSError as exc:
            logger.error("could not remove data directory %s: %s", self._settings.data_dir, exc)
            return False
        self._sysid_cache = None
        return True

    # ------------------------------------------------------------ processes
    def is_running(self) -> bool:
        return self.ctl.is_running()

    def postmaster_pid(self) -> int | None:
        return self.ctl.postmaster_pid()

    def write_config(self, role: str, primary_conninfo: Mapping[str, Any] | str | None = None,
                     slot_name: str | None = None, standby_extra: Mapping[str, Any] | None = None) -> bool:
        """Write postgresql.conf, pg_hba.conf, pgpass and the signal files for `role`."""
        if role not in ("primary", "replica"):
            raise ValueError(f"unknown role {role!r}")
        data_dir = self._settings.data_dir
        recovery: dict[str, str] | None = None
        if role == "replica":
            recovery = {"recovery_target_timeline": "latest"}
            if primary_conninfo:
                recovery["primary_conninfo"] = (primary_conninfo if isinstance(primary_conninfo, str)
                                                else config.conninfo_to_str(primary_conninfo))
            if slot_name:
                recovery["primary_slot_name"] = slot_name
            recovery.update({k: str(v) for k, v in (standby_extra or {}).items() if k in config.STANDBY_RECOVERY})
        layout.prepare(self._settings)
        conf_changed, hba_changed = layout.write_files(self._settings, recovery)
        changed = conf_changed or hba_changed
        changed |= config.set_signal(data_dir, config.STANDBY_SIGNAL, role == "replica")
        changed |= config.set_signal(data_dir, config.RECOVERY_SIGNAL, False)
        config.write_pgpass(self._settings)
        return changed

    def current_role_files(self) -> tuple[str, dict[str, str]]:
        """The role and recovery settings our files currently describe."""
        role = "replica" if os.path.exists(self._path(config.STANDBY_SIGNAL)) else "primary"
        return role, config.read_recovery_params(layout.conf_dir(self._settings))

    def _wait_accepting(self, deadline: float) -> bool:
        while True:
            st = self.state()
            if st.accepting:
                return True
            hopeless = any(e in (st.error or "") for e in AUTH_ERRORS)
            if not st.running or hopeless or time.monotonic() > deadline:
                logger.error("PostgreSQL is not accepting connections: %s", st.error or "not running")
                return False
            time.sleep(0.1)

    def start(self, role: str, primary_conninfo: Mapping[str, Any] | str | None = None,
              slot_name: str | None = None, timeout: float | None = None,
              standby_extra: Mapping[str, Any] | None = None) -> bool:
        """Write the config for `role` and pg_ctl start -w; True once it accepts connections
        (within `timeout`, postgresql.pg_ctl_timeout when None)."""
        timeout = self._settings.pg_ctl_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self.is_running():
            if not self._wait_accepting(deadline):
                return False
            running_as = self.state().role
            if running_as not in (None, role):
                logger.error("cannot start as %s: PostgreSQL is already running as %s", role, running_as)
                return False
            logger.info("PostgreSQL is already running as %s", running_as)
            return True
        self.write_config(role, primary_conninfo, slot_name, standby_extra)
        self.db.close()
        logger.info("starting PostgreSQL as %s", role)
        if not self.ctl.start(timeout):
            return False
        return self._wait_accepting(deadline)

    def stop(self, mode: str = "fast", timeout: float | None = None) -> bool:
        """Run postgresql.before_stop (waited for), then pg_ctl stop -m `mode` (within
        `timeout`, postgresql.pg_ctl_timeout when None)."""
        self.db.close()
        if not self.is_running():
            return True
        self._before_stop()
        logger.info("stopping PostgreSQL (mode %s)", mode)
        return self.ctl.stop(mode, self._settings.pg_ctl_timeout if timeout is None else timeout)

    def _before_stop(self) -> None:
        command = self._settings.before_stop
        if not command:
            return
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            logger.error("before_stop script `%s` cannot be parsed: %s", command, exc)
            return
        res = run(argv, max(1, self._settings.pg_ctl_timeout), self.ctl.env())
        for line in (res.stdout + res.stderr).splitlines():
            logger.info("before_stop: %s", line)
        logger.info("before_stop script `%s` exited with %s", command, res.rc)

    def restart(self, timeout: float | None = None, archive_shutdown: bool = False) -> bool:
        """Stop (fast) and start again in the role and with the upstream our files describe.
        With ``archive_shutdown`` the WAL file of the shutdown checkpoint is archived in between
        (archive.py), when archiving is on."""
        timeout = self._settings.pg_ctl_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        role, recovery = self.current_role_files()
        if not self.stop("fast", timeout):
            return False
        command = archive.archive_command(config.effective_parameters(self._settings))
        if archive_shutdown and command is None:
            logger.info("not archiving the WAL file of the shutdown checkpoint: archiving is not configured")
        elif archive_shutdown and command is not None:
            archive.archive_shutdown_checkpoint_wal(self._settings.data_dir, self.controldata(), command)
        return self.start(role, recovery.get("primary_conninfo"), recovery.get("primary_slot_name"),
                          max(1.0, deadline - time.monotonic()), standby_extra=recovery)

    def reload(self) -> bool:
        if not self.is_running():
            return False
        return self.ctl.reload()

    def _reload_and_wait(self) -> bool:
        """SIGHUP, then wait (bounded) until our backend has loaded the new files."""
        try:
            before = self.db.query("SELECT pg_catalog.pg_conf_load_time()")[0][0]
        except Exception:  # noqa: BLE001 - reload anyway
            before = None
        if not self.reload():
            return False
        deadline = time.monotonic() + RELOAD_WAIT
        while before is not None and time.monotonic() < deadline:
            try:
                if self.db.query("SELECT pg_catalog.pg_conf_load_time()")[0][0] > before:
                    break
            except Exception:  # noqa: BLE001 - keep waiting until the deadline
                pass
            time.sleep(0.05)
        return True

    def promote(self, timeout: float = 30) -> bool:
        """pg_ctl promote -w; True once the server is out of recovery."""
        deadline = time.monotonic() + timeout
        st = self.state()
        if not st.running:
            logger.error("cannot promote: PostgreSQL is not running")
            return False
        if st.in_recovery is False:
            return True
        logger.info("promoting PostgreSQL")
        if not self.ctl.promote(timeout):
            return False
        while self.state().in_recovery is not False:
            if time.monotonic() > deadline:
                logger.error("PostgreSQL is still in recovery after promote")
                return False
            time.sleep(0.1)
        if self.write_config("primary"):
            self._reload_and_wait()
        remaining = max(5.0, deadline - time.monotonic())
        try:
            self.db.execute_once([("CHECKPOINT", None)], int(remaining * 1000))
        except Exception as exc:  # noqa: BLE001 - promotion itself succeeded
            logger.warning("checkpoint after promote failed: %s", str(exc).strip())
        logger.info("promoted: timeline %s", self.state().timeline)
        return True

    def follow(self, primary_conninfo: Mapping[str, Any] | str | None, slot_name: str | None = None,
               timeout: float = 60, standby_extra: Mapping[str, Any] | None = None,
               archive_shutdown: bool = False) -> bool:
        """Point a replica at another upstream; reload (PG13+) or, for a running primary,
        restart as a replica (``archive_shutdown``: see restart). Returns whether anything
        changed."""
        role, current = self.current_role_files()
        wanted = (primary_conninfo if isinstance(primary_conninfo, str) or primary_conninfo is None
                  else config.conninfo_to_str(primary_conninfo))
        extra = {k: str(v) for k, v in (standby_extra or {}).items() if k in config.STANDBY_RECOVERY and v}
        if (role == "replica" and current.get("primary_conninfo") == (wanted or None)
                and current.get("primary_slot_name") == (slot_name or None)
                and {k: v for k, v in current.items() if k in config.STANDBY_RECOVERY} == extra):
            return False
        self.write_config("replica", wanted, slot_name, extra)
        if self.is_running():
            if self.state().in_recovery is False:
                logger.info("restarting the running primary as a replica")
                self.restart(timeout, archive_shutdown)
            else:
                logger.info("following a new upstream: reloading primary_conninfo")
                self._reload_and_wait()
        return True

    # ------------------------------------------------------------ configuration
    def update_settings(self, settings: PostgresqlSettings) -> ReloadResult:
        """Apply new settings live: rewrite the files, reload if they changed."""
        old = config.effective_parameters(self._settings)
        new = config.effective_parameters(settings)
        changed = tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))
        self._set_settings(settings)
        conf_changed = hba_changed = False
        if os.path.exists(self._path("PG_VERSION")):
            role, recovery = self.current_role_files()
            if role == "replica":
                recovery.setdefault("recovery_target_timeline", "latest")
            conf_changed, hba_changed = layout.write_files(settings, recovery if role == "replica" else None)
        config.write_pgpass(settings)
        reloaded = False
        pending: tuple[str, ...] = ()
        if self.is_running():
            if conf_changed or hba_changed:
                reloaded = self._reload_and_wait()
            try:
                rows = self.db.query("SELECT name FROM pg_catalog.pg_settings WHERE pending_restart "
                                     "ORDER BY name")
                pending = tuple(r[0] for r in rows)
            except Exception as exc:  # noqa: BLE001 - reported as unknown
                logger.warning("could not read pending_restart: %s", exc)
        if changed or hba_changed:
            logger.info("changed parameters: %s%s%s", ", ".join(changed) or "none",
                        "; pg_hba.conf changed" if hba_changed else "",
                        f"; pending restart: {', '.join(pending)}" if pending else "")
        return ReloadResult(changed, hba_changed, reloaded, bool(pending), pending)

    # ------------------------------------------------------------ state
    def state(self) -> LocalState:
        """The local server's state; never raises, cheap enough for every HA cycle."""
        try:
            pid = self.ctl.postmaster_pid()
            if pid is None:
                self.db.close()
                return LocalState(running=False, sysid=self.sysid())
            self.db.running_port = self.ctl.postmaster_port()
            st = self.db.state(True)
            if st.sysid is None:
                st = replace(st, sysid=self.sysid())
            return st
        except Exception as exc:  # noqa: BLE001 - state() must never raise
            logger.exception("could not read the local state")
            return LocalState(running=self.ctl.is_running(), error=repr(exc))

    def probe_state(self) -> LocalState:
        """The local server's state on the REST API's own connection (api_db), for the API
        thread: it never waits on a query of the HA loop. Never raises."""
        try:
            port = self.ctl.postmaster_port()
            if port is None and not self.ctl.is_running():
                self.api_db.close()
                return LocalState(running=False)
            self.api_db.running_port = port
            return self.api_db.state(True)
        except Exception as exc:  # noqa: BLE001 - a health check must never raise
            return LocalState(running=self.ctl.is_running(), error=repr(exc))

    def sync_barrier_lsn(self) -> int:
        """The primary's WAL flush position now (the barrier a newly listed synchronous
        standby must reach, core/sync.py), then one WAL record that waits for no standby
        (synchronous_commit off) so that an idle standby reports a position past it.
        Raises psycopg2.Error."""
        from .lsn import parse_lsn

        rows = self.db.query("SELECT pg_catalog.pg_current_wal_flush_lsn()::text")
        self.db.query("DO $$BEGIN SET LOCAL synchronous_commit = 'off'; "
                      "PERFORM pg_catalog.txid_current(); END$$")
        return parse_lsn(str(rows[0][0]))

    def close_probe(self) -> None:
        """Close the REST API's own connection (no longer needed once the HA loop published)."""
        self.api_db.close()

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement on the kept local connection (3 s limit). Raises psycopg2.Error."""
        return self.db.query(sql, params)

    def close(self) -> None:
        self.db.close()
        self.api_db.close()

    # ------------------------------------------------------------ new data directories
    def bootstrap(self, initdb_options: Iterable[Any] | None = None) -> bool:
        """initdb (bootstrap.initdb options) or the custom bootstrap.method, start as primary,
        create the users, run post_bootstrap."""
        if self._settings.bootstrap_method:
            ok = _custom.custom_bootstrap(self)
        else:
            opts = self._settings.initdb if initdb_options is None else initdb_options
            ok = _bootstrap.bootstrap(self, opts)
        return ok and _custom.post_bootstrap(self)

    def create_replica(self, leader_conninfo: Mapping[str, Any] | None) -> bool:
        """Run create_replica_methods in order until one succeeds (data dir left empty if none);
        without a source only those that work without a leader (no_leader)."""
        if self.is_running():
            logger.error("cannot create a replica: PostgreSQL is running")
            return False
        self._sysid_cache = None
        return _bootstrap.create_replica(self, leader_conninfo, self.clone_timeout)

    def conninfo_for(self, member_conn_url: str) -> dict[str, str]:
        return config.conninfo_for(self._settings, member_conn_url)

    # ------------------------------------------------------------ slots
    @staticmethod
    def slot_name_for(member_name: str) -> str:
        return _slots.slot_name_for(member_name)

    def sync_replication_slots(self, names: set[str], in_recovery_ok: bool = False,
                               keep: frozenset[str] = frozenset()) -> None:
        _slots.sync_replication_slots(self.db, names, in_recovery_ok, keep)

    def local_slots(self) -> dict[str, dict[str, Any]]:
        """Every non-temporary slot here (postgresql/slots.local_slots). Raises psycopg2.Error."""
        return _slots.local_slots(self.db)

    def drop_slot(self, name: str) -> bool:
        return _slots.drop_slot(self.db, name)

    def create_physical_slot(self, name: str) -> None:
        _slots.create_physical_slot(self.db, name)

    def advance_physical_slot(self, name: str, lsn: int) -> bool:
        return _slots.advance_physical_slot(self.db, name, lsn)

    def advance_logical_slots(self, database: str, slots: Mapping[str, int]) -> list[str]:
        """Advance copies of logical slots (run off the HA loop: no statement timeout)."""
        return _slots.advance_logical_slots(self.db.connect_kwargs(None), database, slots)

    def leader_admin_conninfo(self, leader_conn_url: str) -> dict[str, str]:
        """A normal connection to the leader as the rewind user (superuser when none is
        configured): what pg_read_binary_file of the slot state files needs (Patroni)."""
        return config.rewind_conninfo(self._settings, config.conninfo_for(self._settings, leader_conn_url))

    @staticmethod
    def primary_slot_states(leader_kwargs: Mapping[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
        return _slots.primary_slot_states(leader_kwargs, names)

    @staticmethod
    def primary_catalog_xmins(leader_kwargs: Mapping[str, Any], names: list[str]) -> dict[str, int | None]:
        return _slots.primary_catalog_xmins(leader_kwargs, names)

    def write_slot_files(self, states: Mapping[str, bytes]) -> None:
        """Only while PostgreSQL is stopped."""
        if self.is_running():
            raise RuntimeError("slot files are written only while PostgreSQL is stopped")
        _slots.write_slot_files(self._settings.data_dir, states)

    def ensure_logical_slots(self, wanted: dict[str, tuple[str, str]]) -> None:
        _slots.ensure_logical_slots(self.db, wanted)

    # ------------------------------------------------------------ rewind
    def ensure_clean_shutdown(self) -> bool:
        return _rewind.ensure_clean_shutdown(self)

    def local_timeline_lsn(self) -> tuple[int | None, int | None]:
        """(timeline, lsn) of the cleanly stopped cluster from pg_controldata: a replica's
        minimum recovery point, a primary's shutdown checkpoint; (None, None) otherwise."""
        found = _rewind.timeline_lsn_from_controldata(self.controldata())
        return (None, None) if found is None else (found[0], found[1])

    @staticmethod
    def leader_timeline_history(leader_conninfo: Mapping[str, Any]) -> tuple[int, list[tuple[int, int]]]:
        return _rewind.leader_timeline_history(leader_conninfo)

    def check_diverged(self, leader_conninfo: Mapping[str, Any]) -> bool | None:
        return _rewind.check_diverged(self, leader_conninfo)

    def rewind(self, leader_conninfo: Mapping[str, Any]) -> bool:
        self._sysid_cache = None
        return _rewind.rewind(self, leader_conninfo)
