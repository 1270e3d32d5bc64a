# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""POST /switchover, POST /failover, DELETE /switchover.

Validation is pure (:func:`parse_request`, :func:`check_possible`). An immediate
switchover writes the failover key, wakes the HA loop and then waits
(:func:`wait_for_result`) until the DCS shows the outcome or the deadline passes:
200 when the new leader is confirmed running as primary, 503 with what was last seen
otherwise.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..core.model import Cluster
from ..dcs.base import AbstractDCS, DCSError
from .backend import ApiBackend
from .health import PRIMARY_ROLES, RUNNING
from .messages import ApiError, Request, Response, json_object
from .units import parse_duration, parse_timestamp

logger = logging.getLogger(__name__)
POLL_INTERVAL = 0.25


@dataclass(frozen=True)
class FailoverRequest:
    action: str  # 'switchover' or 'failover'
    leader: str | None
    candidate: str | None
    scheduled_at: datetime | None
    timeout: float | None


def _name(body: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = body.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"{key} must be a string")
        return value
    return None


def parse_request(action: str, body: Any, query: dict[str, str], paused: bool,
                  now: datetime | None = None) -> FailoverRequest:
    """Validate the body of POST /switchover or /failover; ApiError(400/422) when invalid."""
    data = json_object(body, required=True)
    leader = _name(data, "leader")
    candidate = _name(data, "candidate", "member")
    raw_timeout = data.get("timeout", query.get("timeout"))
    timeout = None
    if raw_timeout is not None:
        timeout = parse_duration(raw_timeout)
        if timeout is None or timeout <= 0:
            raise ApiError(400, "timeout should be a positive number of seconds")
    if action == "failover" and not candidate:
        raise ApiError(400, "Failover could be performed only to a specific candidate")
    if action == "switchover" and not leader:
        raise ApiError(400, "Switchover could be performed only from a specific leader")
    scheduled_at = None
    if data.get("scheduled_at"):
        if action == "failover":
            raise ApiError(400, "Failover can't be scheduled")
        if paused:
            raise ApiError(400, "Can't schedule switchover in the paused state")
        parsed = parse_timestamp(data["scheduled_at"], action, now)
        if isinstance(parsed, tuple):
            raise ApiError(*parsed)
        scheduled_at = parsed
    if paused and not candidate:
        raise ApiError(400, "Switchover is possible only to a specific candidate in a paused state")
    if action == "failover" and leader:
        action = "switchover"  # Patroni: a failover naming the leader is a switchover
    if leader and leader == candidate:
        raise ApiError(400, "Switchover target and source are the same")
    return FailoverRequest(action, leader, candidate, scheduled_at, timeout)


def _sync_names(cluster: Cluster) -> tuple[str, ...] | None:
    """Names of the synchronous standbys when synchronous_mode is on, else None."""
    if cluster.config is None or not cluster.config.synchronous_mode:
        return None
    return cluster.sync.sync_standby if cluster.sync is not None else ()


def _unhealthy(cluster: Cluster, name: str) -> str | None:
    member = cluster.get_member(name)
    if member is None:
        return f"candidate {name} does not exist"
    if cluster.leader is not None and cluster.leader.name == name:
        return f"candidate {name} is already the leader"
    if member.state != RUNNING:
        return f"candidate {name} is not running (state: {member.state})"
    if member.nofailover:
        return f"candidate {name} is tagged nofailover"
    return None


def check_possible(cluster: Cluster, req: FailoverRequest) -> str | None:
    """None when the DCS snapshot allows the request, else the reason (answered with 412)."""
    if req.leader and (cluster.leader is None or cluster.leader.name != req.leader):
        return "leader name does not match"
    sync = _sync_names(cluster)
    if req.candidate:
        if req.scheduled_at is not None:  # checked again by the HA loop when it is due
            return None if cluster.get_member(req.candidate) else f"candidate {req.candidate} does not exist"
        if req.action == "switchover" and sync is not None and req.candidate not in sync:
            return "candidate name does not match with sync_standby"
        reason = _unhealthy(cluster, req.candidate)
        if reason is not None and (reason.endswith("is tagged nofailover") or " is not running " in reason):
            logger.info("%s to %s refused: %s", req.action, req.candidate, reason)
            return f"{req.action} is not possible: no good candidates have been found"  # Patroni's exact text
        return reason
    if req.scheduled_at is not None:
        return None
    leader = cluster.leader.name if cluster.leader is not None else None
    if sync is not None:
        names = [m.name for m in cluster.members if m.name in sync and m.name != leader]
        if not names:
            return f"{req.action} is not possible: can not find sync_standby"
    else:
        names = [m.name for m in cluster.members if m.name != leader and m.api_url]
        if not names:
            return f"{req.action} is not possible: cluster does not have members except leader"
    if all(_unhealthy(cluster, name) for name in names):
        return f"{req.action} is not possible: no good candidates have been found"
    return None


