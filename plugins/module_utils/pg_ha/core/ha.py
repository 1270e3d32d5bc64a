# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HA state machine: (cluster snapshot, local view, policy) -> Decision.

Pure: no I/O, no clock (``now`` comes in the LocalView). Every branch returns the one
INFO sentence the daemon logs for this cycle. Steps whose outcome only the DCS knows
(taking the initialize or leader key, refreshing the lock) carry the decision to apply
when that step fails, so the executor never has to decide anything itself.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from . import quorum as quorum_mod
from .model import Cluster, Failover, valid_sysid


class Action(enum.StrEnum):
    NOOP = "noop"                        # nothing to do (replica following, waiting...)
    UPDATE_LOCK = "update_lock"          # leader: refresh the lease, stay primary
    BOOTSTRAP = "bootstrap"              # take `initialize`, then initdb
    TAKE_INITIALIZE = "take_initialize"  # existing data, no `initialize` key: publish our sysid
    CLONE = "clone"                      # empty data dir: create a replica from `target`
    REINITIALIZE = "reinitialize"        # asked for (POST /reinitialize): wipe, clone from `target` again
    REMOVE_DATA_DIR = "remove_data_dir"  # a data dir that can never start (no pg_control): wipe it
    START_PRIMARY = "start_primary"      # we hold the lock and PostgreSQL is down
    START_REPLICA = "start_replica"      # PostgreSQL down: start it as a standby of `target`
    REJOIN = "rejoin"                    # former primary: check divergence, rewind/re-clone, follow
    FOLLOW = "follow"                    # running standby: point it at `target`
    PROMOTE = "promote"                  # we hold the lock but are a standby
    ACQUIRE = "acquire"                  # take the leader key (then promote if a standby)
    DEMOTE = "demote"                    # a primary without the lock: stop at once, rejoin later
    DEMOTE_OFFLINE = "demote_offline"    # DCS outage, no consent: stop at once, start read-only alone
    SWITCHOVER = "switchover"            # graceful: stop, hand the lock over to `target`
    RELEASE_LOCK = "release_lock"        # give the lock up (primary failed to start)
    CLEAR_FAILOVER = "clear_failover"    # drop a failover key that can no longer be honoured
    FENCED = "fenced"                    # the watchdog fired: PostgreSQL was stopped by it
    LEASE_EXPIRED = "lease_expired"      # the lease deadline passed unrenewed (node/lease_guard.py): stop at once
    FATAL = "fatal"                      # refuse to run (system identifier mismatch)
    # standby cluster (dynamic config standby_cluster): the leader replicates from a remote primary
    BOOTSTRAP_STANDBY = "bootstrap_standby"  # take `initialize`, clone the remote primary
    STANDBY_LEADER = "standby_leader"    # we hold the lock: (re)start/re-point as a standby of the remote
    ACQUIRE_STANDBY = "acquire_standby"  # take the leader key without promoting


@dataclass(frozen=True)
class Decision:
    action: Action
    message: str
    target: str | None = None           # member to follow / clone from / hand over to
    on_failure: Decision | None = None  # when the DCS step of this action does not succeed
    refresh_lock: bool = False          # refresh our lease before acting (we are the leader)


@dataclass(frozen=True)
class PeerInfo:
    """What another member's REST API said this cycle (reachable=False if it did not)."""

    name: str
    reachable: bool
    running: bool = False
    in_recovery: bool = True
    wal_lsn: int = 0
    timeline: int | None = None
    nofailover: bool = False
    failover_priority: int = 1


