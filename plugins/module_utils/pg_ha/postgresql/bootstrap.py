# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""New data directories: initdb for the first member, replica methods for the others."""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from psycopg2 import sql

from ..config.settings import PostgresqlSettings
from . import config
from .ctl import run

if TYPE_CHECKING:
    from .instance import Instance as Postgresql

logger = logging.getLogger(__name__)

INITDB_TIMEOUT = 600
USER_SQL_TIMEOUT_MS = 30000
INITDB_FORBIDDEN = ("pgdata", "D", "username", "U", "pwfile", "pwprompt", "W", "waldir", "X")
BASEBACKUP_FORBIDDEN = ("pgdata", "D", "format", "F", "wal-method", "X", "xlog-method", "dbname", "d",
                        "host", "h", "port", "p", "username", "U", "password", "W", "no-password", "w",
                        "gzip", "z", "compress", "Z", "version", "V")
METHOD_FLAGS = ("command", "keep_data", "no_params", "no_master", "no_leader")
ROLE_OPTION_WORDS = frozenset({"SUPERUSER", "REPLICATION", "LOGIN"})


# ---------------------------------------------------------------- options
def option_args(options: Iterable[Any], forbidden: Iterable[str], what: str) -> list[str]:
    """Patroni-style option lists: 'name' -> --name, {'name': value} -> --name=value."""
    banned = set(forbidden)
    args: list[str] = []

    def add(name: str, value: Any = None) -> None:
        name = name.lstrip("-")
        if name in banned:
            logger.warning("ignoring %s option %s: pg_ha sets it itself", what, name)
            return
        prefix = "-" if len(name) == 1 else "--"
        args.append(f"{prefix}{name}" if value is None else f"{prefix}{name}={value}")

    for opt in options:
        if isinstance(opt, Mapping):
            for key, value in opt.items():
                add(str(key), value)
        else:
            add(str(opt))
    return args


def initdb_args(options: Iterable[Any]) -> list[str]:
    """initdb options with pg_ha's defaults: UTF8 encoding and data checksums."""
    args = option_args(options, INITDB_FORBIDDEN, "initdb")
    names = {a.split("=", 1)[0].lstrip("-") for a in args}
    if not names & {"encoding", "E"}:
        args.append("--encoding=UTF8")
    if not names & {"data-checksums", "k"}:
        args.append("--data-checksums")
    return args


# ---------------------------------------------------------------- data directory
def data_dir_empty(data_dir: str) -> bool:
    try:
        return not [e for e in os.listdir(data_dir) if e != "lost+found"]
    except FileNotFoundError:
        return True


def _empty_dir(path: str) -> None:
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def remove_data_dir(data_dir: str) -> None:
    """Empty the data directory (and the targets of a symlinked pg_wal / tablespaces)."""
    if not os.path.isdir(data_dir):
        return
    links = [os.path.join(data_dir, "pg_wal")]
    tblspc = os.path.join(data_dir, "pg_tblspc")
    if os.path.isdir(tblspc):
        links += [os.path.join(tblspc, e) for e in os.listdir(tblspc)]
    for link in links:
        if os.path.islink(link) and os.path.isdir(os.path.realpath(link)):
            _empty_dir(os.path.realpath(link))
    _empty_dir(data_dir)
    os.chmod(data_dir, 0o700)


def _remove_dir_itself(data_dir: str) -> None:
    """As Patroni before a custom replica method: the data directory it emptied is gone too
    (restore tools that copy a whole tree want no directory there); a mount point stays."""
    if os.path.ismount(data_dir):
        return
    try:
        os.rmdir(data_dir)
    except OSError as exc:
        logger.warning("could not remove the emptied data directory %s: %s", data_dir, exc)


# ---------------------------------------------------------------- initdb
def _role_statement(name: str, password: str | None, options: list[str], create: bool) -> Any:
    words = sql.SQL(" ").join(sql.SQL(o) for o in options if o in ROLE_OPTION_WORDS)
    verb = sql.SQL("CREATE ROLE" if create else "ALTER ROLE")
    stmt = sql.SQL("{} {} WITH {}").format(verb, sql.Identifier(name), words)
    if password is not None:
        stmt = sql.SQL("{} PASSWORD %s").format(stmt)
    return stmt


