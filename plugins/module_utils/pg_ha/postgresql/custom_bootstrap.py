# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patroni's custom bootstrap (`bootstrap.method: <name>`): a user command creates the
data directory (e.g. restores a base backup) instead of initdb; PostgreSQL then runs
whatever recovery the command (or `recovery_conf`) asked for, is promoted, and gets the
users as after initdb. Also `bootstrap.post_bootstrap`, run after either kind of bootstrap.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psycopg2

from . import bootstrap as _bootstrap
from . import config, layout
from .ctl import run

if TYPE_CHECKING:
    from .instance import Instance as Postgresql

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT = 24 * 3600.0
START_TIMEOUT = 60.0
RECOVERY_TIMEOUT = 24 * 3600.0
RESERVED = ("command", "keep_existing_recovery_conf", "no_params", "recovery_conf", "scope", "datadir")


def command_argv(scope: str, data_dir: str, options: Mapping[str, Any]) -> list[str]:
    """command --scope=SCOPE --datadir=DIR (unless no_params) plus the method's other keys
    as --key=value, as Patroni calls it."""
    argv = shlex.split(str(options["command"]))
    if not options.get("no_params"):
        argv += [f"--scope={scope}", f"--datadir={data_dir}"]
    argv += [f"--{k}={v}" for k, v in options.items() if k not in RESERVED]
    return argv


def recovery_plan(data_dir: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(recovery settings to add to postgresql.conf, whether to run a targeted/archive recovery).

    recovery_conf given: those settings and a recovery.signal. keep_existing_recovery_conf:
    the command's own settings stay (they live on in postgresql.base.conf) and a standby.signal
    or recovery.signal it left becomes recovery.signal, so the recovery ends by itself once
    the WAL it can get is replayed. Otherwise: plain crash recovery from pg_wal."""
    recovery_conf = options.get("recovery_conf")
    if recovery_conf:
        return dict(recovery_conf), True
    left = any(os.path.exists(os.path.join(data_dir, f)) for f in (config.STANDBY_SIGNAL, config.RECOVERY_SIGNAL))
    return {}, bool(options.get("keep_existing_recovery_conf")) and left


def _write_files(pg: Postgresql, socket_dir: str, recovery: Mapping[str, Any], archive_recovery: bool) -> None:
    """Config for the recovery phase: no TCP listener, a private 0700 socket directory and
    trust on it (as pg_upgrade does), since the restored roles' passwords are unknown."""
    s = pg.settings
    layout.prepare(s)
    private = replace(s, listen_hosts="", parameters={**s.parameters, "unix_socket_directories": socket_dir,
                                                      "unix_socket_permissions": "0700"})
    text = config.render_postgresql_conf(private, None, s.custom_conf or config.BASE_CONF, recovering=True)
    if recovery:
        text += "\n# bootstrap.recovery_conf\n" + "".join(
            f"{k} = {config.quote_conf_value(v)}\n" for k, v in recovery.items())
    config.write_file(layout.main_conf(s), text)  # hba_file stays the data directory's
    config.write_file(os.path.join(s.data_dir, config.HBA_CONF), config.render_pg_hba(["local all all trust"]))
    config.set_signal(s.data_dir, config.STANDBY_SIGNAL, False)
    config.set_signal(s.data_dir, config.RECOVERY_SIGNAL, archive_recovery)


def _connect(pg: Postgresql, socket_dir: str) -> Any:
    conn = psycopg2.connect(host=socket_dir, port=pg.settings.port, user=pg.settings.superuser.username,
                            dbname="postgres", connect_timeout=3)
    conn.autocommit = True
    return conn


def _wait_recovery_done(pg: Postgresql, socket_dir: str, deadline: float) -> Any:
    """A connection once PostgreSQL left recovery (promoting it when the recovery paused at
    its target); None if it stopped or the deadline passed."""
    promoted = False
    while time.monotonic() < deadline:
        if not pg.ctl.is_running():
            logger.error("custom bootstrap: PostgreSQL stopped during recovery (see its log)")
            return None
        try:
            conn = _connect(pg, socket_dir)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_is_in_recovery(), "
                            "pg_catalog.pg_is_in_recovery() AND pg_catalog.pg_get_wal_replay_pause_state() "
                            "= 'paused'")
                in_recovery, paused = cur.fetchone()
            if not in_recovery:
                return conn
            conn.close()
            if paused and not promoted:
                logger.info("custom bootstrap: recovery paused at its target, promoting")
                promoted = pg.ctl.promote(START_TIMEOUT)
        except psycopg2.Error:
            pass  # not consistent yet: keep waiting
        time.sleep(0.2)
    logger.error("custom bootstrap: PostgreSQL did not finish recovery in time")
    return None