@dataclass(frozen=True)
class LocalView:
    name: str
    now: datetime
    data_dir_empty: bool = False
    sysid: str | None = None
    running: bool = False
    in_recovery: bool = True
    timeline: int | None = None
    wal_lsn: int = 0
    upstream: str | None = None          # the member our primary_conninfo points at
    busy: str | None = None              # a long action is running in the background
    unverified_primary_data: bool = False  # we were primary; not yet checked against a leader
    primary_start_failed: bool = False
    nofailover: bool = False
    failover_priority: int = 1           # tag: among equal wal positions the higher wins
    replicatefrom: str | None = None     # tag: stream from this member instead of the leader
    stuck_following: bool = False        # not streaming from a leader on a newer timeline for a while
    watchdog_usable: bool = True         # False: watchdog mode is required and it cannot be armed
    clone_without_leader: bool = False   # a create_replica_method needs no leader (no_leader option)
    bootstrap_backoff: bool = False      # our bootstrap failed a moment ago: let another member try
    incomplete_data_dir: bool = False    # a data dir without global/pg_control (interrupted basebackup)
    after_failsafe_outage: bool = False  # within ttl after an outage survived on the members' consent
    peers: Mapping[str, PeerInfo] | None = None


@dataclass(frozen=True)
class Policy:
    maximum_lag_on_failover: int = 1048576
    check_timeline: bool = False
    can_bootstrap: bool = True
    synchronous_mode: bool = False
    standby_cluster: str | None = None   # the remote primary ("host:port") of a standby cluster
    failsafe_mode: bool = False
    synchronous_quorum: bool = False     # synchronous_mode: quorum (implies synchronous_mode)
    primary_start_timeout: int = 300     # a crashed primary's time to start; 0: fail over at once
    extra: Mapping[str, object] = field(default_factory=dict)


def _pending_failover(cluster: Cluster, now: datetime) -> Failover | None:
    """The failover key, if it asks for action now (scheduled ones wait for their time)."""
    failover = cluster.failover
    if failover is None:
        return None
    if failover.scheduled_at is not None and failover.scheduled_at > now:
        return None
    return failover


def _sync_allows(cluster: Cluster, name: str, policy: Policy) -> bool:
    """In synchronous mode only the synchronous standbys (and the last leader) have every
    acknowledged commit: nobody else may take over. Before the leader first wrote the
    sync key, no commit waited for a standby, so the usual rules apply."""
    if not policy.synchronous_mode or cluster.sync is None:
        return True
    return name in cluster.sync.sync_standby or name == cluster.sync.leader


def _healthy_peer(local: LocalView, name: str) -> bool:
    peer = (local.peers or {}).get(name)
    return bool(peer and peer.reachable and peer.running and not peer.nofailover)


def _lost_race_reason(cluster: Cluster, local: LocalView, policy: Policy) -> str | None:
    """None if we may race for the leader key; otherwise why not (Patroni's
    is_healthiest_node)."""
    if local.nofailover:
        tag = "failover_priority 0" if local.failover_priority <= 0 else "nofailover tag"
        return f"I am not allowed to promote ({tag})"
    if not local.watchdog_usable:
        return "the watchdog is not usable and watchdog mode is required"
    if policy.synchronous_quorum:
        reached = [p.name for p in (local.peers or {}).values()
                   if p.reachable and p.running and p.in_recovery and p.name != local.name]
        refusal = quorum_mod.race_refusal(cluster.sync, local.name, reached)
        if refusal is not None:
            return refusal
    elif not _sync_allows(cluster, local.name, policy):
        return "I am not a synchronous standby (synchronous_mode)"
    if not local.running:
        return "postgres is not running"
    if policy.failsafe_mode and cluster.failsafe and local.name not in cluster.failsafe:
        return "I am not in the failsafe topology (failsafe_mode)"
    if cluster.last_lsn and local.in_recovery \
            and cluster.last_lsn - local.wal_lsn > policy.maximum_lag_on_failover:
        return (f"my wal position {local.wal_lsn} lags the last known leader position "
                f"{cluster.last_lsn} by more than maximum_lag_on_failover "
                f"({policy.maximum_lag_on_failover})")
    if policy.check_timeline and policy.standby_cluster is None and local.in_recovery and cluster.timeline:
        if local.timeline is None:
            return "I can not figure out my timeline (check_timeline)"
        if local.timeline < cluster.timeline:
            return f"my timeline {local.timeline} is behind last known cluster timeline {cluster.timeline}"
    for peer in (local.peers or {}).values():
        if peer.name == local.name or not peer.reachable or not peer.running:
            continue
        if not peer.in_recovery:
            return f"Primary ({peer.name}) is still alive"
        if peer.nofailover or not policy.synchronous_quorum and not _sync_allows(cluster, peer.name, policy):
            continue
        if peer.wal_lsn > local.wal_lsn:  # Patroni's words
            return f"Wal position of {peer.name} is ahead of my wal position ({peer.wal_lsn} > {local.wal_lsn})"
        if peer.wal_lsn == local.wal_lsn and peer.failover_priority > local.failover_priority:
            return (f"{peer.name} has equally tolerable WAL position and priority {peer.failover_priority}, "
                    f"while this node has priority {local.failover_priority}")
        if policy.check_timeline and (peer.timeline or 0) > (local.timeline or 0):
            return f"{peer.name} is on a newer timeline ({peer.timeline} > {local.timeline})"
    return None


