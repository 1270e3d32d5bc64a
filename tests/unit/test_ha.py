"""Decision table of ha.decide: every branch, with the sentence it logs."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pg_ha.core import failsafe
from pg_ha.core.failsafe import OutageView, decide_without_dcs
from pg_ha.core.ha import REACQUIRE, Action, LocalView, PeerInfo, Policy, after_outage, decide
from pg_ha.core.model import Cluster, ClusterConfig, Failover, Leader, Member, SyncState, TimelineHistory

TAGGED: dict[str, dict[str, object]] = {}
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SYSID = "7300000000000000001"


def member(name: str, **data: object) -> Member:
    if name in TAGGED:
        data = {**data, "tags": TAGGED[name]}
    base = {"conn_url": f"postgres://127.0.0.1:5432/{name}", "api_url": f"http://127.0.0.1:8008/{name}",
            "state": "running", "role": "replica"}
    base.update(data)
    return Member(name, 1, base)


def cluster(leader: str | None = "pg0", initialize: str | None = SYSID, failover: Failover | None = None,
            paused: bool = False, last_lsn: int = 0, members: tuple[str, ...] = ("pg0", "pg1", "pg2"),
            sync: SyncState | None = None, history: TimelineHistory | None = None) -> Cluster:
    config = ClusterConfig(1, {"pause": True}) if paused else ClusterConfig(1, {})
    return Cluster(initialize=initialize, config=config,
                   leader=Leader(leader, 5) if leader else None, last_lsn=last_lsn,
                   members=tuple(member(m) for m in members), failover=failover, sync=sync, history=history)


def local(name: str = "pg1", **kw: object) -> LocalView:
    values: dict[str, object] = {"sysid": SYSID, "running": True, "in_recovery": True, "wal_lsn": 100,
                                 "timeline": 1, "upstream": "pg0"}
    values.update(kw)
    return LocalView(name=name, now=NOW, **values)  # type: ignore[arg-type]


def peers(*items: PeerInfo) -> dict[str, PeerInfo]:
    return {p.name: p for p in items}


P_PG1_AHEAD = PeerInfo("pg1", True, running=True, wal_lsn=200, timeline=1)
P_PG2_EQUAL = PeerInfo("pg2", True, running=True, wal_lsn=100, timeline=1)
P_PG2_BEHIND = PeerInfo("pg2", True, running=True, wal_lsn=50, timeline=1)
P_PG2_DOWN = PeerInfo("pg2", False)
P_PG0_PRIMARY = PeerInfo("pg0", True, running=True, in_recovery=False, wal_lsn=300)
P_PG2_NOFAILOVER_AHEAD = PeerInfo("pg2", True, running=True, wal_lsn=900, nofailover=True)
P_PG2_NEWER_TL = PeerInfo("pg2", True, running=True, wal_lsn=100, timeline=2)
LATER = NOW + timedelta(hours=1)
HISTORY_TL2 = TimelineHistory(4, ((1, 50331808, "no recovery target specified", "2026-11-23T10:00:00+00:00", "pg0"),))
SYNC_PG2 = SyncState(3, "pg0", ("pg2",))
SYNC_PG1 = SyncState(3, "pg0", ("pg1",))
SYNC_NONE = SyncState(3, "pg0", ())
SYNC = Policy(synchronous_mode=True)
QUORUM = Policy(synchronous_mode=True, synchronous_quorum=True)
Q_PG1_PG2 = SyncState(3, "pg0", ("pg1", "pg2"), 1)   # ANY 1 of pg1, pg2: reach 2 voters
Q_ALL3 = SyncState(3, "pg0", ("pg1", "pg2", "pg3"), 1)  # ANY 2 of 3: reach 2 voters
P_PG2_PRIO3 = PeerInfo("pg2", True, running=True, wal_lsn=100, timeline=1, failover_priority=3)
P_PG2_PRIO3_BEHIND = PeerInfo("pg2", True, running=True, wal_lsn=99, timeline=1, failover_priority=3)
EARLIER = NOW - timedelta(minutes=1)
REMOTE = "10.0.0.9:5432"
STANDBY = Policy(standby_cluster=REMOTE)
FAILSAFE = Policy(failsafe_mode=True)
TOPOLOGY_WITHOUT_PG1 = {"pg0": "http://127.0.0.1:8008/pg0", "pg2": "http://127.0.0.1:8008/pg2"}
TOPOLOGY = {**TOPOLOGY_WITHOUT_PG1, "pg1": "http://127.0.0.1:8008/pg1"}

CASES = [
    # id, cluster, local, policy, expected action, expected message (substring), target
    ("busy-leader-refreshes", cluster(leader="pg1"), local(busy="restart"), Policy(),
     Action.UPDATE_LOCK, "updated leader lock during restart", None),
    ("busy-replica-waits", cluster(), local(busy="creating replica"), Policy(),
     Action.NOOP, "creating replica in progress", None),
    ("incomplete-data-dir-is-removed", cluster(), local(incomplete_data_dir=True, running=False, sysid=None), Policy(),
     Action.REMOVE_DATA_DIR, "has no pg_control (an interrupted basebackup?): removing it to clone again", None),
    ("empty-uninitialized-bootstraps", cluster(leader=None, initialize=None), local(data_dir_empty=True),
     Policy(), Action.BOOTSTRAP, "trying to bootstrap a new cluster", None),
    ("empty-uninitialized-nofailover-waits", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, nofailover=True), Policy(), Action.NOOP, "waiting for leader to bootstrap", None),
    ("empty-uninitialized-after-failed-bootstrap-waits", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, bootstrap_backoff=True), Policy(), Action.NOOP,
     "my bootstrap attempt failed: waiting for another member to bootstrap", None),
    ("standby-empty-after-failed-bootstrap-waits", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, bootstrap_backoff=True), STANDBY, Action.NOOP, "waiting for another member", None),
    ("empty-with-leader-clones", cluster(), local(data_dir_empty=True), Policy(),
     Action.CLONE, "trying to bootstrap from leader 'pg0'", "pg0"),
    ("empty-initializing-waits", cluster(leader=None, initialize=""), local(data_dir_empty=True), Policy(),
     Action.NOOP, "waiting for leader to bootstrap", None),
    # a replica method with no_leader (a restore from backup) needs no leader, as Patroni
    ("empty-no-leader-restores-from-backup", cluster(leader=None),
     local(data_dir_empty=True, clone_without_leader=True), Policy(), Action.CLONE,
     "trying to bootstrap (without leader)", None),
    ("empty-no-leader-while-initializing-waits", cluster(leader=None, initialize=""),
     local(data_dir_empty=True, clone_without_leader=True), Policy(), Action.NOOP, "waiting for leader to bootstrap",
     None),
    ("empty-uninitialized-nofailover-restores-from-backup", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, nofailover=True, clone_without_leader=True), Policy(), Action.CLONE,
     "trying to bootstrap (without leader)", None),
    ("empty-uninitialized-bootstraps-before-a-no-leader-restore", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, clone_without_leader=True), Policy(), Action.BOOTSTRAP,
     "trying to bootstrap a new cluster", None),
    ("empty-with-leader-clones-from-it-even-with-a-no-leader-method", cluster(),
     local(data_dir_empty=True, clone_without_leader=True), Policy(), Action.CLONE,
     "trying to bootstrap from leader 'pg0'", "pg0"),
    ("sysid-mismatch-fatal", cluster(), local(sysid="123"), Policy(),
     Action.FATAL, f"system ID mismatch, node pg1 belongs to a different cluster: {SYSID} != 123", None),
    ("garbage-initialize-replica-not-fatal", cluster(initialize="x!{"), local(), Policy(),
     Action.NOOP, "no action. I am (pg1), a secondary, and following a leader (pg0)", None),
    ("garbage-initialize-leader-rewrites", cluster(leader="pg1", initialize="garbage{"),
     local(in_recovery=False, upstream=None), Policy(), Action.TAKE_INITIALIZE,
     f"the initialize key holds no system identifier ('garbage{{'): rewriting it with {SYSID}", None),
    ("garbage-leader-key-demotes-primary", cluster(leader='{"bad'), local(name="pg0", in_recovery=False,
     upstream=None), Policy(), Action.DEMOTE, "demoting self because I do not have the lock", '{"bad'),
    ("data-without-initialize-publishes", cluster(leader=None, initialize=None), local(), Policy(),
     Action.TAKE_INITIALIZE, "publishing the system identifier", None),
    ("leader-down-restarts-primary", cluster(leader="pg1"), local(running=False), Policy(),
     Action.START_PRIMARY, "starting primary after failure", None),
    ("leader-start-failed-releases", cluster(leader="pg1"), local(running=False, primary_start_failed=True),
     Policy(), Action.RELEASE_LOCK, "removed leader key after trying and failing to start postgres", None),
    ("crashed-leader-fails-over-with-primary-start-timeout-0", cluster(leader="pg1"),
     local(running=False, peers=peers(PeerInfo("pg2", True, running=True, wal_lsn=100))),
     Policy(primary_start_timeout=0), Action.RELEASE_LOCK, "Primary crashed. Failing over.", None),
    ("crashed-leader-restarts-without-a-candidate", cluster(leader="pg1"),
     local(running=False, peers=peers(PeerInfo("pg2", True, running=True, wal_lsn=100, nofailover=True))),
     Policy(primary_start_timeout=0), Action.START_PRIMARY, "starting primary after failure", None),
    ("former-primary-stopped-rejoins", cluster(), local(running=False, unverified_primary_data=True), Policy(),
     Action.REJOIN, "checking for divergence from the new leader 'pg0'", "pg0"),
    ("former-primary-waits-for-candidate", cluster(leader=None, failover=Failover(1, "pg1", "pg2")),
     local(running=False, unverified_primary_data=True), Policy(),
     Action.NOOP, "waiting for the switchover candidate", None),
    ("stopped-replica-starts", cluster(), local(running=False), Policy(),
     Action.START_REPLICA, "starting as a secondary", "pg0"),
    ("stopped-no-leader-starts-readonly", cluster(leader=None), local(running=False), Policy(),
     Action.START_REPLICA, "starting as a secondary (no leader yet)", None),
    ("paused-stopped-does-nothing", cluster(paused=True), local(running=False), Policy(),
     Action.NOOP, "PAUSE: postgres is not running", None),
    ("leader-with-lock", cluster(leader="pg1"), local(in_recovery=False), Policy(),
     Action.UPDATE_LOCK, "no action. I am (pg1), the leader with the lock", None),
    ("paused-leader-with-lock", cluster(leader="pg1", paused=True), local(in_recovery=False), Policy(),
     Action.UPDATE_LOCK, "PAUSE: no action. I am (pg1), the leader with the lock", None),
    ("standby-with-lock-promotes", cluster(leader="pg1"), local(), Policy(),
     Action.PROMOTE, "promoted self to leader because I had the session lock", None),
    ("switchover-to-healthy-candidate", cluster(leader="pg1", failover=Failover(1, "pg1", "pg2")),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), Policy(),
     Action.SWITCHOVER, "manual failover: demoting myself", "pg2"),
    ("switchover-to-unhealthy-candidate", cluster(leader="pg1", failover=Failover(1, "pg1", "pg2")),
     local(in_recovery=False, peers=peers(P_PG2_DOWN)), Policy(),
     Action.CLEAR_FAILOVER, "candidate pg2 is not healthy", None),
    ("switchover-any-healthy", cluster(leader="pg1", failover=Failover(1, "pg1", None)),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), Policy(),
     Action.SWITCHOVER, "manual failover: demoting myself", None),
    ("switchover-none-healthy", cluster(leader="pg1", failover=Failover(1, "pg1", None)),
     local(in_recovery=False, peers=peers(P_PG2_DOWN)), Policy(),
     Action.CLEAR_FAILOVER, "no healthy members found", None),
    ("switchover-wrong-leader", cluster(leader="pg1", failover=Failover(1, "pg0", "pg2")),
     local(in_recovery=False), Policy(), Action.CLEAR_FAILOVER, "leader name does not match", None),
    ("switchover-to-self", cluster(leader="pg1", failover=Failover(1, None, "pg1")),
     local(in_recovery=False), Policy(), Action.CLEAR_FAILOVER, "I am already the leader", None),
    ("switchover-scheduled-later", cluster(leader="pg1", failover=Failover(1, "pg1", "pg2", LATER)),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), Policy(),
     Action.UPDATE_LOCK, "switchover scheduled at", None),
    ("switchover-scheduled-due", cluster(leader="pg1", failover=Failover(1, "pg1", "pg2", EARLIER)),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), Policy(),
     Action.SWITCHOVER, "manual failover: demoting myself", "pg2"),
    ("switchover-paused-no-candidate", cluster(leader="pg1", paused=True, failover=Failover(1, "pg1", None)),
     local(in_recovery=False), Policy(), Action.CLEAR_FAILOVER, "PAUSE: switchover without a candidate", None),
    ("primary-without-lock-demotes", cluster(), local(in_recovery=False), Policy(),
     Action.DEMOTE, "demoting self because I do not have the lock and I was a leader", "pg0"),
    ("paused-primary-without-lock-stays", cluster(paused=True), local(in_recovery=False), Policy(),
     Action.NOOP, "PAUSE: continue to run as primary without lock", None),
    ("running-former-primary-rejoins", cluster(), local(unverified_primary_data=True), Policy(),
     Action.REJOIN, "checking for divergence", "pg0"),
    ("stuck-replica-checks-divergence", cluster(), local(stuck_following=True), Policy(),
     Action.REJOIN, "not streaming from the new leader 'pg0': checking for divergence", "pg0"),
    ("paused-stuck-replica-left-alone", cluster(paused=True), local(stuck_following=True), Policy(),
     Action.NOOP, "PAUSE: no action", None),
    ("replica-follows-new-leader", cluster(), local(upstream="pg2"), Policy(),
     Action.FOLLOW, "following new leader (pg0)", "pg0"),
    ("replica-following", cluster(), local(), Policy(),
     Action.NOOP, "no action. I am (pg1), a secondary, and following a leader (pg0)", None),
    ("paused-replica-following", cluster(paused=True), local(), Policy(),
     Action.NOOP, "PAUSE: no action. I am (pg1), a secondary", None),
    ("no-leader-healthiest-promotes", cluster(leader=None), local(peers=peers(P_PG2_BEHIND)), Policy(),
     Action.ACQUIRE, "promoted self to leader by acquiring session lock", None),
    ("no-leader-tie-races", cluster(leader=None), local(peers=peers(P_PG2_EQUAL)), Policy(),
     Action.ACQUIRE, "promoted self to leader by acquiring session lock", None),
    ("no-leader-unreachable-peer-ignored", cluster(leader=None), local(peers=peers(P_PG2_DOWN)), Policy(),
     Action.ACQUIRE, "promoted self to leader by acquiring session lock", None),
    ("no-leader-primary-acquires", cluster(leader=None), local(in_recovery=False), Policy(),
     Action.ACQUIRE, "acquired session lock as a leader", None),
    ("no-leader-peer-ahead-waits", cluster(leader=None), local(name="pg2", peers=peers(P_PG1_AHEAD)),
     Policy(), Action.NOOP, "Wal position of pg1 is ahead of my wal position (200 > 100)", None),
    ("no-leader-old-primary-alive", cluster(leader=None), local(peers=peers(P_PG0_PRIMARY)), Policy(),
     Action.NOOP, "Primary (pg0) is still alive", None),
    ("no-leader-nofailover-peer-ignored", cluster(leader=None), local(peers=peers(P_PG2_NOFAILOVER_AHEAD)),
     Policy(), Action.ACQUIRE, "promoted self", None),
    ("no-leader-check-timeline", cluster(leader=None), local(peers=peers(P_PG2_NEWER_TL)),
     Policy(check_timeline=True), Action.NOOP, "pg2 is on a newer timeline", None),
    # check_timeline against the history key: timeline 2 was the last leader's (Patroni's cluster.timeline)
    ("no-leader-behind-cluster-timeline", cluster(leader=None, history=HISTORY_TL2), local(timeline=1),
     Policy(check_timeline=True), Action.NOOP, "my timeline 1 is behind last known cluster timeline 2", None),
    ("no-leader-on-cluster-timeline-races", cluster(leader=None, history=HISTORY_TL2), local(timeline=2),
     Policy(check_timeline=True), Action.ACQUIRE, "promoted self", None),
    ("no-leader-unknown-timeline", cluster(leader=None, history=HISTORY_TL2), local(timeline=None),
     Policy(check_timeline=True), Action.NOOP, "I can not figure out my timeline", None),
    ("no-leader-behind-cluster-timeline-ignored-by-default", cluster(leader=None, history=HISTORY_TL2),
     local(timeline=1), Policy(), Action.ACQUIRE, "promoted self", None),
    ("no-leader-timeline-ignored-by-default", cluster(leader=None), local(peers=peers(P_PG2_NEWER_TL)),
     Policy(), Action.ACQUIRE, "promoted self", None),
    ("no-leader-too-much-lag", cluster(leader=None, last_lsn=10_000_000), local(wal_lsn=100),
     Policy(maximum_lag_on_failover=1048576), Action.NOOP, "by more than maximum_lag_on_failover", None),
    ("no-leader-lag-within-limit", cluster(leader=None, last_lsn=1000), local(wal_lsn=100),
     Policy(maximum_lag_on_failover=1048576), Action.ACQUIRE, "promoted self", None),
    ("no-leader-nofailover", cluster(leader=None), local(nofailover=True), Policy(),
     Action.NOOP, "nofailover tag", None),
    ("no-leader-paused", cluster(leader=None, paused=True), local(), Policy(),
     Action.NOOP, "PAUSE: no leader, automatic failover is disabled", None),
    ("no-leader-paused-primary-takes-lock", cluster(leader=None, paused=True), local(in_recovery=False),
     Policy(), Action.ACQUIRE, "PAUSE: acquired session lock as a leader", None),
    ("no-leader-paused-candidate", cluster(leader=None, paused=True, failover=Failover(1, None, "pg1")),
     local(), Policy(), Action.ACQUIRE, "PAUSE: manual failover: promoted self", None),
    ("failover-candidate-me", cluster(leader=None, failover=Failover(1, "pg0", "pg1")),
     local(peers=peers(P_PG1_AHEAD)), Policy(), Action.ACQUIRE, "manual failover: promoted self", None),
    ("failover-candidate-me-not-running", cluster(leader=None, failover=Failover(1, "pg0", "pg1")),
     local(running=True, in_recovery=True, name="pg1", peers={}), Policy(), Action.ACQUIRE,
     "manual failover", None),
    ("failover-other-candidate-healthy", cluster(leader=None, failover=Failover(1, "pg0", "pg2")),
     local(peers=peers(P_PG2_BEHIND)), Policy(), Action.NOOP, "waiting for the candidate pg2", None),
    ("failover-other-candidate-down-races", cluster(leader=None, failover=Failover(1, "pg0", "pg2")),
     local(peers=peers(P_PG2_DOWN)), Policy(), Action.ACQUIRE, "promoted self", None),
    ("sync-not-a-sync-standby-does-not-race", cluster(leader=None, sync=SYNC_PG2), local(peers={}), SYNC,
     Action.NOOP, "I am not a synchronous standby", None),
    ("sync-standby-races", cluster(leader=None, sync=SYNC_PG1), local(peers=peers(P_PG2_NOFAILOVER_AHEAD)), SYNC,
     Action.ACQUIRE, "promoted self", None),
    ("sync-standby-ignores-async-peer-ahead", cluster(leader=None, sync=SYNC_PG1),
     local(peers=peers(PeerInfo("pg2", True, running=True, wal_lsn=900))), SYNC, Action.ACQUIRE, "promoted self", None),
    ("sync-empty-key-nobody-but-old-leader", cluster(leader=None, sync=SYNC_NONE), local(peers={}), SYNC,
     Action.NOOP, "not a synchronous standby", None),
    ("sync-key-not-written-yet-usual-rules", cluster(leader=None, sync=None), local(peers={}), SYNC,
     Action.ACQUIRE, "promoted self", None),
    ("sync-async-mode-ignores-key", cluster(leader=None, sync=SYNC_PG2), local(peers={}), Policy(),
     Action.ACQUIRE, "promoted self", None),
    ("sync-switchover-to-async-candidate-refused",
     cluster(leader="pg1", failover=Failover(1, "pg1", "pg2"), sync=SyncState(3, "pg1", ("pg0",))),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), SYNC, Action.CLEAR_FAILOVER,
     "candidate pg2 is not a synchronous standby", None),
    ("sync-switchover-any-picks-sync-only",
     cluster(leader="pg1", failover=Failover(1, "pg1", None), sync=SyncState(3, "pg1", ("pg0",))),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), SYNC, Action.CLEAR_FAILOVER, "no healthy members", None),
    ("sync-failover-candidate-not-sync", cluster(leader=None, failover=Failover(1, None, "pg1"), sync=SYNC_PG2),
     local(), SYNC, Action.NOOP, "I am the candidate but not a synchronous standby", None),
    ("failover-former-leader-does-not-race", cluster(leader=None, failover=Failover(1, "pg1", None)),
     local(), Policy(), Action.NOOP, "I am the former leader", None),
    # watchdog mode required and the device cannot be armed: never race, never take a manual failover
    ("watchdog-required-unusable-no-race", cluster(leader=None), local(peers={}, watchdog_usable=False), Policy(),
     Action.NOOP, "the watchdog is not usable and watchdog mode is required", None),
    ("watchdog-required-unusable-candidate-waits", cluster(leader=None, failover=Failover(1, None, "pg1")),
     local(peers={}, watchdog_usable=False), Policy(), Action.NOOP,
     "I am the candidate but the watchdog is not usable", None),
    ("watchdog-required-unusable-no-bootstrap", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, watchdog_usable=False), Policy(), Action.NOOP,
     "waiting for leader to bootstrap (the watchdog is not usable", None),
    ("watchdog-required-unusable-still-clones", cluster(), local(data_dir_empty=True, watchdog_usable=False),
     Policy(), Action.CLONE, "trying to bootstrap from leader 'pg0'", "pg0"),
    ("watchdog-usable-races", cluster(leader=None), local(peers={}, watchdog_usable=True), Policy(),
     Action.ACQUIRE, "promoted self to leader by acquiring session lock", None),
    ("watchdog-unusable-replica-still-follows", cluster(), local(watchdog_usable=False), Policy(),
     Action.NOOP, "a secondary, and following a leader (pg0)", None),
    ("watchdog-paused-primary-without-lock-acquires", cluster(leader=None, paused=True),
     local(in_recovery=False, watchdog_usable=False), Policy(), Action.ACQUIRE, "PAUSE: acquired session lock", None),
    # standby cluster: the leader is a standby leader of the remote primary, never promoted
    ("standby-empty-uninitialized-clones-remote", cluster(leader=None, initialize=None), local(data_dir_empty=True),
     STANDBY, Action.BOOTSTRAP_STANDBY, f"bootstrap a standby leader from the remote primary {REMOTE}", None),
    ("standby-empty-nofailover-waits", cluster(leader=None, initialize=None),
     local(data_dir_empty=True, nofailover=True), STANDBY, Action.NOOP, "waiting for leader to bootstrap", None),
    ("standby-empty-with-leader-clones-it", cluster(), local(data_dir_empty=True), STANDBY,
     Action.CLONE, "trying to bootstrap from leader 'pg0'", "pg0"),
    ("standby-leader-with-lock-does-not-promote", cluster(leader="pg1"), local(upstream=REMOTE), STANDBY,
     Action.UPDATE_LOCK, "no action. I am (pg1), the standby leader with the lock", None),
    ("standby-leader-repoints-to-remote", cluster(leader="pg1"), local(upstream="pg0"), STANDBY,
     Action.STANDBY_LEADER, f"following the remote primary {REMOTE} as the standby leader", None),
    ("standby-leader-read-write-is-demoted", cluster(leader="pg1"), local(in_recovery=False, upstream=None),
     STANDBY, Action.STANDBY_LEADER, f"demoting to a standby of the remote primary {REMOTE}", None),
    ("standby-leader-paused-read-write-left-alone", cluster(leader="pg1", paused=True),
     local(in_recovery=False, upstream=None), STANDBY, Action.UPDATE_LOCK, "PAUSE: running read-write", None),
    ("standby-leader-down-starts-as-standby", cluster(leader="pg1"), local(running=False), STANDBY,
     Action.STANDBY_LEADER, f"starting the standby leader, replicating from the remote primary {REMOTE}", None),
    ("standby-leader-start-failed-releases", cluster(leader="pg1"), local(running=False, primary_start_failed=True),
     STANDBY, Action.RELEASE_LOCK, "removed leader key after trying and failing to start postgres", None),
    ("standby-no-leader-healthiest-takes-lock", cluster(leader=None), local(peers=peers(P_PG2_BEHIND)), STANDBY,
     Action.ACQUIRE_STANDBY, "acquired session lock as a standby leader", None),
    ("standby-no-leader-peer-ahead-waits", cluster(leader=None), local(name="pg2", peers=peers(P_PG1_AHEAD)),
     STANDBY, Action.NOOP, "Wal position of pg1 is ahead of my wal position", None),
    ("standby-no-leader-nofailover", cluster(leader=None), local(nofailover=True), STANDBY,
     Action.NOOP, "nofailover tag", None),
    ("standby-replica-follows-standby-leader", cluster(), local(upstream="pg0"), STANDBY,
     Action.NOOP, "a secondary, and following a leader (pg0)", None),
    ("standby-leader-switchover-to-healthy-candidate",
     cluster(leader="pg1", failover=Failover(1, "pg1", "pg2")), local(upstream=REMOTE, peers=peers(P_PG2_EQUAL)),
     STANDBY, Action.SWITCHOVER, "manual failover: demoting myself", "pg2"),
    ("standby-switchover-candidate-takes-lock-without-promoting",
     cluster(leader=None, failover=Failover(1, "pg0", "pg1")), local(peers=peers(P_PG2_EQUAL)), STANDBY,
     Action.ACQUIRE_STANDBY, "manual failover: acquired session lock as a standby leader", None),
    ("standby-config-removed-promotes", cluster(leader="pg1"), local(upstream=REMOTE), Policy(),
     Action.PROMOTE, "promoted self to leader because I had the session lock", None),
    # failsafe_mode: only members of the failsafe topology race (their consent was asked)
    ("failsafe-outside-topology-does-not-race", replace(cluster(leader=None), failsafe=TOPOLOGY_WITHOUT_PG1),
     local(peers={}), FAILSAFE, Action.NOOP, "I am not in the failsafe topology (failsafe_mode)", None),
    ("failsafe-inside-topology-races", replace(cluster(leader=None), failsafe=TOPOLOGY),
     local(peers={}), FAILSAFE, Action.ACQUIRE, "promoted self to leader by acquiring session lock", None),
    ("failsafe-no-key-yet-usual-rules", cluster(leader=None), local(peers={}), FAILSAFE,
     Action.ACQUIRE, "promoted self", None),
    ("failsafe-off-ignores-topology", replace(cluster(leader=None), failsafe=TOPOLOGY_WITHOUT_PG1),
     local(peers={}), Policy(), Action.ACQUIRE, "promoted self", None),
    ("failsafe-old-primary-retakes-key-after-outage", replace(cluster(leader=None), failsafe=TOPOLOGY),
     local(name="pg0", in_recovery=False, wal_lsn=500,
           peers=peers(PeerInfo("pg1", True, running=True, wal_lsn=500), P_PG2_BEHIND)),
     FAILSAFE, Action.ACQUIRE, "acquired session lock as a leader", None),
    # a replica that accepted POST /failsafe sees the caller as leader (failsafe.with_failsafe_leader)
    ("failsafe-called-replica-keeps-following",
     failsafe.with_failsafe_leader(replace(cluster(leader=None), failsafe=TOPOLOGY),
                                   failsafe.FailsafeLeader("pg0", None, None, received_at=100.0), "pg1",
                                   True, now=105.0, ttl=10),
     local(peers={}), FAILSAFE, Action.NOOP, "a secondary, and following a leader (pg0)", None),
    # quorum commit: reach |V| - k + 1 voters (me included), then the highest wal position wins
    ("quorum-voter-reaching-other-voter-races", cluster(leader=None, sync=Q_PG1_PG2),
     local(peers=peers(P_PG2_BEHIND)), QUORUM, Action.ACQUIRE, "promoted self", None),
    ("quorum-voter-alone-does-not-race", cluster(leader=None, sync=Q_PG1_PG2),
     local(peers=peers(P_PG2_DOWN)), QUORUM, Action.NOOP,
     "quorum commit: reached 1 of the voters pg1, pg2, 2 needed", None),
    ("quorum-voter-behind-other-voter-defers", cluster(leader=None, sync=Q_PG1_PG2),
     local(wal_lsn=100, peers=peers(PeerInfo("pg2", True, running=True, wal_lsn=150))), QUORUM, Action.NOOP,
     "Wal position of pg2 is ahead of my wal position (150 > 100)", None),
    ("quorum-non-voter-ahead-still-compared", cluster(leader=None, sync=SyncState(3, "pg0", ("pg1",), 0),
                                                       members=("pg0", "pg1", "pg2")),
     local(peers=peers(PeerInfo("pg2", True, running=True, wal_lsn=900))), QUORUM, Action.NOOP,
     "Wal position of pg2 is ahead of my wal position", None),
    ("quorum-non-voter-needs-quorum-plus-one", cluster(leader=None, sync=Q_PG1_PG2),
     local(name="pg3", peers=peers(P_PG2_BEHIND)), QUORUM, Action.NOOP, "reached 1 of the voters", None),
    ("quorum-any2-of-3-two-reached", cluster(leader=None, sync=Q_ALL3, members=("pg0", "pg1", "pg2", "pg3")),
     local(peers=peers(P_PG2_BEHIND, PeerInfo("pg3", False))), QUORUM, Action.ACQUIRE, "promoted self", None),
    ("quorum-primary-peer-is-not-a-vote", cluster(leader=None, sync=Q_PG1_PG2),
     local(peers=peers(PeerInfo("pg2", True, running=True, in_recovery=False, wal_lsn=10))), QUORUM,
     Action.NOOP, "reached 1 of the voters", None),
    ("quorum-no-voter-usual-rules", cluster(leader=None, sync=SyncState(3, "pg0", (), 0)),
     local(peers={}), QUORUM, Action.ACQUIRE, "promoted self", None),
    ("quorum-switchover-to-non-voter-refused",
     cluster(leader="pg1", failover=Failover(1, "pg1", "pg2"), sync=SyncState(3, "pg1", ("pg0",), 0)),
     local(in_recovery=False, peers=peers(P_PG2_EQUAL)), QUORUM, Action.CLEAR_FAILOVER,
     "candidate pg2 is not a synchronous standby", None),
    # failover_priority: among equal wal positions the higher priority wins
    ("priority-lower-at-same-lsn-defers", cluster(leader=None), local(peers=peers(P_PG2_PRIO3)), Policy(),
     Action.NOOP, "pg2 has equally tolerable WAL position and priority 3, while this node has priority 1", None),
    ("priority-higher-but-behind-does-not-win", cluster(leader=None), local(peers=peers(P_PG2_PRIO3_BEHIND)),
     Policy(), Action.ACQUIRE, "promoted self", None),
    ("priority-equal-at-same-lsn-races", cluster(leader=None), local(peers=peers(P_PG2_EQUAL)), Policy(),
     Action.ACQUIRE, "promoted self", None),
    ("priority-mine-higher-races", cluster(leader=None), local(failover_priority=5, peers=peers(P_PG2_PRIO3)),
     Policy(), Action.ACQUIRE, "promoted self", None),
    ("priority-zero-never-races", cluster(leader=None), local(nofailover=True, failover_priority=0, peers={}),
     Policy(), Action.NOOP,
     "following a different leader because I am not allowed to promote (failover_priority 0)", None),
    ("priority-zero-peer-ignored", cluster(leader=None),
     local(peers=peers(PeerInfo("pg2", True, running=True, wal_lsn=100, nofailover=True, failover_priority=0))),
     Policy(), Action.ACQUIRE, "promoted self", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decision_table(case: tuple) -> None:
    _, clu, loc, policy, action, message, target = case
    decision = decide(clu, loc, policy)
    assert decision.action == action, decision.message
    assert message in decision.message
    assert decision.target == target


# Actions no rule of decide() returns: the loop asks the Executor for them itself.
REQUESTED_BY_THE_LOOP = {Action.REINITIALIZE, Action.FENCED, Action.LEASE_EXPIRED}  # not decided by the rules


def test_every_action_is_covered_by_the_table() -> None:
    covered = {decide(c[1], c[2], c[3]).action for c in CASES}
    outage = {c[2] for c in OUTAGE_CASES}
    assert covered | outage | REQUESTED_BY_THE_LOOP == set(Action)
    assert not REQUESTED_BY_THE_LOOP & (covered | outage)


def test_leader_refresh_failure_demotes() -> None:
    decision = decide(cluster(leader="pg1"), local(in_recovery=False), Policy())
    assert decision.on_failure is not None
    assert decision.on_failure.action == Action.DEMOTE


def test_lost_race_falls_back_to_noop() -> None:
    decision = decide(cluster(leader=None), local(), Policy())
    assert decision.action == Action.ACQUIRE
    assert decision.on_failure is not None and decision.on_failure.action == Action.NOOP


def test_standby_leader_lock_loss_does_not_demote() -> None:
    decision = decide(cluster(leader="pg1"), local(upstream=REMOTE), STANDBY)
    assert decision.on_failure is not None and decision.on_failure.action == Action.NOOP
    race = decide(cluster(leader=None), local(), STANDBY)
    assert race.on_failure is not None and race.on_failure.action == Action.NOOP


def test_lost_initialize_race() -> None:
    decision = decide(cluster(leader=None, initialize=None), local(data_dir_empty=True), Policy())
    assert decision.on_failure is not None
    assert decision.on_failure.message == "failed to acquire initialize lock"


def test_failover_candidate_not_running_waits() -> None:
    decision = decide(cluster(leader=None, failover=Failover(1, "pg0", "pg1")),
                      local(running=False, unverified_primary_data=False), Policy())
    # not running: start first, race later
    assert decision.action == Action.START_REPLICA


def test_clonefrom_replica_is_preferred_over_the_leader() -> None:
    TAGGED["pg2"] = {"clonefrom": True}
    try:
        decision = decide(cluster(), local(data_dir_empty=True), Policy())
    finally:
        TAGGED.clear()
    assert decision.action == Action.CLONE and decision.target == "pg2"
    assert decision.message == "trying to bootstrap from replica 'pg2'"


def test_clonefrom_on_the_leader_itself_clones_from_the_leader() -> None:
    TAGGED["pg0"] = {"clonefrom": True}
    try:
        decision = decide(cluster(), local(data_dir_empty=True), Policy())
    finally:
        TAGGED.clear()
    assert decision.target == "pg0"


def test_replicatefrom_cascades_through_a_running_replica() -> None:
    decision = decide(cluster(), local(replicatefrom="pg2", upstream="pg0"), Policy())
    assert decision.action == Action.FOLLOW and decision.target == "pg2"
    assert decision.message == "following new leader (pg0), replicating from pg2"
    steady = decide(cluster(), local(replicatefrom="pg2", upstream="pg2"), Policy())
    assert steady.action == Action.NOOP and steady.message.endswith("following a leader (pg0), replicating from pg2")


def test_replicatefrom_falls_back_to_the_leader() -> None:
    down = decide(cluster(members=("pg0", "pg1")), local(replicatefrom="pg2", upstream="pg2"), Policy())
    assert down.action == Action.FOLLOW and down.target == "pg0"
    to_leader = decide(cluster(), local(replicatefrom="pg0"), Policy())
    assert to_leader.action == Action.NOOP  # the leader itself is not a cascade


# -- failsafe_mode: the cycle in which the DCS could not be read ---------------------------
def outage(**kw: object) -> OutageView:
    values: dict[str, object] = {"name": "pg0", "failsafe_mode": True, "paused": False, "running": True,
                                 "in_recovery": False, "known_topology": TOPOLOGY}
    values.update(kw)
    return OutageView(**values)  # type: ignore[arg-type]


ALL_ACCEPT = {"pg1": True, "pg2": True}
OUTAGE_CASES = [
    # id, view, expected action, consented (still the leader: keep VIP + watchdog), expected message (exact)
    ("replica-waits", outage(name="pg1", in_recovery=True), Action.NOOP, False, "DCS is not accessible"),
    ("replica-ignores-answers", outage(name="pg1", in_recovery=True, answers=ALL_ACCEPT), Action.NOOP, False,
     "DCS is not accessible"),
    ("stopped-waits", outage(running=False), Action.NOOP, False, "DCS is not accessible"),
    ("busy-primary-waits", outage(busy="restarting"), Action.NOOP, False,
     "DCS is not accessible: restarting in progress"),
    ("busy-primary-ignores-answers", outage(busy="restarting", answers=ALL_ACCEPT), Action.NOOP, False,
     "DCS is not accessible: restarting in progress"),
    ("paused-primary-keeps-running", outage(paused=True, failsafe_mode=False), Action.NOOP, False,
     "PAUSE: DCS is not accessible, continue to run as primary without lock"),
    ("paused-primary-with-answers-not-consented", outage(paused=True, answers=ALL_ACCEPT), Action.NOOP, False,
     "PAUSE: DCS is not accessible, continue to run as primary without lock"),
    ("failsafe-off-demotes", outage(failsafe_mode=False, answers=ALL_ACCEPT), Action.DEMOTE_OFFLINE, False,
     "demoting self because DCS is not accessible and I was a leader"),
    ("no-topology-demotes", outage(known_topology=None), Action.DEMOTE_OFFLINE, False,
     "demoting self because DCS is not accessible and I was a leader (failsafe: no failsafe topology is known)"),
    ("not-in-topology-demotes", outage(known_topology=TOPOLOGY_WITHOUT_PG1, name="pg1"), Action.DEMOTE_OFFLINE, False,
     "demoting self because DCS is not accessible and I was a leader "
     "(failsafe: I (pg1) am not in the failsafe topology)"),
    ("every-member-accepts-continues", outage(answers=ALL_ACCEPT), Action.NOOP, True,
     "continue to run as a leader because failsafe mode is enabled and all members are accessible"),
    ("one-member-refuses-demotes", outage(answers={"pg1": True, "pg2": False}), Action.DEMOTE_OFFLINE, False,
     "demoting self because DCS is not accessible and I was a leader (failsafe: no consent from pg2)"),
    ("unanswered-member-demotes", outage(answers={"pg2": True}), Action.DEMOTE_OFFLINE, False,
     "demoting self because DCS is not accessible and I was a leader (failsafe: no consent from pg1)"),
    ("nobody-asked-demotes", outage(answers=None), Action.DEMOTE_OFFLINE, False,
     "demoting self because DCS is not accessible and I was a leader (failsafe: no consent from pg1, pg2)"),
    ("single-member-continues", outage(known_topology={"pg0": "http://127.0.0.1:8008/pg0"}, answers={}),
     Action.NOOP, True,
     "continue to run as a leader because failsafe mode is enabled and all members are accessible"),
]


def test_after_outage_the_expired_key_is_taken_again_before_demoting() -> None:
    refresh = decide(cluster(leader="pg0"), local(name="pg0", in_recovery=False), FAILSAFE)
    adjusted = after_outage(refresh)
    assert (adjusted.action, adjusted.message) == (refresh.action, refresh.message)
    assert adjusted.on_failure is not None and adjusted.on_failure.action == Action.ACQUIRE
    assert adjusted.on_failure.message == REACQUIRE
    assert adjusted.on_failure.on_failure == refresh.on_failure  # someone else has it: demote
    follow = decide(cluster(), local(), FAILSAFE)
    assert after_outage(follow) is follow
    assert decide(cluster(), local(after_failsafe_outage=True), FAILSAFE) == follow
    assert decide(cluster(leader="pg0"), local(name="pg0", in_recovery=False, after_failsafe_outage=True),
                  FAILSAFE) == adjusted


@pytest.mark.parametrize("case", OUTAGE_CASES, ids=[c[0] for c in OUTAGE_CASES])
def test_outage_decision_table(case: tuple) -> None:
    _, view, action, consented, message = case
    decision = decide_without_dcs(view)
    assert (decision.action, decision.consented, decision.message) == (action, consented, message)
def test_failover_priority_zero_means_never_promote() -> None:
    """The daemon maps failover_priority 0 to nofailover (Config.nofailover); peers too."""
    from pg_ha.core.model import Member as M
    from pg_ha.node.peers import peer_from_status
    assert M("x", 1, {"tags": {"failover_priority": 0}}).nofailover
    assert not M("x", 1, {"tags": {"failover_priority": 2}}).nofailover
    peer = peer_from_status("pg2", {"state": "running", "role": "replica", "tags": {"failover_priority": 0}})
    assert peer.nofailover and peer.failover_priority == 0
    assert peer_from_status("pg2", {"state": "running", "role": "replica", "tags": {"failover_priority": 4}}) \
        .failover_priority == 4
    decision = decide(cluster(leader=None), local(nofailover=True, peers={}), Policy())
    assert decision.action == Action.NOOP and "nofailover" in decision.message
