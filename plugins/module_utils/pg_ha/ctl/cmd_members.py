# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Commands acting on members through their REST API: pause, resume, restart, reload,
reinit and flush. Per-member outcomes are printed as patronictl does (``Success: ...`` /
``Failed: ...``); if any member failed, the command ends with one ``Error:`` line, exit 1."""
from __future__ import annotations

import random
import re
import time
from argparse import Namespace
from typing import Any

from ..config.defaults import DYNAMIC_DEFAULTS
from ..core.model import Cluster, Member
from ..dcs import DCSError
from .context import Ctx, confirm_members, leader_first, normalize_role, warn
from .errors import CtlError, UsageError
from .output import echo
from .prompt import ask, next_hour_example, parse_scheduled

PG_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h)?\s*$")
DURATION_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
POLL = 0.5


def split_names(ctx: Ctx, names: list[str]) -> tuple[str, list[str]]:
    """[CLUSTER [MEMBER ...]] -> (cluster, members); the cluster defaults to the config's scope."""
    return (names[0], list(names[1:])) if names else (ctx.scope(None), [])


def parse_duration(text: str | None) -> float | None:
    if text is None:
        return None
    match = DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"invalid --timeout {text!r}: expected a positive number of seconds (e.g. 60, 90s, 5min)")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def loop_wait(cluster: Cluster) -> int:
    value = cluster.config.data.get("loop_wait") if cluster.config is not None else None
    return value if isinstance(value, int) and value > 0 else DYNAMIC_DEFAULTS["loop_wait"]


def _body_text(body: Any) -> str:
    return (body if isinstance(body, str) else str(body)).strip()


def _finish(action: str, failed: list[str], total: int) -> int:
    if failed:
        raise CtlError(f"{action} failed on {len(failed)} of {total} member(s): {', '.join(failed)}")
    return 0


# -- pause / resume ------------------------------------------------------------------
def _wait_pause(ctx: Ctx, cluster: Cluster, paused: bool) -> None:
    word = "pause" if paused else "resume"
    echo(f"'{word}' request sent, waiting until it is recognized by all nodes")
    members = [m for m in cluster.members if m.api_url]
    limit = 2 * loop_wait(cluster) + 10
    deadline = time.monotonic() + limit
    while True:
        remaining = []
        for member in members:
            status = ctx.status(member)
            if status is None or bool(status.get("pause")) != paused:
                remaining.append(member.name)
        if not remaining:
            echo(f"Success: cluster management is {'paused' if paused else 'resumed'}")
            return
        if time.monotonic() > deadline:
            raise CtlError(f"{', '.join(remaining)} did not recognize the {word} after {limit} seconds")
        time.sleep(POLL)


def _toggle_pause(ctx: Ctx, args: Namespace, paused: bool) -> int:
    from ..client import PgHaClientError

    scope = ctx.scope(args.cluster_name)
    cluster = ctx.cluster(scope)
    if cluster.paused == paused:
        raise CtlError(f"Cluster is {'already' if paused else 'not'} paused")
    for member in leader_first(cluster):
        try:
            code, body = ctx.client(member).patch_config({"pause": True if paused else None})
        except PgHaClientError as exc:
            warn(f"member {member.name} is not accessible: {exc.message}")
            continue
        if code != 200:
            raise CtlError(f"{'pause' if paused else 'resume'} cluster management failed, status code={code}, "
                           f"({_body_text(body)})")
        if args.wait:
            _wait_pause(ctx, cluster, paused)
        else:
            echo(f"Success: cluster management is {'paused' if paused else 'resumed'}")
        return 0
    raise CtlError("Can not find accessible cluster member")


def run_pause(ctx: Ctx, args: Namespace) -> int:
    return _toggle_pause(ctx, args, True)


def run_resume(ctx: Ctx, args: Namespace) -> int:
    return _toggle_pause(ctx, args, False)