def _acquire(local: LocalView, message_prefix: str = "", standby: str | None = None) -> Decision:
    if standby is not None:
        return Decision(Action.ACQUIRE_STANDBY, f"{message_prefix}acquired session lock as a standby leader",
                        on_failure=Decision(Action.NOOP, "failed to acquire the leader lock: another member won"))
    if local.in_recovery:
        message = f"{message_prefix}promoted self to leader by acquiring session lock"
    else:
        message = f"{message_prefix}acquired session lock as a leader"
    return Decision(Action.ACQUIRE, message,
                    on_failure=Decision(Action.NOOP, "failed to acquire the leader lock: another member won"))


def _running_replica(cluster: Cluster, name: str | None, me: str) -> bool:
    member = cluster.get_member(name) if name else None
    return bool(member and name != me and member.conn_url and member.state == "running"
                and (cluster.leader is None or name != cluster.leader.name))


def _upstream(cluster: Cluster, local: LocalView) -> str | None:
    """Whom a replica streams from: its `replicatefrom` member while that one runs as a
    replica (cascading), otherwise the leader."""
    if _running_replica(cluster, local.replicatefrom, local.name):
        return local.replicatefrom
    return cluster.leader.name if cluster.leader else None


def _no_data(cluster: Cluster, local: LocalView, policy: Policy) -> Decision:
    leader = cluster.leader.name if cluster.leader else None
    if cluster.initialize is None and leader is None and policy.can_bootstrap and not local.nofailover:
        if not local.watchdog_usable:
            return Decision(Action.NOOP, "waiting for leader to bootstrap (the watchdog is not usable "
                            "and watchdog mode is required)")
        if local.bootstrap_backoff:
            return Decision(Action.NOOP, "my bootstrap attempt failed: waiting for another member to bootstrap")
        if policy.standby_cluster is not None:
            return Decision(Action.BOOTSTRAP_STANDBY,
                            f"trying to bootstrap a standby leader from the remote primary {policy.standby_cluster}",
                            on_failure=Decision(Action.NOOP, "failed to acquire initialize lock"))
        return Decision(Action.BOOTSTRAP, "trying to bootstrap a new cluster",
                        on_failure=Decision(Action.NOOP, "failed to acquire initialize lock"))
    leader_member = cluster.leader_member
    if leader and leader != local.name and leader_member is not None and leader_member.conn_url:
        clonefrom = sorted(m.name for m in cluster.members
                           if m.tags.get("clonefrom") and _running_replica(cluster, m.name, local.name))
        if clonefrom:  # spare the leader the basebackup
            return Decision(Action.CLONE, f"trying to bootstrap from replica '{clonefrom[0]}'", target=clonefrom[0])
        return Decision(Action.CLONE, f"trying to bootstrap from leader '{leader}'", target=leader)
    # no leader: a replica method that needs none (no_leader: a restore from backup) may run,
    # unless a member is bootstrapping the cluster right now (initialize key empty), as Patroni
    if leader is None and local.clone_without_leader and cluster.initialize != "":
        return Decision(Action.CLONE, "trying to bootstrap (without leader)")
    if cluster.initialize is None and leader is None:
        return Decision(Action.NOOP, "waiting for leader to bootstrap (I may not bootstrap)")
    return Decision(Action.NOOP, "waiting for leader to bootstrap")


