# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""query: run SQL on the leader, a replica, any member or a named one (psycopg2, imported here).

The user is -U or the config's superuser (postgresql.authentication.superuser), whose
password is used unless --password asks for one. Roles other than leader/any are checked
against pg_is_in_recovery() on the server itself, not only the DCS."""
from __future__ import annotations

import sys
import time
from argparse import Namespace
from typing import Any

from ..core.model import Cluster, Member
from .context import Ctx, members_with_role, normalize_role
from .errors import CtlError, UsageError
from .members import host_port
from .output import echo, render, timestamp
from .prompt import ask

APPLICATION_NAME = "pg_hactl"


def connect_params(member: Member, user: str, password: str | None, dbname: str | None) -> dict[str, Any]:
    host, port = host_port(member.conn_url)
    if not host:
        raise CtlError(f"member {member.name} publishes no conn_url")
    params: dict[str, Any] = {"host": host, "port": port or 5432, "user": user,
                              "dbname": dbname or "postgres", "connect_timeout": 5,
                              "application_name": APPLICATION_NAME}
    if password is not None:
        params["password"] = password
    return params


def pick_members(cluster: Cluster, scope: str, member: str | None, role: str | None) -> list[Member]:
    if member is not None:
        found = cluster.get_member(member)
        if found is None:
            raise CtlError(f"{member} is not a member of cluster {scope}")
        return [found]
    return members_with_role(cluster, normalize_role(role) or "leader")


def _cursor(cluster: Cluster, scope: str, args: Namespace, user: str, password: str | None) -> Any:
    import psycopg2

    role = normalize_role(args.role)
    candidates = pick_members(cluster, scope, args.member, role)
    if not candidates:
        raise CtlError(f"No connection to role {role or 'leader'} is available in cluster {scope}")
    last = ""
    for member in candidates:
        conn = psycopg2.connect(**connect_params(member, user, password, args.dbname))
        conn.autocommit = True
        cursor = conn.cursor()
        if role in ("primary", "replica", "standby", "standby-leader"):
            cursor.execute("SELECT pg_catalog.pg_is_in_recovery()")
            in_recovery = bool(cursor.fetchone()[0])
            if in_recovery == (role == "primary"):
                last = f"{member.name} is {'in recovery' if in_recovery else 'not in recovery'}"
                conn.close()
                continue
        return cursor
    raise CtlError(f"No connection to role {role} is available ({last})")


def _result(cursor: Any, sql: str) -> tuple[list[str] | None, list[list[Any]]]:
    cursor.execute(sql)
    if cursor.description is None:
        return None, [[cursor.statusmessage]] if cursor.statusmessage else []
    return [d.name for d in cursor.description], [list(row) for row in cursor.fetchall()]


def _print(columns: list[str] | None, rows: list[list[Any]], args: Namespace) -> None:
    if columns is None and args.fmt in ("json", "yaml", "yml"):
        rows, columns = [], []
    if args.fmt == "tsv":  # every value as str(), as patronictl: NULL is None, booleans True/False
        for row in ([columns] if columns else []) + rows:
            echo(args.delimiter.join(str(v) for v in row))
        return
    echo(render(columns or ["status"], rows, args.fmt, delimiter=args.delimiter))


def run_query(ctx: Ctx, args: Namespace) -> int:
    if args.role is not None and args.member is not None:
        raise UsageError("--role and --member are mutually exclusive options")
    if args.sql_file is not None and args.command is not None:
        raise UsageError("--file and --command are mutually exclusive options")
    if args.sql_file is None and args.command is None:
        raise UsageError("You need to specify either --command or --file")
    if args.sql_file is not None:
        try:
            if args.sql_file == "-":
                sql = sys.stdin.read()
            else:
                with open(args.sql_file, encoding="utf-8") as fh:
                    sql = fh.read()
        except OSError as exc:
            raise CtlError(f"cannot read {args.sql_file}: {exc.strerror}") from None
    else:
        sql = args.command
    try:
        import psycopg2
    except ImportError:
        raise CtlError("query needs psycopg2 (Debian: apt install python3-psycopg2)") from None
    superuser = ctx.config.superuser
    user = args.username or superuser.username
    password = superuser.password if user == superuser.username else None
    if args.password:
        password = ask("Password", hide=True)
    scope = ctx.scope(args.cluster_name)
    interval = args.watch if args.watch is not None else (2.0 if args.W else None)
    cursor = None
    try:
        while True:
            try:
                if cursor is None:
                    cursor = _cursor(ctx.cluster(scope), scope, args, user, password)
                columns, rows = _result(cursor, sql)
                _print(columns, rows, args)
            except psycopg2.Error as exc:
                message = (exc.pgcode or "") + (": " if exc.pgcode else "") + str(exc).strip().replace("\n", " ")
                if cursor is not None and not cursor.connection.closed:
                    cursor.connection.close()
                cursor = None
                if interval is None:
                    raise CtlError(f"query failed: {message}") from None
                echo(f"{timestamp(0)}\tERROR, SQLSTATE: {message}")
            if interval is None:
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        if interval is None:
            raise
        return 0
    finally:
        if cursor is not None:
            cursor.connection.close()
