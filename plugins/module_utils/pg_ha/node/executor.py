# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Executes the HA loop's Decisions. Long steps (initdb, basebackup, rewind, start)
run in a background thread; while one runs the node is `busy` and the loop keeps
refreshing the lease instead of deciding anything new."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..core import quorum
from ..core.ha import Action, Decision
from ..core.model import Cluster
from ..core.sync import BLOCK_ALL, standby_names_value
from ..dcs.base import AbstractDCS, DCSError
from ..vip import manager_for
from ..watchdog import Watchdog, parse_watchdog
from ..watchdog import from_config as watchdog_from_config
from . import standby
from .callbacks import CallbackRunner, pre_promote_allows

if TYPE_CHECKING:
    from ..config.settings import Config
    from ..postgresql import Postgresql

logger = logging.getLogger(__name__)


@dataclass
class NodeMemory:
    """What the executor remembers between cycles (fed back into LocalView)."""

    upstream: str | None = None
    unverified_primary_data: bool = False
    primary_start_failed: bool = False
    stopped_on_purpose: bool = False
    fatal: str | None = None
    bootstrap_failed_at: float | None = None  # time.monotonic() of our last failed bootstrap


class Executor:
    def __init__(self, config: Config, dcs: AbstractDCS, pg: Postgresql) -> None:
        self.config = config
        self.dcs = dcs
        self.pg = pg
        self.memory = NodeMemory()
        self._busy: str | None = None
        self._busy_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sync_names: tuple[str, ...] | None = None  # managed synchronous_standby_names, None = not ours
        self.sync_commit: quorum.Commit | None = None  # quorum commit: ANY n (...) in force, else None
        self.callbacks = CallbackRunner(config.postgresql.callbacks, config.scope)
        self.last_role: str | None = None
        self.vip = manager_for(config.vip)  # released here before a primary stops
        self.on_done: Callable[[], None] = lambda: None  # wakes the loop after a background step
        self.watchdog: Watchdog = watchdog_from_config(parse_watchdog(config.watchdog), config.postgresql.data_dir)

    # -- background work ---------------------------------------------------------
    @property
    def busy(self) -> str | None:
        return self._busy

    def try_begin(self, what: str) -> bool:
        with self._busy_lock:
            if self._busy is not None:
                return False
            self._busy = what
            return True

    def end(self) -> None:
        with self._busy_lock:
            self._busy = None

    def run_async(self, what: str, func: Callable[[], Any]) -> bool:
        if not self.try_begin(what):
            return False

        def runner() -> None:
            result: Any = False
            try:
                result = func()
            except Exception:  # noqa: BLE001 - a failed step must not kill the daemon
                logger.exception("%s failed", what)
            finally:
                self.end()
                if result is not False:  # a failed step is retried at the next regular cycle
                    self.on_done()

        self._thread = threading.Thread(target=runner, name=what.replace(" ", "-"), daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def bootstrap_backoff(self) -> bool:
        """After a failed bootstrap, leave the initialize key to the other members for 2 * ttl
        (Patroni exits instead)."""
        failed = self.memory.bootstrap_failed_at
        return failed is not None and time.monotonic() - failed < 2 * self.config.dynamic.ttl

    # -- callbacks -----------------------------------------------------------------
    def note_role(self, role: str) -> None:
        """on_role_change when a running node changes between primary, replica and standby_leader."""
        if role not in ("primary", "replica", "standby_leader"):
            return
        if self.last_role is not None and role != self.last_role:
            self.callbacks.fire("on_role_change", role)
        self.last_role = role

    def promote(self, cluster: Cluster) -> bool | None:
        """Watchdog, fencing hook, then pg_ctl promote. None: vetoed (the lock was given up)."""
        if not self.watchdog.arm():
            logger.error("not promoting self because the watchdog could not be activated: releasing the lock")
            self.dcs.delete_leader(None)
            return None
        if not pre_promote_allows(self.config.postgresql.pre_promote, self.config.scope,
                                  self.config.dynamic.retry_timeout * 2):
            self.dcs.delete_leader(None)
            return None
        if not self.pg.promote():
            return False
        self.after_promotion(cluster)
        return True

    # -- synchronous replication ---------------------------------------------------
    def effective_pg_settings(self) -> Any:
        settings = self.config.postgresql
        if self.sync_commit is not None:
            value = quorum.standby_names_value(self.sync_commit)
        elif self.sync_names is None:
            return settings
        else:
            value = standby_names_value(self.sync_names, self.config.dynamic.synchronous_node_count)
        return replace(settings, parameters={**settings.parameters, "synchronous_standby_names": value})

    def set_sync_names(self, names: tuple[str, ...] | None) -> None:
        if names == self.sync_names and self.sync_commit is None:
            return
        self.sync_names = names
        self.sync_commit = None
        self.pg.update_settings(self.effective_pg_settings())

    def set_sync_commit(self, commit: quorum.Commit) -> None:
        """Quorum commit: make PostgreSQL wait for ANY n of these standbys."""
        if commit == self.sync_commit:
            return
        self.sync_commit = commit
        self.sync_names = BLOCK_ALL if commit.block_all else tuple(sorted(commit.names))
        self.pg.update_settings(self.effective_pg_settings())

    def prepare_promotion(self, cluster: Cluster) -> bool:
        """Synchronous mode: claim the sync key for us with no standby (CAS) and make
        PostgreSQL wait for standbys ('*' when strict) before it accepts writes."""
        dyn = self.config.dynamic
        if not dyn.synchronous_mode:
            self.set_sync_names(None)
            return True
        claim: dict[str, Any] = {"leader": self.config.name, "sync_standby": None}
        handover = quorum.promotion_state(cluster.sync, self.config.name) if dyn.synchronous_quorum else None
        if handover is not None:
            claim = quorum.sync_key_value(self.config.name, handover[1])
        elif dyn.synchronous_quorum:
            claim["quorum"] = 0
        value = json.dumps(claim, separators=(",", ":"))
        if not self.dcs.set_sync_state_value(value, cluster.sync.version if cluster.sync else None):
            logger.warning("Postponing promotion because synchronous replication state was updated by somebody else")
            return False
        if handover is not None:
            logger.info("quorum commit: promoting with %s", quorum.describe(handover[0]))
            self.set_sync_commit(handover[0])
        else:
            self.set_sync_names(BLOCK_ALL if dyn.synchronous_mode_strict else ())
        return True

    # -- helpers -----------------------------------------------------------------
    def conninfo(self, cluster: Cluster, name: str | None) -> dict[str, Any] | None:
        member = cluster.get_member(name) if name else None
        if member is None or not member.conn_url:
            return None
        return self.pg.conninfo_for(member.conn_url)

    def slot_for_me(self, cluster: Cluster, upstream: str | None) -> str | None:
        """Our slot lives on the leader only; a cascading upstream has none for us."""
        leader = cluster.leader.name if cluster.leader else None
        if not self.config.postgresql.use_slots or upstream is None or upstream != leader:
            return None
        return self.pg.slot_name_for(self.config.name)

    def refresh_lock(self, cluster: Cluster, wal_lsn: int | None) -> bool:
        if cluster.leader is None or cluster.leader.name != self.config.name:
            return False
        try:
            refreshed = self.dcs.update_leader(cluster.leader, wal_lsn)
        except DCSError as exc:
            logger.error("failed to update leader lock: %s", exc)
            return False
        if refreshed:
            self.watchdog.keepalive()  # only after the lease was renewed: it runs down otherwise
        return refreshed

    def start_replica(self, cluster: Cluster, target: str | None) -> bool:
        conninfo = self.conninfo(cluster, target)
        ok = self.pg.start("replica", conninfo, self.slot_for_me(cluster, target) if conninfo else None)
        if ok:
            self.memory.upstream = target if conninfo else None
            self.memory.stopped_on_purpose = False
            self.callbacks.fire("on_start", "replica")
            self.note_role("replica")
        return ok

    # -- dispatch ------------------------------------------------------------------
    def execute(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> Decision:
        """Carry the decision out; returns the one that was actually applied (its
        on_failure when the DCS said no), whose sentence the loop logs."""
        if decision.refresh_lock and not self.refresh_lock(cluster, wal_lsn):
            return Decision(Action.NOOP, f"failed to update leader lock: not acting on '{decision.message}'")
        handler = getattr(self, f"_do_{decision.action.value}")
        ok = handler(decision, cluster, wal_lsn)
        if ok is False and decision.on_failure is not None:
            return self.execute(decision.on_failure, cluster, wal_lsn)
        return decision

    def _do_noop(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        return True

    def _do_update_lock(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        """A DCSError (no definite answer) propagates: the loop's DCS-outage path decides
        then, as for a failed read (failsafe_mode); False means the key is not ours."""
        if cluster.leader is None or cluster.leader.name != self.config.name:
            return False
        return self.dcs.update_leader(cluster.leader, wal_lsn)

    def _do_fatal(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self.memory.fatal = decision.message
        return True

    def _do_bootstrap(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if not self.dcs.initialize(create_new=True, sysid=""):
            return False

        def bootstrap() -> None:
            if not self.pg.bootstrap(list(self.config.postgresql.initdb)):
                logger.error("bootstrap failed: removing the data directory and the initialize key")
                self.pg.stop("immediate")
                self.pg.remove_data_dir()
                self.dcs.cancel_initialization()
                self.memory.bootstrap_failed_at = time.monotonic()
                return
            self.callbacks.fire("on_start", "primary")
            self.note_role("primary")
            sysid = self.pg.sysid() or ""
            self.dcs.initialize(create_new=False, sysid=sysid)
            if self.dcs.attempt_to_acquire_leader():
                logger.info("initialized a new cluster")
            if self.dcs.get_cluster().config is None:
                self.dcs.set_config_value(json.dumps(self.config.bootstrap_dcs, separators=(",", ":")))

        return self.run_async("initializing new cluster", bootstrap)

    def _do_take_initialize(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        # no key yet: create it (CAS); a key holding garbage: the leader overwrites it
        return self.dcs.initialize(create_new=cluster.initialize is None, sysid=self.pg.sysid() or "")

    def _do_clone(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        conninfo = self.conninfo(cluster, decision.target)
        if conninfo is None:
            return False

        def clone() -> None:
            if self.pg.create_replica(conninfo):
                self.memory.unverified_primary_data = False
                # stream from the leader; a replicatefrom tag re-points us on the next cycle
                self.start_replica(cluster, cluster.leader.name if cluster.leader else decision.target)
            else:
                logger.error("failed to create a replica from %s", decision.target)

        return self.run_async("creating replica", clone)

    def _do_start_primary(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        def start() -> None:
            if self.pg.start("primary"):
                self.callbacks.fire("on_start", "primary")
                self.note_role("primary")
                self.memory.primary_start_failed = False
                self.memory.stopped_on_purpose = False
                self.memory.upstream = None
            else:
                logger.error("failed to start PostgreSQL as the primary")
                self.memory.primary_start_failed = True
                self.memory.unverified_primary_data = True

        return self.run_async("starting", start)

    def _do_start_replica(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        def start() -> bool:
            if self.start_replica(cluster, decision.target):
                return True
            # e.g. "requested timeline N is not a child of this server's history": the next
            # cycle checks for divergence against the leader (rewind or re-clone), no blind retry
            logger.warning("PostgreSQL did not start as a replica: checking it against the leader next")
            self.memory.unverified_primary_data = True
            return False
        return self.run_async("starting", start)

    def _do_rejoin(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        conninfo = self.conninfo(cluster, decision.target)
        if conninfo is None:
            return False
        return self.run_async("rewinding", lambda: self.rejoin(cluster, decision.target, conninfo))

    def rejoin(self, cluster: Cluster, target: str | None, conninfo: dict[str, Any]) -> bool:
        """A former primary: stop, verify it did not go past the new leader's fork point,
        rewind (or wipe for a fresh clone) when it did, then follow."""
        settings = self.config.postgresql
        if self.pg.is_running():
            self.memory.stopped_on_purpose = True
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
                self.memory.unverified_primary_data = False
                return True
            else:
                logger.error("the former primary diverged from the leader and neither use_pg_rewind nor "
                             "remove_data_directory_on_diverged_timelines is set: not starting it")
                return False
        self.memory.unverified_primary_data = False
        logger.info("starting as a secondary")
        return self.start_replica(cluster, target)

    def _do_follow(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        conninfo = self.conninfo(cluster, decision.target)
        if conninfo is None:
            return False
        self.pg.follow(conninfo, self.slot_for_me(cluster, decision.target))
        self.memory.upstream = decision.target
        return True

    def _do_promote(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if not self.prepare_promotion(cluster):
            return False
        return self.promote(cluster) is True

    def _do_acquire(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if not self.dcs.attempt_to_acquire_leader():
            return False
        if self.pg.state().in_recovery and not self.prepare_promotion(cluster):
            return True  # we hold the lock: the next cycle promotes
        if not self.pg.state().in_recovery:
            self.watchdog.arm()
            self.after_promotion(cluster)
            return True
        if self.promote(cluster) is False:
            logger.error("promotion failed after acquiring the leader lock: releasing it")
            self.dcs.delete_leader(None)
        return True

    def after_promotion(self, cluster: Cluster) -> None:
        self.note_role("primary")
        self.memory.upstream = None
        self.memory.unverified_primary_data = False
        if cluster.failover is not None:
            self.dcs.set_failover_value("", cluster.failover.version)

    def _do_demote(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self.vip.release("demoting: I do not hold the leader lock")
        self.memory.stopped_on_purpose = True
        self.memory.unverified_primary_data = True
        self.memory.upstream = None
        self.pg.stop("immediate")
        self.callbacks.fire("on_stop", "primary")
        return True

    def _do_switchover(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self.vip.release("switchover: handing the leader lock over")
        self.memory.stopped_on_purpose = True
        self.memory.unverified_primary_data = True
        self.memory.upstream = None
        if not self.pg.stop("fast"):
            logger.error("switchover: PostgreSQL did not stop, keeping the leader lock")
            return False
        self.callbacks.fire("on_stop", "primary")
        _, lsn = self.pg.local_timeline_lsn()
        self.dcs.delete_leader(cluster.leader, lsn)
        logger.info("switchover: leader lock released at %s", lsn)
        if cluster.paused and decision.target:
            # asked for by the operator: in maintenance mode too the former primary goes on as a
            # replica of the candidate (Patroni's graceful demotion) instead of staying down
            logger.info("PAUSE: switchover: starting as a replica of the candidate %s", decision.target)
            self.run_async("starting", lambda: self.start_replica(cluster, decision.target))
        return True

    def _do_release_lock(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        self.vip.release("releasing the leader lock")
        self.memory.primary_start_failed = False
        self.memory.unverified_primary_data = True
        return self.dcs.delete_leader(cluster.leader)

    # -- standby cluster (standby.py) -----------------------------------------------
    def _do_bootstrap_standby(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        return standby.bootstrap_standby(self, cluster)

    def _do_standby_leader(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        return standby.standby_leader(self, cluster)

    def _do_acquire_standby(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        return standby.acquire_standby(self, cluster)

    def _do_clear_failover(self, decision: Decision, cluster: Cluster, wal_lsn: int) -> bool:
        if cluster.failover is not None:
            self.dcs.set_failover_value("", cluster.failover.version)
        return True


def data_was_primary(data_dir: str) -> bool:
    """A non-empty data directory without standby.signal last ran as a primary."""
    return os.path.exists(os.path.join(data_dir, "PG_VERSION")) and \
        not os.path.exists(os.path.join(data_dir, "standby.signal"))