def _not_running(cluster: Cluster, local: LocalView, paused: bool, policy: Policy) -> Decision:
    leader = cluster.leader.name if cluster.leader else None
    standby = policy.standby_cluster
    if paused:
        return Decision(Action.NOOP, "PAUSE: postgres is not running",
                        refresh_lock=leader == local.name)
    if leader == local.name:
        if local.primary_start_failed:
            return Decision(Action.RELEASE_LOCK, "removed leader key after trying and failing to start postgres")
        if standby is None and policy.primary_start_timeout == 0 and any(
                _healthy_peer(local, n) and _sync_allows(cluster, n, policy) for n in local.peers or {}
                if n != local.name):
            # Patroni: primary_start_timeout 0 prefers a failover to a restart, when one is possible
            return Decision(Action.RELEASE_LOCK, "Primary crashed. Failing over.")
        if standby is not None:
            return Decision(Action.STANDBY_LEADER,
                            f"starting the standby leader, replicating from the remote primary {standby}",
                            refresh_lock=True)
        return Decision(Action.START_PRIMARY, "starting primary after failure", refresh_lock=True)
    if local.unverified_primary_data and leader is not None:
        return Decision(Action.REJOIN,
                        f"former primary: checking for divergence from the new leader '{leader}'",
                        target=leader)
    if local.unverified_primary_data and cluster.failover is not None:
        return Decision(Action.NOOP, "waiting for the switchover candidate to take the leader lock")
    if leader is None:
        return Decision(Action.START_REPLICA, "starting as a secondary (no leader yet)")
    return Decision(Action.START_REPLICA, "starting as a secondary", target=_upstream(cluster, local))


def _leader_with_lock(cluster: Cluster, local: LocalView, policy: Policy, paused: bool) -> Decision:
    me = local.name
    standby: Decision | None = None
    if policy.standby_cluster is not None:  # never promote; switchovers work as usual
        standby = _standby_leader(local, policy.standby_cluster, paused)
        if standby.action != Action.UPDATE_LOCK:
            return standby
    elif local.in_recovery:
        return Decision(Action.PROMOTE, "promoted self to leader because I had the session lock",
                        refresh_lock=True)
    failover = _pending_failover(cluster, local.now)
    if cluster.failover is not None and failover is None and cluster.failover.leader == me:
        return Decision(Action.UPDATE_LOCK,
                        f"no action. I am ({me}), the leader with the lock; "
                        f"switchover scheduled at {cluster.failover.scheduled_at.isoformat()}"
                        if cluster.failover.scheduled_at else
                        f"no action. I am ({me}), the leader with the lock",
                        on_failure=_lost_lock(me))
    if failover is not None and failover.leader not in (None, me):
        return Decision(Action.CLEAR_FAILOVER,
                        f"manual failover: leader name does not match: {failover.leader} != {me}",
                        refresh_lock=True)
    if failover is not None and failover.candidate == me:
        return Decision(Action.CLEAR_FAILOVER, "manual failover: I am already the leader, no need to switch",
                        refresh_lock=True)
    if failover is not None:
        if paused and failover.candidate is None:
            return Decision(Action.CLEAR_FAILOVER,
                            "PAUSE: switchover without a candidate is not possible in maintenance mode",
                            refresh_lock=True)
        if failover.candidate is not None:
            if not _sync_allows(cluster, failover.candidate, policy):
                return Decision(Action.CLEAR_FAILOVER,
                                f"manual failover: candidate {failover.candidate} is not a synchronous standby",
                                refresh_lock=True)
            if _healthy_peer(local, failover.candidate):
                return Decision(Action.SWITCHOVER, "manual failover: demoting myself",
                                target=failover.candidate, refresh_lock=True)
            return Decision(Action.CLEAR_FAILOVER,
                            f"manual failover: candidate {failover.candidate} is not healthy, "
                            "switchover is not possible", refresh_lock=True)
        healthy = sorted(n for n in (local.peers or {})
                         if n != me and _healthy_peer(local, n) and _sync_allows(cluster, n, policy))
        if healthy:
            return Decision(Action.SWITCHOVER, "manual failover: demoting myself", refresh_lock=True)
        return Decision(Action.CLEAR_FAILOVER,
                        "manual failover: no healthy members found, failover is not possible",
                        refresh_lock=True)
    if standby is not None:
        return standby
    prefix = "PAUSE: " if paused else ""
    return Decision(Action.UPDATE_LOCK, f"{prefix}no action. I am ({me}), the leader with the lock",
                    on_failure=_lost_lock(me))


