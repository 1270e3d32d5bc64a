# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Executor: the only writer of the node's state (state.py). It carries out a Decision
by the handler the HANDLERS table names for its Action; long steps (initdb, basebackup,
rewind, start) run in the background (background.py) while the loop keeps the lease.

Every side effect of the HA cycle is one Action run here: the ones core/ha.py decides,
and those the loop meets outside the rules (a demotion in a DCS outage, a reinitialize
asked over the REST API, a fired watchdog)."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.ha import Action, Decision
from ..core.model import Cluster
from ..dcs.base import AbstractDCS, DCSError
from ..vip import manager_for
from ..watchdog import Watchdog, parse_watchdog
from ..watchdog import from_config as watchdog_from_config
from . import standby
from .background import BackgroundWork
from .callbacks import CallbackRunner, pre_promote_allows
from .lease_guard import LeaseGuard
from .state import NodeState
from .sync_control import SyncControl

if TYPE_CHECKING:
    from ..config.settings import Config
    from ..postgresql import Postgresql

logger = logging.getLogger(__name__)

Handler = Callable[["Executor", Decision, Cluster, int], bool]


def data_was_primary(data_dir: str) -> bool:
    """A non-empty data directory without standby.signal last ran as a primary."""
    return os.path.exists(os.path.join(data_dir, "PG_VERSION")) and \
        not os.path.exists(os.path.join(data_dir, "standby.signal"))


