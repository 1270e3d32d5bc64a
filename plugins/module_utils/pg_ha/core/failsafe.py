# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failsafe_mode (Patroni's "DCS failsafe mode"): the pure rules.

While the DCS works, the leader publishes the ``failsafe`` key: member name -> REST API
URL of every member it knows. When the DCS cannot be reached (any error class: one
DCSError path), a running primary with failsafe_mode on asks every other member of that
last known topology ``POST /failsafe``; only if every one of them accepts does it keep
running read-write, otherwise it demotes as without failsafe_mode. A member accepts
unless it runs as a primary itself; by accepting it remembers the caller as the leader
for ttl seconds, so it keeps following it and does not race for the leader key even
once the DCS is back and the caller's key has expired.

No I/O and no clock here: times come in as arguments (monotonic seconds).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .ha import Action, Decision
from .model import Cluster, Leader, Member
from .slots import slot_name

ACCEPTED = "Accepted"  # the body of a 200 answer to POST /failsafe (as Patroni)
CONTINUE = "continue to run as a leader because failsafe mode is enabled and all members are accessible"
DEMOTE = "demoting self because DCS is not accessible and I was a leader"
NOT_ACCESSIBLE = "DCS is not accessible"


def topology(cluster: Cluster, me: str, my_api_url: str) -> dict[str, str]:
    """The value of the ``failsafe`` key the leader writes: every member with an api_url,
    and always the leader itself."""
    result = {m.name: str(m.api_url) for m in cluster.members if m.api_url}
    result.setdefault(me, my_api_url)
    return result


def key_needs_write(failsafe_mode: bool, current: Mapping[str, Any] | None, wanted: Mapping[str, str]) -> bool:
    return failsafe_mode and dict(current or {}) != dict(wanted)


@dataclass(frozen=True)
class OutageView:
    """What a member knows when it cannot read the DCS."""

    name: str
    failsafe_mode: bool               # from the last dynamic config read
    paused: bool                      # the last known cluster was paused
    running: bool
    in_recovery: bool
    busy: str | None = None
    known_topology: Mapping[str, Any] | None = None  # the failsafe key as last read
    answers: Mapping[str, bool] | None = None  # member -> accepted our POST /failsafe


def _primary_outside_pause(view: OutageView) -> bool:
    return view.running and not view.in_recovery and not view.busy and not view.paused


def members_to_ask(view: OutageView) -> dict[str, str] | None:
    """The other members (name -> api_url) whose consent the primary must get now, or
    None when no call is to be made (not a primary, failsafe off, no usable topology)."""
    if not view.failsafe_mode or not _primary_outside_pause(view):
        return None
    known = view.known_topology
    if not isinstance(known, Mapping) or view.name not in known:
        return None
    return {str(n): str(u) for n, u in known.items() if n != view.name}


@dataclass(frozen=True)
class OutageDecision(Decision):
    """The decision of a cycle without the DCS. ``consented``: every other member of the
    failsafe topology accepted our POST /failsafe, so we are still the leader (we keep the
    VIP and the watchdog, and GET /patroni says failsafe_mode_is_active)."""

    consented: bool = False


def decide_without_dcs(view: OutageView) -> OutageDecision:
    """The decision of a cycle in which the DCS could not be read."""
    if not view.running or view.in_recovery:
        return OutageDecision(Action.NOOP, NOT_ACCESSIBLE)
    if view.busy:
        return OutageDecision(Action.NOOP, f"{NOT_ACCESSIBLE}: {view.busy} in progress")
    if view.paused:
        return OutageDecision(Action.NOOP, f"PAUSE: {NOT_ACCESSIBLE}, continue to run as primary without lock")
    if not view.failsafe_mode:
        return OutageDecision(Action.DEMOTE_OFFLINE, DEMOTE)
    others = members_to_ask(view)
    if others is None:
        why = "no failsafe topology is known" if not isinstance(view.known_topology, Mapping) \
            else f"I ({view.name}) am not in the failsafe topology"
        return OutageDecision(Action.DEMOTE_OFFLINE, f"{DEMOTE} (failsafe: {why})")
    answers = view.answers or {}
    refused = sorted(n for n in others if not answers.get(n, False))
    if refused:
        return OutageDecision(Action.DEMOTE_OFFLINE,
                              f"{DEMOTE} (failsafe: no consent from {', '.join(refused)})")
    return OutageDecision(Action.NOOP, CONTINUE, consented=True)


# -- the member side of POST /failsafe ---------------------------------------------------
@dataclass(frozen=True)
class FailsafeLeader:
    """A primary that called POST /failsafe on us, and when (monotonic seconds)."""

    name: str
    api_url: str | None
    conn_url: str | None
    received_at: float
    lsn: int | None = None
    slots: dict[str, int] | None = None  # the primary's slot positions (Patroni sends them)


def parse_call(body: Any, received_at: float) -> FailsafeLeader | str:
    """The caller described by a POST /failsafe body, or why the body is unusable."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        return "request body must be a JSON object with the caller's name"
    lsn = body.get("lsn")
    raw = body.get("slots")
    slots = {str(k): v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)} \
        if isinstance(raw, dict) else None
    return FailsafeLeader(name=body["name"], api_url=_opt_str(body.get("api_url")),
                          conn_url=_opt_str(body.get("conn_url")), received_at=received_at,
                          lsn=lsn if isinstance(lsn, int) and not isinstance(lsn, bool) else None, slots=slots)


def with_failsafe_slots(cluster: Cluster, leader: FailsafeLeader | None, now: float, ttl: float) -> Cluster | None:
    """The last cluster read, with the slot positions a primary sent through POST /failsafe
    less than ttl ago as its status key (Patroni's Failsafe.update_cluster): a replica keeps
    advancing its copies of the permanent slots while the DCS is down. None: no fresh call."""
    current = fresh(leader, now, ttl)
    if current is None or current.slots is None:
        return None
    status = {**(cluster.status or {}), "slots": dict(current.slots)}
    members = tuple(replace(m, data={**m.data, "xlog_location": current.slots[slot_name(m.name)]})
                    if m.tags.get("replicatefrom") and slot_name(m.name) in current.slots else m
                    for m in cluster.members)
    return replace(cluster, status=status, members=members)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def answer_call(failsafe_mode: bool, running_primary: bool) -> tuple[int, str]:
    """Patroni's answers: 502 when failsafe_mode is off here, 500 from a running primary
    (two primaries must not vouch for each other), else 200 Accepted."""
    if not failsafe_mode:
        return 502, "failsafe_mode is not enabled"
    if running_primary:
        return 500, "Running as a leader"
    return 200, ACCEPTED


def fresh(leader: FailsafeLeader | None, now: float, ttl: float) -> FailsafeLeader | None:
    if leader is None or now - leader.received_at >= ttl:
        return None
    return leader


def with_failsafe_leader(cluster: Cluster, leader: FailsafeLeader | None, me: str,
                         failsafe_mode: bool, now: float, ttl: float) -> Cluster:
    """A cluster without a leader key, seen by a member that a primary called through
    POST /failsafe less than ttl ago: that primary is still the leader (it kept running
    on our consent), so keep following it instead of racing for the key."""
    current = fresh(leader, now, ttl)
    if not failsafe_mode or cluster.leader is not None or current is None or current.name == me:
        return cluster
    members = cluster.members
    if cluster.get_member(current.name) is None and current.conn_url:
        data = {"conn_url": current.conn_url, "api_url": current.api_url, "state": "running",
                "role": "primary"}
        members = (*members, Member(current.name, 0, data))
    return replace(cluster, leader=Leader(current.name, 0, None), members=members)
