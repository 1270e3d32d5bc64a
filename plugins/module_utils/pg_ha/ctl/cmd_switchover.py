# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""switchover and failover, with patronictl's prompts (in the order the seeds show them).

The request goes to the leader's REST API (to the candidate's when there is no leader),
which writes the failover key and, for an immediate one, answers with the outcome. Only
when no member answers is the failover key written directly, as patronictl does."""
from __future__ import annotations

from argparse import Namespace
from datetime import datetime

from ..core.model import Cluster, Member
from ..dcs import DCSError
from .context import Ctx, warn
from .errors import CtlError
from .members import is_standby_cluster
from .output import echo, mb, timestamp
from .prompt import ask, confirm, next_hour_example, parse_scheduled
from .table import print_members

DEFAULT_MAXIMUM_LAG = 1048576


def candidate_names(cluster: Cluster) -> list[str]:
    """Members that may be promoted: not the leader, not tagged nofailover; sorted."""
    leader = cluster.leader.name if cluster.leader is not None else None
    return sorted(m.name for m in cluster.members if m.name != leader and not m.nofailover)


def ineligible(cluster: Cluster, scope: str, name: str, immediate: bool) -> str | None:
    """Why ``name`` can not be promoted now (None: it can). Scheduled switchovers only need
    an existing member without nofailover: the daemon checks the rest when it is due."""
    member = cluster.get_member(name)
    if member is None:
        return f"Member {name} does not exist in cluster {scope}"
    if cluster.leader is not None and cluster.leader.name == name:
        return f"Member {name} is already the leader of cluster {scope}"
    if member.nofailover:
        return f"Member {name} is tagged nofailover and can not be promoted"
    if not immediate:
        return None
    if member.state != "running":
        return f"Member {name} is not running (state: {member.state})"
    data = cluster.config.data if cluster.config is not None else {}
    limit = data.get("maximum_lag_on_failover", DEFAULT_MAXIMUM_LAG)
    if isinstance(limit, int) and cluster.last_lsn and member.lsn:
        lag = cluster.last_lsn - member.lsn
        if lag > limit:
            return (f"Member {name} is {mb(lag)} MB ({lag} bytes) behind the leader, more than "
                    f"maximum_lag_on_failover ({limit} bytes)")
    return None


def _request_target(cluster: Cluster, candidate: str | None) -> list[Member]:
    """Who gets the request: the leader, else the candidate, else anyone with an API."""
    first = [m for m in (cluster.leader_member, cluster.get_member(candidate) if candidate else None)
             if m is not None and m.api_url]
    return first + [m for m in cluster.members if m.api_url and m not in first]


def _send(ctx: Ctx, cluster: Cluster, scope: str, action: str, leader: str | None, candidate: str | None,
          scheduled_at: datetime | None) -> None:
    from ..client import PgHaClientError

    errors = []
    for member in _request_target(cluster, candidate):
        client = ctx.client(member)
        try:
            if action == "switchover":
                code, body = client.switchover(leader or "", candidate, scheduled_at)
            else:
                code, body = client.failover(candidate or "", leader)
        except PgHaClientError as exc:
            if "timed out" in exc.message:  # it may have been received: do not ask anyone else
                raise CtlError(f"{action} request to {member.name}: {exc.message}; the outcome is unknown, "
                               "check with pg_hactl list") from None
            errors.append(f"{member.name}: {exc.message}")
            warn(f"member {member.name} is not accessible: {exc.message}")
            continue
        text = body if isinstance(body, str) else str(body)
        if code in (200, 202):
            echo(f"{timestamp()} {text.strip()}")
            return
        raise CtlError(f"{action.title()} failed, details: {code}, {text.strip()}")
    echo(f"{timestamp()} Could not {action} using the pg_ha REST API, falling back to DCS")
    try:
        version = cluster.failover.version if cluster.failover is not None else None
        written = ctx.dcs(scope).manual_failover(leader if action == "switchover" else None, candidate,
                                                 scheduled_at=scheduled_at, version=version)
    except DCSError as exc:
        raise CtlError(f"no member answered ({'; '.join(errors)}) and writing the failover key failed: {exc}") from None
    if not written:
        raise CtlError("the failover key changed meanwhile; nothing written")


def _failover_or_switchover(ctx: Ctx, args: Namespace, action: str) -> int:
    scope = ctx.scope(args.cluster_name)
    cluster = ctx.cluster(scope)
    force = args.force
    leader = cluster.leader.name if cluster.leader is not None else None
    wanted_leader = getattr(args, "leader", None)
    if action == "switchover":
        if not leader:
            raise CtlError("This cluster has no leader")
        if wanted_leader is None:
            label = "Standby Leader" if is_standby_cluster(cluster) else "Primary"
            wanted_leader = leader if force else ask(label, leader)
        if wanted_leader != leader:
            raise CtlError(f"Member {wanted_leader} is not the leader of cluster {scope}")
    names = candidate_names(cluster)
    if not names:
        raise CtlError(f"No candidates found to {action} to")
    candidate = args.candidate
    if candidate is None and not force:
        candidate = ask(f"Candidate {names}", "") or None
    if action == "failover" and not candidate:
        raise CtlError("Failover could be performed only to a specific candidate")
    scheduled_at = None
    if action == "switchover":
        scheduled = args.scheduled
        if scheduled is None and not force:
            scheduled = ask(f"When should the switchover take place (e.g. {next_hour_example()})", "now")
        scheduled_at = parse_scheduled(scheduled)
        if scheduled_at is not None and cluster.paused:
            raise CtlError("Can't schedule switchover in the paused state")
    if candidate:
        reason = ineligible(cluster, scope, candidate, scheduled_at is None)
        if reason:
            raise CtlError(reason)
    if not force:
        echo("Current cluster topology")
        print_members(cluster, scope)
        demote = f", demoting current leader {leader}" if leader else ""
        if scheduled_at is not None:
            question = f"Are you sure you want to schedule switchover of cluster {scope} at " \
                       f"{scheduled_at.isoformat()}{demote}?"
        else:
            question = f"Are you sure you want to {action} cluster {scope}{demote}?"
        if not confirm(question):
            raise CtlError(f"Aborting {'scheduled ' if scheduled_at else ''}{action}")
    _send(ctx, cluster, scope, action, wanted_leader, candidate, scheduled_at)
    print_members(ctx.cluster(scope), scope)
    return 0


def run_switchover(ctx: Ctx, args: Namespace) -> int:
    return _failover_or_switchover(ctx, args, "switchover")


def run_failover(ctx: Ctx, args: Namespace) -> int:
    return _failover_or_switchover(ctx, args, "failover")