def _standby_leader(local: LocalView, remote: str, paused: bool) -> Decision:
    """We hold the lock of a standby cluster: stay in recovery, stream from the remote primary."""
    prefix = "PAUSE: " if paused else ""
    if not local.in_recovery:
        if paused:
            return Decision(Action.UPDATE_LOCK, f"PAUSE: running read-write in a standby cluster, "
                            f"not restarting it as a standby of {remote}", on_failure=_lost_lock(local.name))
        return Decision(Action.STANDBY_LEADER, f"demoting to a standby of the remote primary {remote}: "
                        "this is a standby cluster", refresh_lock=True)
    if local.upstream != remote:
        return Decision(Action.STANDBY_LEADER, f"{prefix}following the remote primary {remote} as the standby leader",
                        refresh_lock=True)
    return Decision(Action.UPDATE_LOCK, f"{prefix}no action. I am ({local.name}), the standby leader with the lock",
                    on_failure=Decision(Action.NOOP, "failed to update leader lock: no longer the standby leader"))


def _lost_lock(me: str) -> Decision:
    return Decision(Action.DEMOTE, f"failed to update leader lock: demoting self ({me})")


def _someone_else_leads(cluster: Cluster, local: LocalView, paused: bool) -> Decision:
    assert cluster.leader is not None
    leader, me = cluster.leader.name, local.name
    if not local.in_recovery:
        if paused:
            return Decision(Action.NOOP, "PAUSE: continue to run as primary without lock")
        return Decision(Action.DEMOTE, "demoting self because I do not have the lock and I was a leader",
                        target=leader)
    if local.unverified_primary_data and not paused:
        return Decision(Action.REJOIN,
                        f"former primary: checking for divergence from the new leader '{leader}'",
                        target=leader)
    if local.stuck_following and not paused:  # we replayed past the new leader's fork point?
        return Decision(Action.REJOIN,
                        f"not streaming from the new leader '{leader}': checking for divergence", target=leader)
    prefix = "PAUSE: " if paused else ""
    upstream = _upstream(cluster, local)
    via = f", replicating from {upstream}" if upstream != leader else ""
    if local.upstream != upstream:
        return Decision(Action.FOLLOW, f"{prefix}following new leader ({leader}){via}", target=upstream)
    return Decision(Action.NOOP,
                    f"{prefix}no action. I am ({me}), a secondary, and following a leader ({leader}){via}")