def _observed(cluster: Cluster) -> str:
    """What the DCS shows, for the failure message."""
    if cluster.leader is None:
        text = "no member holds the leader lock"
    else:
        member = cluster.get_member(cluster.leader.name)
        detail = f"state={member.state}, role={member.role}" if member else "no member key"
        text = f'"{cluster.leader.name}" holds the leader lock ({detail})'
    return text + ("; the failover key is still present" if cluster.failover else "")


def wait_for_result(dcs: AbstractDCS, action: str, old_leader: str | None, candidate: str | None,
                    timeout: float, grace: float, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[int, str]:
    """Poll the DCS until the switchover/failover is done, refused or timed out."""
    title = action.title()
    done = f"{action[:-4]}ed"  # switched / failed
    deadline = clock() + timeout
    refused_since: float | None = None
    last_seen = "nothing read from the DCS yet"
    while True:
        try:
            cluster = dcs.get_cluster()
        except DCSError as exc:
            last_seen = f"DCS error: {exc}"
        else:
            last_seen = _observed(cluster)
            leader = cluster.leader.name if cluster.leader is not None else None
            member = cluster.get_member(leader) if leader else None
            if leader and leader != old_leader and cluster.failover is None and member is not None \
                    and member.state == RUNNING and (member.role in PRIMARY_ROLES or member.role == "standby_leader"):
                if candidate and leader != candidate:
                    return 503, f'{title} failed: "{leader}" became the leader instead of "{candidate}"'
                return 200, f'Successfully {done} over to "{leader}"'
            if cluster.failover is None and leader is not None and leader == old_leader:
                refused_since = clock() if refused_since is None else refused_since
                if clock() - refused_since >= grace:
                    return 503, (f'{title} failed: the failover key was removed and "{leader}"'
                                 " still holds the leader lock")
            else:
                refused_since = None
        if clock() >= deadline:
            return 503, f"{title} failed: no result after {timeout:g}s; {last_seen}"
        sleep(min(POLL_INTERVAL, max(0.0, deadline - clock())))


def handle_failover(backend: ApiBackend, request: Request, action: str) -> Response:
    """POST /switchover (action 'switchover') and POST /failover (action 'failover')."""
    dcs = backend.dcs
    cluster = dcs.get_cluster()
    req = parse_request(action, request.body, request.query, cluster.paused)
    logger.info("received %s request with leader=%s candidate=%s scheduled_at=%s", req.action, req.leader,
                req.candidate, req.scheduled_at.isoformat() if req.scheduled_at else None)
    reason = check_possible(cluster, req)
    if reason:
        logger.info("%s refused: %s", req.action, reason)
        return Response(412, reason)
    version = cluster.failover.version if cluster.failover is not None else None
    if not dcs.manual_failover(req.leader, req.candidate, scheduled_at=req.scheduled_at, version=version):
        return Response(503, "failed to write failover key into DCS")
    backend.wakeup()
    if req.scheduled_at is not None:
        return Response(202, f"{req.action.title()} scheduled")
    dynamic = backend.config.dynamic
    timeout = req.timeout or max(30.0, 2.0 * dynamic.ttl + dynamic.loop_wait)
    grace = max(2.0, float(dynamic.loop_wait))
    old_leader = cluster.leader.name if cluster.leader is not None else None
    code, message = wait_for_result(dcs, req.action, old_leader, req.candidate, timeout, grace)
    (logger.info if code == 200 else logger.warning)("%s", message)
    return Response(code, message)


def handle_delete(backend: ApiBackend) -> Response:
    """DELETE /switchover: remove a scheduled switchover (404 when none)."""
    failover = backend.dcs.get_cluster().failover
    if failover is None or failover.scheduled_at is None:
        return Response(404, "no switchover is scheduled")
    if not backend.dcs.set_failover_value("", failover.version):
        return Response(409, "the scheduled switchover changed meanwhile; not deleted")
    backend.wakeup()
    return Response(200, "scheduled switchover deleted")