def create_or_update_role(pg: Postgresql, name: str, password: str | None, options: list[str]) -> None:
    """CREATE/ALTER ROLE with the password as a client-side bound literal, never logged."""
    exists = pg.db.query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (name,))
    stmt = _role_statement(name, password, options, create=not exists)
    pg.db.execute_once([
        ("SET log_statement TO none", None),
        ("SET log_min_duration_statement TO -1", None),
        ("SET log_min_error_statement TO panic", None),
        ("SET synchronous_commit TO local", None),
        (stmt, (password,) if password is not None else None),
    ], USER_SQL_TIMEOUT_MS)


def grant_rewind(pg: Postgresql, name: str) -> None:
    """The functions pg_rewind needs when it is not run as a superuser."""
    stmts = []
    for fn in ("pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)",
               "pg_read_binary_file(text)", "pg_read_binary_file(text, bigint, bigint, boolean)"):
        stmts.append((sql.SQL("GRANT EXECUTE ON FUNCTION pg_catalog.{} TO {}").format(
            sql.SQL(fn), sql.Identifier(name)), None))
    pg.db.execute_once(stmts, USER_SQL_TIMEOUT_MS)


def create_users(pg: Postgresql) -> None:
    s = pg.settings
    if s.superuser.password is not None:
        create_or_update_role(pg, s.superuser.username, s.superuser.password, ["SUPERUSER", "LOGIN"])
    create_or_update_role(pg, s.replication.username, s.replication.password, ["REPLICATION", "LOGIN"])
    if s.rewind is not None and s.rewind.username != s.superuser.username:
        create_or_update_role(pg, s.rewind.username, s.rewind.password, ["LOGIN"])
        grant_rewind(pg, s.rewind.username)
    logger.info("created the superuser password, replication user %s%s", s.replication.username,
                f" and rewind user {s.rewind.username}" if s.rewind else "")


def initdb(pg: Postgresql, options: Iterable[Any]) -> bool:
    s = pg.settings
    os.makedirs(s.data_dir, mode=0o700, exist_ok=True)
    argv = [pg.ctl.binary("initdb"), "-D", s.data_dir, f"--username={s.superuser.username}"]
    pwfile = None
    try:
        if s.superuser.password is not None:
            fd, pwfile = tempfile.mkstemp(prefix="pg_ha_pw.")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(s.superuser.password + "\n")
            argv.append(f"--pwfile={pwfile}")
        argv += initdb_args(options)
        logger.info("running initdb %s", " ".join(argv[3:]).replace(pwfile or "\0", "<pwfile>"))
        env = pg.ctl.env()
        env.setdefault("LANG", "C.UTF-8")
        res = run(argv, INITDB_TIMEOUT, env)
    finally:
        if pwfile:
            os.unlink(pwfile)
    if not res.ok:
        logger.error("initdb failed (rc=%s): %s", res.rc, res.stderr.strip() or res.stdout.strip())
        return False
    return True


def bootstrap(pg: Postgresql, options: Iterable[Any]) -> bool:
    """initdb, config files, start as primary, create the users. False on any failure."""
    s = pg.settings
    if not data_dir_empty(s.data_dir):
        logger.error("cannot bootstrap: data directory %s is not empty", s.data_dir)
        return False
    config.write_pgpass(s)
    if not initdb(pg, options):
        return False
    config.ensure_base_conf(s.data_dir)
    if not pg.start("primary"):
        logger.error("bootstrap: PostgreSQL did not start")
        pg.stop("immediate")
        return False
    try:
        create_users(pg)
    except Exception as exc:  # noqa: BLE001 - reported as a failed bootstrap
        logger.error("bootstrap: could not create users: %s", exc)
        pg.stop("immediate")
        return False
    logger.info("bootstrapped a new cluster in %s (system identifier %s)", s.data_dir, pg.sysid())
    return True


