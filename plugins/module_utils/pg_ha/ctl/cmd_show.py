# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-mostly commands: list, topology, history, dsn, version, and remove."""
from __future__ import annotations

import sys
import time
from argparse import Namespace
from typing import Any

from .. import __version__
from ..core.model import Cluster
from ..dcs import DCSError
from .context import Ctx, members_with_role, normalize_role
from .errors import CtlError, UsageError
from .members import host_port
from .output import dump_json, dump_yaml, echo, render, timestamp
from .prompt import ask
from .table import print_members

HISTORY_COLUMNS = ["TL", "LSN", "Reason", "Timestamp", "New Leader"]
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _watch_interval(args: Namespace) -> float | None:
    if args.watch is not None:
        if args.watch <= 0:
            raise UsageError("--watch needs a positive number of seconds")
        return float(args.watch)
    return 2.0 if args.W else None


def _show_clusters(ctx: Ctx, args: Namespace, topology: bool) -> int:
    names = args.clusters or [ctx.scope(None)]
    interval = _watch_interval(args)
    extended = bool(getattr(args, "extended", False))
    clear = interval is not None and sys.stdout.isatty()
    try:
        while True:
            started = time.monotonic()
            clusters = [(name, ctx.cluster(name)) for name in names]  # read everything before printing
            if clear:
                sys.stdout.write(CLEAR_SCREEN)
            if getattr(args, "timestamp", False):
                echo(timestamp(0))
            for name, cluster in clusters:
                print_members(cluster, name, extended, args.fmt, topology)
            if interval is None:
                return 0
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:  # the way to leave watch mode
        return 0


def run_list(ctx: Ctx, args: Namespace) -> int:
    return _show_clusters(ctx, args, topology=False)


def run_topology(ctx: Ctx, args: Namespace) -> int:
    return _show_clusters(ctx, args, topology=True)


def run_history(ctx: Ctx, args: Namespace) -> int:
    cluster = ctx.cluster(ctx.scope(args.cluster_name))
    rows: list[list[Any]] = []
    for line in cluster.history.lines if cluster.history is not None else ():
        row = list(line)[:len(HISTORY_COLUMNS)]
        rows.append(row + [""] * (len(HISTORY_COLUMNS) - len(row)))
    echo(render(HISTORY_COLUMNS, rows, args.fmt, ("TL", "LSN")))
    return 0


def dsn_of(cluster: Cluster, scope: str, role: str | None, member_name: str | None) -> dict[str, Any]:
    """{member, host, port} of the named member, else of the first member with the role
    (default: the leader); the text form is patronictl's ``host=H port=P``."""
    if role is not None and member_name is not None:
        raise UsageError("--role and --member are mutually exclusive options")
    if member_name is not None:
        member = cluster.get_member(member_name)
        if member is None:
            raise CtlError(f"{member_name} is not a member of cluster {scope}")
    else:
        candidates = members_with_role(cluster, normalize_role(role) or "leader")
        if not candidates:
            raise CtlError(f"Can not find a suitable member with role {role or 'leader'} in cluster {scope}")
        member = candidates[0]
    host, port = host_port(member.conn_url)
    if not host:
        raise CtlError(f"member {member.name} publishes no conn_url")
    return {"member": member.name, "host": host, "port": port or 5432}


def run_dsn(ctx: Ctx, args: Namespace) -> int:
    if args.role is not None and args.member is not None:
        raise UsageError("--role and --member are mutually exclusive options")
    scope = ctx.scope(args.cluster_name)
    data = dsn_of(ctx.cluster(scope), scope, args.role, args.member)
    if args.fmt in ("json", "yaml", "yml"):
        echo(dump_json(data) if args.fmt == "json" else dump_yaml(data, sort_keys=False).rstrip("\n"))
    else:
        echo(f"host={data['host']} port={data['port']}")
    return 0


def _pg_version(number: Any) -> str:
    """150004 -> '15.4', 90624 -> '9.6.24'."""
    if not isinstance(number, int) or number <= 0:
        return ""
    if number < 100000:
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 10000}.{number % 100}"


def run_version(ctx: Ctx, args: Namespace) -> int:
    names = list(args.names)
    scope = names.pop(0) if names else ctx.config.scope
    rows: list[list[str]] = []
    if scope:
        cluster = ctx.cluster(scope)
        for name in names:
            if cluster.get_member(name) is None:
                raise CtlError(f"{name} is not a member of cluster {scope}")
        for member in cluster.members:
            if names and member.name not in names or not member.api_url:
                continue
            status = ctx.status(member)
            if status is None:
                rows.append([member.name, "", "", "failed to get version: no answer from its REST API"])
                continue
            patroni = status.get("patroni") if isinstance(status.get("patroni"), dict) else {}
            rows.append([member.name, str(patroni.get("version", "")), _pg_version(status.get("server_version")), ""])
    if args.fmt == "pretty":
        echo(f"pg_hactl version {__version__}")
        if scope:
            echo("")
        for name, version, pg, error in rows:
            echo(f"{name}: {error}" if error else f"{name}: pg_ha {version}" + (f" PostgreSQL {pg}" if pg else ""))
        return 0
    if args.fmt == "tsv":
        echo(render(["Member", "pg_ha", "PostgreSQL", "Error"], [["pg_hactl", __version__, "", ""], *rows], "tsv"))
        return 0
    data = {"pg_hactl": __version__, "members": [
        {k: v for k, v in zip(("member", "pg_ha", "postgresql", "error"), row, strict=True) if v} for row in rows]}
    echo(dump_json(data) if args.fmt == "json" else dump_yaml(data, sort_keys=False).rstrip("\n"))
    return 0


def run_remove(ctx: Ctx, args: Namespace) -> int:
    scope = args.cluster_name
    cluster = ctx.cluster(scope)
    print_members(cluster, scope, fmt=args.fmt)
    if ask("Please confirm the cluster name to remove") != scope:
        raise CtlError("Cluster names specified do not match")
    message = "Yes I am aware"
    if ask(f'You are about to remove all information in DCS for {scope}, please type: "{message}"') != message:
        raise CtlError(f'You did not exactly type "{message}"')
    if cluster.leader is not None and cluster.leader.name:
        if ask("This cluster currently is healthy. Please specify the leader name to continue") != cluster.leader.name:
            raise CtlError("You did not specify the current leader of the cluster")
    try:
        ctx.dcs(scope).delete_cluster()
    except DCSError as exc:
        raise CtlError(f"removing cluster {scope} from the DCS failed: {exc}") from None
    echo(f"Cluster {scope} removed from the DCS")
    return 0