# -- restart ---------------------------------------------------------------------------
def _restart_one(ctx: Ctx, member: Member, content: dict[str, Any], force: bool) -> bool:
    """POST /restart on one member and print the outcome; False when it failed."""
    from ..client import PgHaClientError

    client = ctx.client(member)
    try:
        if content.get("schedule") and force and member.data.get("scheduled_restart"):
            code, body = client.cancel_restart()
            if code >= 400 and code != 404:
                echo(f"Failed: flush scheduled restart for member {member.name}, status code={code}, "
                     f"({_body_text(body)})")
        code, body = client.restart(content.get("schedule"), bool(content.get("restart_pending")), None,
                                    content.get("postgres_version"), content.get("timeout"))
    except PgHaClientError as exc:
        echo(f"Failed: restart for member {member.name}: {exc.message}")
        return False
    text = _body_text(body)
    if code == 200:
        echo(f"Success: restart on member {member.name}")
    elif code == 202:
        echo(f"Success: restart scheduled on member {member.name}")
    elif code == 409:
        echo(f"Failed: another restart is already scheduled on member {member.name}")
        return False
    elif code == 503 and "conditions are not satisfied" in text:
        echo(f"Skipped: restart of member {member.name} ({text})")
    else:
        echo(f"Failed: restart for member {member.name}, status code={code}, ({text})")
        return False
    return True


def run_restart(ctx: Ctx, args: Namespace) -> int:
    scope, names = split_names(ctx, args.names)
    if args.pg_version is not None and not PG_VERSION.match(args.pg_version):
        raise UsageError(f"Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {args.pg_version}")
    timeout = parse_duration(args.timeout)
    scheduled_at = parse_scheduled(args.scheduled) if args.scheduled is not None else None
    cluster = ctx.cluster(scope)
    members = ctx.select_members(cluster, scope, names, normalize_role(args.role), args.force, "restart")
    immediate = scheduled_at is None and (args.scheduled is not None or args.force)
    if args.pending and immediate:  # scheduled ones are picked by the daemon when due
        members = [m for m in members if m.pending_restart]
        if not members:
            echo("No members with a pending restart")
            return 0
    if args.p_any:
        members = [random.choice(members)]
    confirm_members(members, args.force, "restart", scheduled_at.isoformat() if scheduled_at else None)
    version = args.pg_version
    if version is None and not args.force:
        version = ask("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)", "") or None
        if version is not None and not PG_VERSION.match(version):
            raise UsageError(f"Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {version}")
    if args.scheduled is None and not args.force:
        scheduled_at = parse_scheduled(ask(f"When should the restart take place (e.g. {next_hour_example()})",
                                           "now"))
        if args.pending and scheduled_at is None:
            members = [m for m in members if m.pending_restart]
            if not members:
                echo("No members with a pending restart")
                return 0
    if scheduled_at is not None and cluster.paused:
        raise CtlError("Can't schedule restart in the paused state")
    content: dict[str, Any] = {"restart_pending": args.pending, "postgres_version": version, "timeout": timeout,
                               "schedule": scheduled_at.isoformat() if scheduled_at else None}
    failed = [m.name for m in members if not _restart_one(ctx, m, content, args.force)]
    return _finish("restart", failed, len(members))


# -- reload ----------------------------------------------------------------------------
def run_reload(ctx: Ctx, args: Namespace) -> int:
    from ..client import PgHaClientError

    scope, names = split_names(ctx, args.names)
    cluster = ctx.cluster(scope)
    members = ctx.select_members(cluster, scope, names, normalize_role(args.role), args.force, "reload")
    confirm_members(members, args.force, "reload")
    failed = []
    for member in members:
        try:
            code, body = ctx.client(member).reload()
        except PgHaClientError as exc:
            echo(f"Failed: reload for member {member.name}: {exc.message}")
            failed.append(member.name)
            continue
        if code == 200:
            echo(f"No changes to apply on member {member.name}")
        elif code == 202:
            echo(f"Reload request received for member {member.name} and will be processed within "
                 f"{loop_wait(cluster)} seconds")
        else:
            echo(f"Failed: reload for member {member.name}, status code={code}, ({_body_text(body)})")
            failed.append(member.name)
    return _finish("reload", failed, len(members))