def _set_superuser_password(pg: Postgresql, conn: Any) -> None:
    su = pg.settings.superuser
    with conn.cursor() as cur:
        for stmt in ("SET log_statement TO none", "SET log_min_duration_statement TO -1",
                     "SET log_min_error_statement TO panic"):
            cur.execute(stmt)
        cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (su.username,))
        exists = bool(cur.fetchall())
        stmt = _bootstrap._role_statement(su.username, su.password, ["SUPERUSER", "LOGIN"], create=not exists)
        cur.execute(stmt, (su.password,) if su.password is not None else None)


def _recover(pg: Postgresql, recovery: Mapping[str, Any], archive_recovery: bool) -> bool:
    """Start on a private socket, wait for the end of recovery, make our superuser able to log in."""
    socket_dir = tempfile.mkdtemp(prefix="pg_ha_boot.")
    try:
        _write_files(pg, socket_dir, recovery, archive_recovery)
        logger.info("custom bootstrap: starting PostgreSQL%s", " to perform recovery" if archive_recovery else "")
        pg.db.close()
        if not pg.ctl.start(START_TIMEOUT):
            logger.error("custom bootstrap: PostgreSQL did not start")
            return False
        conn = _wait_recovery_done(pg, socket_dir, time.monotonic() + RECOVERY_TIMEOUT)
        if conn is None:
            return False
        try:
            _set_superuser_password(pg, conn)
        finally:
            conn.close()
        return pg.ctl.stop("fast", START_TIMEOUT)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def custom_bootstrap(pg: Postgresql) -> bool:
    """Run bootstrap.<method>.command, recover, promote, create the users. False on failure
    (the caller stops PostgreSQL and empties the data directory)."""
    s = pg.settings
    method, options = s.bootstrap_method, s.bootstrap_method_options
    if not _bootstrap.data_dir_empty(s.data_dir):
        logger.error("cannot bootstrap: data directory %s is not empty", s.data_dir)
        return False
    # the command makes the data directory, as with Patroni (shutil.copytree, pgbackrest, wal-g)
    config.write_pgpass(s)
    argv = command_argv(s.scope, s.data_dir, options)
    logger.info("running custom bootstrap method %s: %s", method, " ".join(shlex.quote(a) for a in argv))
    res = run(argv, COMMAND_TIMEOUT, pg.ctl.env())
    if not res.ok:
        detail = (res.stderr or res.stdout).strip().splitlines()
        logger.error("custom bootstrap method %s failed (rc=%s): %s", method, res.rc,
                     detail[-1] if detail else "no output")
        return False
    if not os.path.exists(os.path.join(s.data_dir, "PG_VERSION")):
        logger.error("custom bootstrap method %s left no PostgreSQL data directory in %s", method, s.data_dir)
        return False
    os.chmod(s.data_dir, 0o700)
    recovery, archive_recovery = recovery_plan(s.data_dir, options)
    if not _recover(pg, recovery, archive_recovery):
        return False
    if not pg.start("primary"):
        logger.error("custom bootstrap: PostgreSQL did not start after recovery")
        return False
    try:
        _bootstrap.create_users(pg)
    except Exception as exc:  # noqa: BLE001 - reported as a failed bootstrap
        logger.error("custom bootstrap: could not create users: %s", exc)
        return False
    logger.info("bootstrapped a new cluster with method %s in %s (system identifier %s)", method,
                s.data_dir, pg.sysid())
    return True


def post_bootstrap(pg: Postgresql) -> bool:
    """bootstrap.post_bootstrap SCRIPT 'connstring' (superuser, password via PGPASSFILE)."""
    s = pg.settings
    if not s.post_bootstrap:
        return True
    connstring = config.conninfo_to_str({"host": s.connect_host, "port": str(s.port),
                                         "user": s.superuser.username, "dbname": "postgres",
                                         **s.superuser.conn_options})
    env = pg.ctl.env()
    env["PGPASSFILE"] = s.pgpass
    argv = shlex.split(s.post_bootstrap) + [connstring]
    logger.info("running post_bootstrap %s", argv[0])
    res = run(argv, COMMAND_TIMEOUT, env)
    if not res.ok:
        detail = (res.stderr or res.stdout).strip().splitlines()
        logger.error("post_bootstrap %s failed (rc=%s): %s", argv[0], res.rc, detail[-1] if detail else "no output")
        return False
    return True