class Executor(BackgroundWork, SyncControl):
    def __init__(self, config: Config, dcs: AbstractDCS, pg: Postgresql) -> None:
        BackgroundWork.__init__(self)
        SyncControl.__init__(self)
        self.config = config
        self.dcs = dcs
        self.pg = pg
        self._state = NodeState()
        self._state_lock = threading.Lock()  # the lease guard's thread demotes too
        if data_was_primary(config.postgresql.data_dir):  # found at start: check it against a leader
            self._state = self._state.data_suspect()
        self.callbacks = CallbackRunner(config.postgresql.callbacks, config.scope)
        self.last_role: str | None = None
        self.vip = manager_for(config.vip)  # released here before a primary stops
        self.watchdog: Watchdog = watchdog_from_config(parse_watchdog(config.watchdog), config.postgresql.data_dir)
        self.lease = LeaseGuard(self._lease_deadline_passed, self._runs_primary)

    # -- the node's state: read by anyone, changed here only --------------------------
    @property
    def state(self) -> NodeState:
        return self._state

    def _become(self, transition: Callable[[NodeState], NodeState]) -> None:
        with self._state_lock:
            self._state = transition(self._state)

    # -- the leader lease deadline (lease_guard.py, core/lease.py) ----------------------
    def _lease_renewed(self, before: float) -> None:
        """Our leader key was renewed (or taken) by a call that started at `before`. A standby
        leader accepts no writes: it has no deadline to keep."""
        if standby.remote_name(self.config.dynamic) is None:
            self.lease.renewed(self.dcs.lease_sent_at(before), self.config.dynamic.ttl)

    def lease_consented(self, asked_at: float) -> None:
        """failsafe_mode: every member accepted our POST /failsafe sent at `asked_at`."""
        if standby.remote_name(self.config.dynamic) is None:
            self.lease.renewed(asked_at, self.config.dynamic.ttl)

    def _runs_primary(self) -> bool:
        """PostgreSQL runs (or starts) without standby.signal, or is being promoted: what the
        lease guard must stop once the deadline passed. No query: PostgreSQL may hang too."""
        return self.pg.is_running() and (data_was_primary(self.config.postgresql.data_dir)
                                         or self.busy == "promoting")

    def _lease_deadline_passed(self) -> None:
        """The lease guard's thread, at (and after) the deadline."""
        expired = Decision(Action.LEASE_EXPIRED, "demoting self because the leader lease was not renewed "
                           "before its deadline: stopping PostgreSQL before the lease can expire in the DCS")
        logger.error("%s", self.execute(expired, Cluster(), 0).message)

    def bootstrap_backoff(self) -> bool:
        """After a failed bootstrap, leave the initialize key to the other members for 2 * ttl
        (Patroni exits instead)."""
        failed = self._state.bootstrap_failed_at
        return failed is not None and time.monotonic() - failed < 2 * self.config.dynamic.ttl

    def reconfigure(self, old: Config, new: Config) -> None:
        """A new configuration (dynamic config changed or the local file reloaded)."""
        self.config = new
        if old.vip != new.vip:
            self.vip.release("the vip configuration changed")
            self.vip = manager_for(new.vip)
        if old.dynamic.standby_cluster != new.dynamic.standby_cluster:
            self._become(NodeState.upstream_forgotten)

    # -- dispatch ---------------------------------------------------------------------
    def execute(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> Decision:
        """Carry the decision out; returns the one that was actually applied (its
        on_failure when the step did not succeed), whose sentence the loop logs."""
        if decision.action != Action.LEASE_EXPIRED:  # the guard's thread knows no cluster
            self.lease.set_paused(cluster.paused)
        if decision.refresh_lock and not self.refresh_lock(cluster, wal_lsn):
            return Decision(Action.NOOP, f"failed to update leader lock: not acting on '{decision.message}'")
        ok = HANDLERS[decision.action](self, decision, cluster, wal_lsn)
        if ok is False and decision.on_failure is not None:
            return self.execute(decision.on_failure, cluster, wal_lsn)
        return decision

    # -- callbacks --------------------------------------------------------------------
    def note_role(self, role: str) -> None:
        """on_role_change when a running node changes between primary, replica and standby_leader."""
        if role not in ("primary", "replica", "standby_leader"):
            return
        if self.last_role is not None and role != self.last_role:
            self.callbacks.fire("on_role_change", role)
        self.last_role = role

    # -- steps shared by several handlers ---------------------------------------------
    def conninfo(self, cluster: Cluster, name: str | None) -> dict[str, Any] | None:
        member = cluster.get_member(name) if name else None
        if member is None or not member.conn_url:
            return None
        return self.pg.conninfo_for(member.conn_url)

    def stream_from(self, cluster: Cluster, name: str | None) -> tuple[bool, dict[str, Any] | None]:
        """(whether `name` can be our upstream, the primary_conninfo to write). A nostream
        member follows it without a primary_conninfo: it restores the WAL from the archive."""
        if self.config.nostream:
            return name is not None and cluster.get_member(name) is not None, None
        conninfo = self.conninfo(cluster, name)
        return conninfo is not None, conninfo

    def slot_for_me(self, cluster: Cluster, upstream: str | None) -> str | None:
        """Our slot on whichever member we stream from: the leader keeps one for every member,
        a replica for the members that replicate from it (Patroni; permanent_slots.py)."""
        if not self.config.postgresql.use_slots or upstream is None:
            return None
        return self.pg.slot_name_for(self.config.name)

    def refresh_lock(self, cluster: Cluster, wal_lsn: int | None) -> bool:
        if cluster.leader is None or cluster.leader.name != self.config.name:
            return False
        before = time.monotonic()
        try:
            refreshed = self.dcs.update_leader(cluster.leader, wal_lsn)
        except DCSError as exc:
            logger.error("failed to update leader lock: %s", exc)
            return False
        if refreshed:
            self._lease_renewed(before)
            self.watchdog.keepalive()  # only after the lease was renewed: it runs down otherwise
        return refreshed

    def start_replica(self, cluster: Cluster, target: str | None) -> bool:
        follows, conninfo = self.stream_from(cluster, target)
        ok = self.pg.start("replica", conninfo, self.slot_for_me(cluster, target) if conninfo else None)
        if ok:
            self.lease.clear()
            self._become(lambda s: s.started_replica(target if follows else None))
            self.callbacks.fire("on_start", "replica")
            self.note_role("replica")
        return ok

    def copy_logical_slots(self, cluster: Cluster, files: Mapping[str, bytes]) -> bool:
        """In the background: stop, put the primary's logical slot state files into pg_replslot,
        start again following the same upstream (Patroni's copy_logical_slots)."""
        def copy() -> bool:
            self._become(NodeState.stopping)
            if not self.pg.stop():
                return False
            self.pg.write_slot_files(files)
            return self.start_replica(cluster, upstream)
        upstream = self._state.upstream
        return self.run_async("copying logical slots", copy)

    def promote(self, cluster: Cluster, if_failed: Callable[[], None] = lambda: None) -> bool | None:
        """Arm the watchdog (here, on the loop), then in the background the fencing hook and
        pg_ctl promote, so the loop keeps renewing the lease meanwhile (`busy`: promoting).
        None: vetoed by the watchdog (the lock was given up); False: busy. In the background:
        a pre_promote veto gives the lock up, no promotion once the lease deadline passed,
        and `if_failed` runs when pg_ctl promote did not succeed."""
        if not self.watchdog.arm():
            logger.error("not promoting self because the watchdog could not be activated: releasing the lock")
            self.dcs.delete_leader(None)
            return None

        def run() -> bool:
            if not pre_promote_allows(self.config.postgresql.pre_promote, self.config.scope,
                                      self.config.dynamic.retry_timeout * 2):
                self.dcs.delete_leader(None)
                return False
            if not self.lease.ahead():
                logger.error("not promoting self: the leader lease deadline passed during the promotion")
                return False
            if not self.pg.promote():
                if_failed()
                return False
            if not self.lease.ahead():  # the guard stops it (it polls until the deadline moves)
                logger.error("promoted after the leader lease deadline passed: the lease guard stops it")
                return False
            self.after_promotion(cluster)
            return True

        return self.run_async("promoting", run)

    def after_promotion(self, cluster: Cluster) -> None:
        self.note_role("primary")
        self._become(NodeState.promoted)
        if cluster.failover is not None:
            self.dcs.set_failover_value("", cluster.failover.version)

    def _clone_then_start(self, cluster: Cluster, source: str | None, conninfo: dict[str, Any] | None) -> None:
        """Copy the data directory from `source`, then stream from the leader (a
        replicatefrom tag re-points us on the next cycle)."""
        if self.pg.create_replica(conninfo):
            self._become(NodeState.data_verified)
            self.start_replica(cluster, cluster.leader.name if cluster.leader else source)
        else:
            logger.error("failed to create a replica from %s", source)

    def _bootstrap(self, what: str, make_data: Callable[[], bool], role: str, failure: str,
                   started: Callable[[NodeState], NodeState], success: str) -> bool:
        """Take the initialize key, make the data directory and start PostgreSQL (in the
        background), publish the system identifier, take the leader key, write the initial
        dynamic config. On failure: data directory emptied, initialize key released, and
        the other members get the next try (bootstrap_backoff)."""
        if not self.dcs.initialize(create_new=True, sysid=""):
            return False
        self.lease.clear()  # a new cluster: no lease of an earlier one may stop its first start

        def run() -> None:
            if not make_data():
                logger.error("%s: removing the data directory and the initialize key", failure)
                self.pg.stop("immediate")
                self.pg.remove_data_dir()
                self.dcs.cancel_initialization()
                self._become(lambda s: s.bootstrap_failed(time.monotonic()))
                return
            self._become(started)
            self.callbacks.fire("on_start", role)
            if role == "primary":
                self.note_role("primary")
            self.dcs.initialize(create_new=False, sysid=self.pg.sysid() or "")
            before = time.monotonic()
            if self.dcs.attempt_to_acquire_leader():
                if role == "primary":
                    self._lease_renewed(before)
                logger.info("%s", success)
            if self.dcs.get_cluster().config is None:
                self.dcs.set_config_value(json.dumps(self.config.dynamic.raw, separators=(",", ":")))

        return self.run_async(what, run)

    def _stop_primary(self, why: str, mode: str) -> bool:
        """Release the VIP first, then stop the primary; on_stop when it stopped."""
        self.vip.release(why)
        self._become(NodeState.demoted)
        if not self.pg.stop(mode):
            return False
        self.lease.clear()
        self.callbacks.fire("on_stop", "primary")
        return True

    # -- handlers: one per Action (HANDLERS below) ------------------------------------
    def _noop(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        return True

    def _update_lock(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """A DCSError (no definite answer) propagates: the loop's DCS-outage path decides
        then, as for a failed read (failsafe_mode); False means the key is not ours."""
        if cluster.leader is None or cluster.leader.name != self.config.name:
            return False
        before = time.monotonic()
        if not self.dcs.update_leader(cluster.leader, wal_lsn):
            return False
        self._lease_renewed(before)
        return True

    def _fatal(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self._become(lambda s: s.refused(decision.message))
        return True

    def _bootstrap_new(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        initdb = list(self.config.postgresql.initdb)
        return self._bootstrap("initializing new cluster", lambda: self.pg.bootstrap(initdb), "primary",
                               "bootstrap failed", lambda s: s, "initialized a new cluster")

    def _take_initialize(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        # no key yet: create it (CAS); a key holding garbage: the leader overwrites it
        return self.dcs.initialize(create_new=cluster.initialize is None, sysid=self.pg.sysid() or "")

    def _clone(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """From a member (decision.target), or without one by the no_leader replica methods."""
        conninfo = self.conninfo(cluster, decision.target)
        if conninfo is None and decision.target is not None:
            return False
        return self.run_async("creating replica", lambda: self._clone_then_start(cluster, decision.target, conninfo))

    def _reinitialize(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """POST /reinitialize: stop, remove the data directory, clone from the leader again."""
        leader = decision.target

        def reinit() -> None:
            self._become(NodeState.stopping)
            self.pg.stop("immediate")
            self.pg.remove_data_dir()
            conninfo = self.conninfo(cluster, leader)
            if conninfo:
                self._clone_then_start(cluster, leader, conninfo)

        return self.run_async("creating replica", reinit)

    def _remove_data_dir(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """A data directory that can never start (an interrupted pg_basebackup): wipe it;
        the next cycle, at once, clones again."""
        self._become(NodeState.data_verified)
        removed = self.pg.remove_data_dir()
        if removed:
            self.on_done()
        return bool(removed)

    def _fenced(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self._become(NodeState.fenced)
        return True

    def _start_primary(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        def start() -> None:
            # primary_start_timeout: how long a crashed primary may take (crash recovery)
            # before it gives the lock up for a failover (RELEASE_LOCK next cycle)
            if self.pg.start("primary", timeout=max(1, self.config.dynamic.master_start_timeout)):
                self.callbacks.fire("on_start", "primary")
                self.note_role("primary")
                self._become(NodeState.started_primary)
            else:
                logger.error("failed to start PostgreSQL as the primary")
                self._become(NodeState.primary_did_not_start)

        return self.run_async("starting", start)

    def _start_replica(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        def start() -> bool:
            if self.start_replica(cluster, decision.target):
                return True
            logger.warning("PostgreSQL did not start as a replica: checking it against the leader next")
            self._become(NodeState.replica_did_not_start)
            return False
        return self.run_async("starting", start)

    def _rejoin(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        conninfo = self.conninfo(cluster, decision.target)
        if conninfo is None:
            return False
        return self.run_async("rewinding", lambda: self.rejoin(cluster, decision.target, conninfo))

    def rejoin(self, cluster: Cluster, target: str | None, conninfo: dict[str, Any]) -> bool:
        """A former primary: stop, verify it did not go past the new leader's fork point,
        rewind (or wipe for a fresh clone) when it did, then follow."""
        settings = self.config.postgresql
        if self.pg.is_running():
            self._become(NodeState.stopping)
            self.pg.stop("fast")
        if not self.pg.ensure_clean_shutdown():
            logger.error("could not shut the former primary down cleanly; will retry")
            return False
        diverged = self.pg.check_diverged(conninfo)
        if diverged is None:
            logger.warning("could not compare timelines with the leader %s; will retry", target)
            return False
        if diverged:
            if settings.use_pg_rewind and self.pg.rewind(conninfo):
                logger.info("pg_rewind finished, starting as a secondary")
            elif settings.use_pg_rewind and settings.remove_data_directory_on_rewind_failure or \
                    not settings.use_pg_rewind and settings.remove_data_directory_on_diverged_timelines:
                logger.warning("the former primary diverged and cannot be rewound: removing the data "
                               "directory to take a fresh copy from the leader")
                self.pg.remove_data_dir()
                self._become(NodeState.data_verified)
                return True
            else:
                logger.error("the former primary diverged from the leader and neither use_pg_rewind nor "
                             "remove_data_directory_on_diverged_timelines is set: not starting it")
                return False
        self._become(NodeState.data_verified)
        logger.info("starting as a secondary")
        return self.start_replica(cluster, target)

    def _follow(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        follows, conninfo = self.stream_from(cluster, decision.target)
        if not follows:
            return False
        self.pg.follow(conninfo, self.slot_for_me(cluster, decision.target) if conninfo else None)
        self._become(lambda s: s.following(decision.target))
        return True

    def _promote(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if not self.prepare_promotion(cluster):
            return False
        return self.promote(cluster) is True

    def _acquire(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        before = time.monotonic()
        if not self.dcs.attempt_to_acquire_leader():
            return False
        self._lease_renewed(before)
        if self.pg.state().in_recovery and not self.prepare_promotion(cluster):
            return True  # we hold the lock: the next cycle promotes
        if not self.pg.state().in_recovery:
            self.watchdog.arm()
            self.after_promotion(cluster)
            return True
        def failed() -> None:
            logger.error("promotion failed after acquiring the leader lock: releasing it")
            self.dcs.delete_leader(None)
        self.promote(cluster, failed)
        return True

    def _demote(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self.vip.release("demoting: I do not hold the leader lock")
        self._become(NodeState.demoted)
        self.pg.stop("immediate")
        self.lease.clear()
        self.callbacks.fire("on_stop", "primary")
        return True

    def _lease_expired(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """From the lease guard's thread (lease_guard.py), whatever the loop is doing: the
        deadline passed without a renewal. Stop at once (a promotion under way fails with it);
        the deadline stays, so a primary started again before a renewal is stopped again. The
        loop decides what follows once the DCS answers (rejoin, or start again holding the key)."""
        self.vip.release("the leader lease deadline passed")
        self._become(NodeState.demoted)
        if not self.pg.stop("immediate"):
            return False
        self.callbacks.fire("on_stop", "primary")
        return True

    def _demote_offline(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """A DCS outage without the members' consent: stop at once and start read-only,
        following nobody, until the DCS tells who leads. The VIP went before (lease_effects)."""
        self._become(NodeState.demoted)
        self.pg.stop("immediate")
        self.lease.clear()
        self.watchdog.disarm()
        self.run_async("starting", lambda: self.pg.start("replica", None, None))
        return True

    def _switchover(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if not self._stop_primary("switchover: handing the leader lock over", "fast"):
            logger.error("switchover: PostgreSQL did not stop, keeping the leader lock")
            return False
        _, lsn = self.pg.local_timeline_lsn()
        self.dcs.delete_leader(cluster.leader, lsn)
        logger.info("switchover: leader lock released at %s", lsn)
        if cluster.paused and decision.target:
            # asked for by the operator: in maintenance mode too the former primary goes on as a
            # replica of the candidate (Patroni's graceful demotion) instead of staying down
            logger.info("PAUSE: switchover: starting as a replica of the candidate %s", decision.target)
            self.run_async("starting", lambda: self.start_replica(cluster, decision.target))
        return True

    def _release_lock(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """Give the lock up. After failing to start the primary (or standby leader) the node
        is `demoted`, as Patroni's post_recover says to on_role_change; a later start as a
        replica reports `replica`."""
        failed_start = self.state.primary_start_failed
        self.vip.release("releasing the leader lock")
        self._become(NodeState.lock_released)
        self.lease.clear()
        released = self.dcs.delete_leader(cluster.leader)
        if failed_start:
            self.callbacks.fire("on_role_change", "demoted")
            self.last_role = "demoted"
        return released

    def _clear_failover(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if cluster.failover is not None:
            self.dcs.set_failover_value("", cluster.failover.version)
        return True

    # -- standby cluster (standby.py) --------------------------------------------------
    def _bootstrap_standby(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        config, pg = self.config, self.pg
        remote = standby.remote_name(config.dynamic)
        conninfo = standby.remote_conninfo(config, pg)
        return self._bootstrap(
            "bootstrapping standby leader",
            lambda: standby.clone_remote(config, pg, conninfo) and standby.start_as_standby(config, pg),
            standby.ROLE, f"failed to bootstrap the standby leader from the remote primary {remote}",
            lambda s: s.bootstrapped_standby(remote),
            f"initialized a standby cluster: standby leader replicating from {remote}")

    def _follow_remote(self) -> bool:
        standby.follow_remote(self.config, self.pg)
        remote = standby.remote_name(self.config.dynamic)
        self._become(lambda s: s.following_remote(remote))
        return True

    def _standby_leader(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """We hold the lock: make PostgreSQL a standby of the remote primary (start it, re-point
        it, or restart a read-write one as a standby)."""
        if self.pg.is_running():
            if self.pg.state().in_recovery is not False:
                return self._follow_remote()
            self._become(NodeState.stopping)
            return self.run_async("demoting to standby leader", self._follow_remote)

        def start() -> bool:
            remote = standby.remote_name(self.config.dynamic)
            if standby.start_as_standby(self.config, self.pg):
                self._become(lambda s: s.started_standby_leader(remote))
                self.callbacks.fire("on_start", standby.ROLE)
                return True
            logger.error("the standby leader's PostgreSQL did not start")
            self._become(NodeState.standby_leader_did_not_start)
            return False

        return self.run_async("starting", start)

    def _acquire_standby(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """Take the leader key and, holding it, stream from the remote primary at once."""
        if not self.dcs.attempt_to_acquire_leader():
            return False
        if self.pg.is_running() and self.pg.state().in_recovery is not False:
            self._follow_remote()
        if cluster.failover is not None:  # a switchover to us is done
            self.dcs.set_failover_value("", cluster.failover.version)
        return True

    # -- outside the cycle ------------------------------------------------------------
    def shutdown(self, cluster: Cluster | None, role: str) -> None:
        """SIGTERM, as Patroni's Ha.shutdown: in maintenance mode (pause) PostgreSQL keeps
        running and the leader key stays (the daemon can be upgraded or restarted under a
        running database); otherwise stop PostgreSQL and, once it is down, hand the lock over
        at once. A PostgreSQL that would not stop keeps the key (and an armed watchdog)."""
        self.join(timeout=60)
        self.lease.stop()  # no more renewals: the key is released below, or expires (paused)
        if cluster is not None and cluster.paused:
            logger.info("Leader key is not deleted and Postgresql is not stopped due paused state")
            self.watchdog.disarm()
            self.callbacks.drain()
            return
        logger.info("shutting down: stopping PostgreSQL")
        self._become(NodeState.stopping)
        self.vip.release("shutting down")  # before PostgreSQL stops and the lock goes
        if self.pg.stop("fast"):
            self.callbacks.fire("on_stop", role)
        if self.pg.is_running():
            logger.error("PostgreSQL shutdown failed, leader key not removed.%s",
                         " Leaving watchdog running." if self.watchdog.armed else "")
            self.callbacks.drain()
            return
        if cluster is not None and cluster.leader is not None and cluster.leader.name == self.config.name:
            try:
                _, lsn = self.pg.local_timeline_lsn()
                self.dcs.delete_leader(cluster.leader, lsn)
                logger.info("leader key released")
            except DCSError as exc:
                logger.warning("could not release the leader key: %s", exc)
        self.watchdog.disarm()
        self.callbacks.drain()


HANDLERS: Mapping[Action, Handler] = {
    Action.NOOP: Executor._noop,
    Action.UPDATE_LOCK: Executor._update_lock,
    Action.BOOTSTRAP: Executor._bootstrap_new,
    Action.TAKE_INITIALIZE: Executor._take_initialize,
    Action.CLONE: Executor._clone,
    Action.REINITIALIZE: Executor._reinitialize,
    Action.REMOVE_DATA_DIR: Executor._remove_data_dir,
    Action.START_PRIMARY: Executor._start_primary,
    Action.START_REPLICA: Executor._start_replica,
    Action.REJOIN: Executor._rejoin,
    Action.FOLLOW: Executor._follow,
    Action.PROMOTE: Executor._promote,
    Action.ACQUIRE: Executor._acquire,
    Action.DEMOTE: Executor._demote,
    Action.DEMOTE_OFFLINE: Executor._demote_offline,
    Action.SWITCHOVER: Executor._switchover,
    Action.RELEASE_LOCK: Executor._release_lock,
    Action.CLEAR_FAILOVER: Executor._clear_failover,
    Action.FENCED: Executor._fenced,
    Action.LEASE_EXPIRED: Executor._lease_expired,
    Action.FATAL: Executor._fatal,
    Action.BOOTSTRAP_STANDBY: Executor._bootstrap_standby,
    Action.STANDBY_LEADER: Executor._standby_leader,
    Action.ACQUIRE_STANDBY: Executor._acquire_standby,
}
