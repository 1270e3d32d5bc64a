# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""demote-cluster and promote-cluster (patronictl 4.1).

demote-cluster writes ``standby_cluster: {host, port, primary_slot_name, restore_command}``
(the options given) into the dynamic config through the leader's ``PATCH /config``; the
leader then restarts as a standby leader of that remote. promote-cluster writes
``standby_cluster: null``, which promotes the standby leader. Both show the cluster, ask
``Are you sure you want to demote|promote CLUSTER cluster? [y/N]`` unless --force, and then
report the leader's progress once a second until it holds the lock with the target role
(``standby_leader`` / ``primary``) and is running; as patronictl, they wait without a
deadline (Ctrl-C leaves, exit 130)."""
from __future__ import annotations

import time
from argparse import Namespace
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..core.model import Cluster
from .context import Ctx
from .errors import CtlError, UsageError
from .output import echo
from .prompt import confirm
from .table import print_members

POLL = 1.0
STANDBY_LEADER = "standby_leader"
PRIMARY = "primary"
RUNNING = "running"


def standby_config(args: Namespace) -> dict[str, Any]:
    """The standby_cluster section of demote-cluster's options (the ones given, in patronictl's order)."""
    if not any((args.host, args.port, args.restore_command)):
        raise UsageError("At least --host, --port or --restore-command should be specified")
    given = {"host": args.host, "port": args.port, "primary_slot_name": args.primary_slot_name,
             "restore_command": args.restore_command}
    return {k: v for k, v in given.items() if v}


def now_text() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _leader_data(cluster: Cluster) -> dict[str, Any]:
    member = cluster.leader_member if cluster.leader is not None else None
    return member.data if member is not None else {}


def progress(cluster: Cluster, old_leader: str, demote: bool) -> tuple[bool, str]:
    """(done, the line to print) for one look at the cluster while waiting."""
    target = STANDBY_LEADER if demote else PRIMARY
    action = "demoted" if demote else "promoted"
    unlocked = cluster.leader is None
    data = _leader_data(cluster)
    role, state = data.get("role"), data.get("state")
    old = cluster.get_member(old_leader)
    old_state = old.data.get("state") if old is not None else None
    if not unlocked and role == target and state == RUNNING and (not demote or old_state == RUNNING):
        return True, f"{now_text()} cluster is successfully {action}"
    parts = [f"{now_text()} cluster is unlocked: {unlocked}", f"leader role: {role}", f"leader state: {state}"]
    if demote and cluster.leader is not None and cluster.leader.name != old_leader and old_state:
        parts.append(f"previous leader state: {old_state!r}")
    return False, ", ".join(parts)


def change_cluster_role(ctx: Ctx, scope: str, force: bool, standby: dict[str, Any] | None,
                        sleep: Callable[[float], None] | None = None) -> int:
    from ..client import PgHaClientError

    demote = bool(standby)
    action = "demot" if demote else "promot"
    target = STANDBY_LEADER if demote else PRIMARY
    cluster = ctx.cluster(scope)
    leader = cluster.leader_member if cluster.leader is not None else None
    if cluster.leader is None or not cluster.leader.name:
        raise CtlError(f"Cluster has no leader, {action}ion is not possible")
    if _leader_data(cluster).get("role") == target:
        raise CtlError("Cluster is already in the required state")
    if leader is None:
        raise CtlError(f"Failed to {action}e {scope} cluster: the leader {cluster.leader.name} has no member key")
    old_leader = leader.name
    echo("Current cluster topology")
    print_members(cluster, scope)
    if not force and not confirm(f"Are you sure you want to {action}e {scope} cluster?"):
        raise CtlError(f"Aborted cluster {action}ion")
    try:
        code, body = ctx.client(leader).patch_config({"standby_cluster": standby})
    except PgHaClientError as exc:
        raise CtlError(f"Failed to {action}e {scope} cluster: {exc.message}") from None
    if code != 200:
        text = body if isinstance(body, str) else str(body)
        raise CtlError(f"Failed to {action}e {scope} cluster: /config PATCH status code={code}, ({text.strip()})")
    while True:
        cluster = ctx.cluster(scope)
        done, line = progress(cluster, old_leader, demote)
        echo(line)
        if done:
            break
        (sleep or time.sleep)(POLL)
    print_members(cluster, scope)
    return 0


def run_demote(ctx: Ctx, args: Namespace) -> int:
    return change_cluster_role(ctx, ctx.scope(args.cluster_name), args.force, standby_config(args))


def run_promote(ctx: Ctx, args: Namespace) -> int:
    return change_cluster_role(ctx, ctx.scope(args.cluster_name), args.force, None)