# ---------------------------------------------------------------- replicas
def basebackup(pg: Postgresql, conninfo: Mapping[str, Any], timeout: float) -> bool:
    s = pg.settings
    argv = [pg.ctl.binary("pg_basebackup"), f"--pgdata={s.data_dir}", "-X", "stream", "-c", "fast",
            f"--dbname={config.conninfo_to_str(conninfo)}", "--no-password"]
    argv += option_args(s.basebackup, BASEBACKUP_FORBIDDEN, "basebackup")
    logger.info("running pg_basebackup from %s:%s", conninfo.get("host"), conninfo.get("port"))
    res = run(argv, timeout, pg.ctl.env())
    if not res.ok:
        logger.error("pg_basebackup failed (rc=%s): %s", res.rc, res.stderr.strip())
    return res.ok


def custom_method_argv(pg: Postgresql, method: str, conninfo: Mapping[str, Any]) -> list[str]:
    """A user replica method as Patroni calls it: command --scope= --role=replica --datadir=
    --connstring= plus the method's other options as --key=value."""
    s = pg.settings
    opts = dict(s.replica_method_options.get(method, {}))
    cmd = str(opts.get("command") or method)
    params = {k: v for k, v in opts.items() if k not in METHOD_FLAGS}
    if not opts.get("no_params"):
        params.update(scope=s.scope, role="replica", datadir=s.data_dir,
                      connstring=config.conninfo_to_str(conninfo) if conninfo else "")
    return shlex.split(cmd) + [f"--{k}={v}" for k, v in params.items()]


def _drop_copied_log(pg: Postgresql) -> None:
    """A clone carries the source's postmaster log (when it lives in the data dir): drop it."""
    log = os.path.abspath(pg.ctl.log_path)
    if log.startswith(os.path.abspath(pg.settings.data_dir) + os.sep) and os.path.isfile(log):
        os.unlink(log)


def works_without_leader(settings: PostgresqlSettings, method: str) -> bool:
    """A replica method that needs no connection to a running member (Patroni: the method's
    `no_leader` or `no_master` option; pg_basebackup always needs one): a restore from backup."""
    if method in ("basebackup", "pg_basebackup"):
        return False
    opts = settings.replica_method_options.get(method, {})
    return any(_truthy(opts.get(flag)) for flag in ("no_leader", "no_master"))


def methods_without_leader(settings: PostgresqlSettings) -> tuple[str, ...]:
    return tuple(m for m in settings.create_replica_methods or ("basebackup",) if works_without_leader(settings, m))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "on", "true", "yes", "y", "t")
    return bool(value) and not isinstance(value, (list, dict))


def create_replica(pg: Postgresql, conninfo: Mapping[str, Any] | None, timeout: float) -> bool:
    """Try each create_replica_method in turn; an empty data dir is left on total failure.
    Without a source (``conninfo`` None: no leader) only the methods that work without one."""
    s = pg.settings
    config.write_pgpass(s)
    methods = (s.create_replica_methods or ("basebackup",)) if conninfo is not None else methods_without_leader(s)
    for method in methods:
        builtin = method in ("basebackup", "pg_basebackup")
        keep = bool(s.replica_method_options.get(method, {}).get("keep_data"))
        if not keep and not data_dir_empty(s.data_dir):
            remove_data_dir(s.data_dir)
            if not builtin:
                _remove_dir_itself(s.data_dir)
        if builtin:
            os.makedirs(s.data_dir, mode=0o700, exist_ok=True)
        if builtin and conninfo is not None:
            ok = basebackup(pg, conninfo, timeout)
        else:
            argv = custom_method_argv(pg, method, conninfo or {})
            logger.info("creating replica with method %s: %s", method, argv[0])
            res = run(argv, timeout, pg.ctl.env())
            ok = res.ok
            if not ok:
                logger.error("replica method %s failed (rc=%s): %s", method, res.rc,
                             (res.stderr or res.stdout).strip()[-2000:])
        if ok and not os.path.exists(os.path.join(s.data_dir, "PG_VERSION")):
            logger.error("replica method %s left no PostgreSQL data directory", method)
            ok = False
        if ok:
            config.ensure_base_conf(s.data_dir)
            _drop_copied_log(pg)
            logger.info("replica has been created using %s", method)
            return True
        remove_data_dir(s.data_dir)
    logger.error("could not create a replica: every method failed (%s)", ", ".join(methods))
    return False