# -- reinit ----------------------------------------------------------------------------
def _wait_reinit(ctx: Ctx, members: list[Member], before: dict[str, Any]) -> list[str]:
    """Wait until each member was seen re-cloning (or restarted) and is no longer cloning."""
    waiting = {m.name: m for m in members}
    seen_busy: set[str] = set()
    failed: list[str] = []
    echo(f"Waiting for reinitialize to complete on: {', '.join(waiting)}")
    while waiting:
        time.sleep(POLL)
        for name, member in list(waiting.items()):
            status = ctx.status(member)
            if status is None:
                continue
            state = status.get("state")
            if state != "running":
                seen_busy.add(name)
            restarted = status.get("postmaster_start_time") != before.get(name)
            if state == "running" and (name in seen_busy or restarted):
                echo(f"Reinitialize is completed on: {name}")
                del waiting[name]
            elif state in ("crashed", "stopped", "uninitialized", "creating replica failed") and restarted:
                echo(f"Failed: reinitialize on {name} ended in state {state}")
                failed.append(name)
                del waiting[name]
    return failed


def run_reinit(ctx: Ctx, args: Namespace) -> int:
    from ..client import PgHaClientError

    scope, names = split_names(ctx, args.names)
    cluster = ctx.cluster(scope)
    members = ctx.select_members(cluster, scope, names, "replica", args.force, "reinitialize", ask_for_one=True)
    confirm_members(members, args.force, "reinitialize")
    failed, started = [], []
    before: dict[str, Any] = {}
    for member in members:
        status = ctx.status(member) if args.wait else None
        before[member.name] = status.get("postmaster_start_time") if status else None
        try:
            code, body = ctx.client(member).reinitialize(force=args.force, from_leader=args.from_leader)
        except PgHaClientError as exc:
            echo(f"Failed: reinitialize for member {member.name}: {exc.message}")
            failed.append(member.name)
            continue
        if code >= 400:
            echo(f"Failed: reinitialize for member {member.name}, status code={code}, ({_body_text(body)})")
            failed.append(member.name)
            continue
        echo(f"Success: reinitialize for member {member.name}")
        started.append(member)
    if args.wait and started:
        failed += _wait_reinit(ctx, started, before)
    return _finish("reinitialize", failed, len(members))


# -- flush -----------------------------------------------------------------------------
def _flush_switchover(ctx: Ctx, cluster: Cluster, scope: str) -> int:
    from ..client import PgHaClientError

    failover = cluster.failover
    if failover is None or failover.scheduled_at is None:
        echo("No pending scheduled switchover")
        return 0
    for member in leader_first(cluster):
        try:
            code, body = ctx.client(member).cancel_switchover()
        except PgHaClientError as exc:
            warn(f"member {member.name} is not accessible: {exc.message}")
            continue
        if code == 200:
            echo(f"Success: {_body_text(body)}")
            return 0
        if code == 404:
            raise CtlError(_body_text(body))
        echo(f"Failed: member={member.name}, status_code={code}, ({_body_text(body)})")
    echo(f"Could not find any accessible member of cluster {scope}: removing the failover key in the DCS")
    try:
        if not ctx.dcs(scope).set_failover_value("", failover.version):
            raise CtlError("the scheduled switchover changed meanwhile; nothing removed")
    except DCSError as exc:
        raise CtlError(f"removing the failover key failed: {exc}") from None
    echo("Success: scheduled switchover deleted")
    return 0


def run_flush(ctx: Ctx, args: Namespace) -> int:
    from ..client import PgHaClientError

    *rest, target = args.names
    if target not in ("restart", "switchover"):
        raise UsageError(f"the last argument of flush must be restart or switchover, not {target!r}")
    scope, names = split_names(ctx, rest)
    cluster = ctx.cluster(scope)
    if target == "switchover":
        if names:
            raise UsageError("flush switchover takes no member names")
        return _flush_switchover(ctx, cluster, scope)
    members = ctx.select_members(cluster, scope, names, normalize_role(args.role), args.force, "flush")
    confirm_members(members, args.force, "flush")
    failed = []
    for member in members:
        try:
            code, body = ctx.client(member).cancel_restart()
        except PgHaClientError as exc:
            echo(f"Failed: flush scheduled restart for member {member.name}: {exc.message}")
            failed.append(member.name)
            continue
        if code == 200:
            echo(f"Success: flush scheduled restart for member {member.name}")
        elif code == 404:
            echo(f"No scheduled restart for member {member.name}")
        else:
            echo(f"Failed: flush scheduled restart for member {member.name}, status code={code}, "
                 f"({_body_text(body)})")
            failed.append(member.name)
    return _finish("flush", failed, len(members))