def _no_leader(cluster: Cluster, local: LocalView, policy: Policy, paused: bool) -> Decision:
    me = local.name
    failover = cluster.failover
    if paused:
        if not local.in_recovery:
            return _acquire(local, "PAUSE: ", policy.standby_cluster)
        if failover is not None and failover.candidate == me:
            return _acquire(local, "PAUSE: manual failover: ", policy.standby_cluster)
        return Decision(Action.NOOP, "PAUSE: no leader, automatic failover is disabled")
    if failover is not None and failover.candidate is not None \
            and (failover.scheduled_at is None or failover.scheduled_at <= local.now):
        if failover.candidate == me:
            if not local.running:
                return Decision(Action.NOOP, "manual failover: I am the candidate but postgres is not running")
            if not _sync_allows(cluster, me, policy):
                return Decision(Action.NOOP, "manual failover: I am the candidate but not a synchronous standby")
            if not local.watchdog_usable:
                return Decision(Action.NOOP, "manual failover: I am the candidate but the watchdog is not usable "
                                "and watchdog mode is required")
            return _acquire(local, "manual failover: ", policy.standby_cluster)
        if _healthy_peer(local, failover.candidate):
            return Decision(Action.NOOP,
                            f"manual failover: waiting for the candidate {failover.candidate} to take the lock")
    if failover is not None and failover.leader == me and failover.candidate is None:
        return Decision(Action.NOOP, "manual failover: I am the former leader, not racing for the lock")
    reason = _lost_race_reason(cluster, local, policy)
    if reason is not None and local.nofailover:  # Patroni's words, also with no leader to follow yet
        return Decision(Action.NOOP, f"following a different leader because {reason}")
    if reason is not None:
        return Decision(Action.NOOP, f"not the healthiest node for the leader race: {reason}")
    return _acquire(local, standby=policy.standby_cluster)


REACQUIRE = "failsafe: the leader key expired while the DCS was not accessible, taking it again"


def after_outage(decision: Decision) -> Decision:
    """The first cycles after an outage that the primary ran through on the members'
    consent: its lease expired in etcd meanwhile, so the key it just read may vanish before
    it refreshes it. Then it creates the key anew (only if absent: the members deferred to
    it, nobody else took it) instead of demoting; if someone else has it, it demotes."""
    failure = decision.on_failure
    if decision.action != Action.UPDATE_LOCK or failure is None or failure.action != Action.DEMOTE:
        return decision
    return replace(decision, on_failure=Decision(Action.ACQUIRE, REACQUIRE, on_failure=failure))


def decide(cluster: Cluster, local: LocalView, policy: Policy) -> Decision:
    """The decision of one cycle (its sentence is the cycle's INFO line)."""
    decision = _decide(cluster, local, policy)
    return after_outage(decision) if local.after_failsafe_outage else decision


def _decide(cluster: Cluster, local: LocalView, policy: Policy) -> Decision:
    me = local.name
    leader = cluster.leader.name if cluster.leader else None
    paused = cluster.paused
    if local.busy:
        if leader == me:
            return Decision(Action.UPDATE_LOCK, f"updated leader lock during {local.busy}",
                            on_failure=Decision(Action.NOOP,
                                                f"failed to update leader lock during {local.busy}"))
        return Decision(Action.NOOP, f"{local.busy} in progress")
    if local.incomplete_data_dir:
        return Decision(Action.REMOVE_DATA_DIR, "the data directory has no pg_control (an interrupted "
                        "basebackup?): removing it to clone again")
    if local.data_dir_empty:
        return _no_data(cluster, local, policy)
    if cluster.initialize and local.sysid and cluster.initialize != local.sysid:
        if valid_sysid(cluster.initialize):
            return Decision(Action.FATAL,
                            f"system ID mismatch, node {me} belongs to a different cluster: "
                            f"{cluster.initialize} != {local.sysid}")
        if leader == me:  # hand-edited garbage, not another cluster's identifier: repair it
            return Decision(Action.TAKE_INITIALIZE,
                            f"the initialize key holds no system identifier ({cluster.initialize[:40]!r}): "
                            f"rewriting it with {local.sysid} of the leader's data directory",
                            on_failure=Decision(Action.NOOP, "failed to rewrite the initialize key"))
    if cluster.initialize is None and local.sysid and leader in (None, me):
        return Decision(Action.TAKE_INITIALIZE,
                        f"cluster is not initialized: publishing the system identifier {local.sysid} "
                        "of the existing data directory",
                        on_failure=Decision(Action.NOOP, "failed to acquire initialize lock"))
    if not local.running:
        return _not_running(cluster, local, paused, policy)
    if leader == me:
        return _leader_with_lock(cluster, local, policy, paused)
    if leader is not None:
        return _someone_else_leads(cluster, local, paused)
    return _no_leader(cluster, local, policy, paused)
