# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HA loop: read the DCS, look at PostgreSQL (observe.py), decide (core/ha.py), act
(executor.py), then the lease's side effects (lease_effects.py), the leader's housekeeping
(leader_housekeeping.py) or a replica's slots (permanent_slots.py), a due scheduled restart
(restarts.py), and publish (member key + REST status); a cycle without the DCS goes to
outage.py. Also the daemon's side of the REST API and of the configuration (dynamic config
from the DCS, reload of the local file)."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from ..config import load as config_mod
from ..config.settings import Config
from ..core import lease
from ..core.ha import Action, Decision, Policy, decide
from ..core.model import Cluster
from ..core.status import CycleFacts, member_data, member_role, patroni_status
from ..dcs.base import AbstractDCS, DCSError
from ..postgresql.query import LocalState
from ..watchdog import parse_watchdog
from . import dynamic_cache, lease_effects, standby
from .executor import Executor
from .failsafe_keeper import FailsafeKeeper
from .heap_trim import trim_now_and_then
from .leader_housekeeping import LeaderHousekeeping
from .live_status import LiveStatus
from .observe import Observer
from .outage import OutagePath
from .permanent_slots import ReplicaSlots
from .restarts import Restarts

logger = logging.getLogger("pg_ha")


class FatalError(Exception):
    pass


class Daemon:
    def __init__(self, config: Config, dcs: AbstractDCS, pg: Any) -> None:
        self.local_config = config  # the file layer (with bootstrap.dcs as dynamic layer)
        cached = dynamic_cache.load(config.postgresql.data_dir)
        self._cache = dynamic_cache.DynamicCache(config.postgresql.data_dir, cached)
        config = self._with_cached(config, cached)
        self._config = config
        self._dcs = dcs
        self.pg = pg
        self.executor = Executor(config, dcs, pg)
        self.executor.on_done = self.wakeup
        self.watchdog = self.executor.watchdog
        self.watchdog.set_timing(config.dynamic.ttl, config.dynamic.loop_wait, config.dynamic.retry_timeout,
                                 config.dynamic.failsafe_mode)
        self._stop = threading.Event()
        self._cluster: Cluster | None = None
        self._facts = CycleFacts()
        self._status: dict[str, Any] = patroni_status(config, self._facts)
        self._live = LiveStatus(pg)
        self._last_cycle = time.monotonic()
        self._config_version: int | None = None
        self._reload_requested = False
        # the first cycle hands the settings to PostgreSQL: they may come from the cached
        # dynamic config, not from the file the instance was made with
        self._pg_settings_dirty = True
        self._cycle_state: LocalState | None = None  # PostgreSQL's state read by this cycle's gather
        self._dcs_last_seen = 0
        self.failsafe = FailsafeKeeper(config.name)
        self.observer = Observer(pg, self.executor, self.watchdog)
        self.housekeeping = LeaderHousekeeping(dcs, pg, self.executor, self.failsafe)
        self.replica_slots = ReplicaSlots(pg, self.executor)
        self.outage = OutagePath(pg, self.executor, self.watchdog, self.failsafe, self.replica_slots)
        self.restarts = Restarts(pg, self.executor, self.status, self.wakeup)
        self._warn_lease_timing(config)

    # -- ApiBackend ------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self._config

    @property
    def dcs(self) -> AbstractDCS:
        return self._dcs

    def status(self) -> dict[str, Any]:
        """The last cycle's status, or the server's own answer when it came up since (live_status.py)."""
        return self._live.view(self._config, self._status, self._facts, self.executor.busy)

    def fresh_status(self) -> dict[str, Any]:
        """GET /patroni: the status with the server's positions of now (live_status.py)."""
        return self._live.fresh(self._config, self._status, self._facts, self.executor.busy)

    def cluster(self) -> Cluster | None:
        return self._cluster

    def lease_deadline(self) -> float | None:
        return self.executor.lease.deadline

    def last_cycle_age(self) -> float:
        return time.monotonic() - self._last_cycle

    def wakeup(self) -> None:
        self._dcs.wakeup()

    def failsafe_call(self, body: Any) -> tuple[int, str]:
        """POST /failsafe; answered from the last published state (as Patroni), so the
        caller's short timeout never waits on a PostgreSQL query."""
        status = self._status
        running_primary = status.get("state") == "running" and status.get("role") in ("primary", "master")
        return self.failsafe.receive(body, self._config.dynamic.failsafe_mode, running_primary)

    def failsafe_topology(self) -> dict[str, Any] | None:
        return self.failsafe.topology if self._config.dynamic.failsafe_mode else None

    def restart(self, scheduled_at: datetime | None, postgres_version: str | None,
                role: str | None, restart_pending: bool, timeout: float | None) -> tuple[int, str]:
        return self.restarts.request(scheduled_at, postgres_version, role, restart_pending, timeout)

    def cancel_scheduled_restart(self) -> tuple[int, str]:
        return self.restarts.cancel()

    def reload(self) -> tuple[int, str]:
        self._reload_requested = True
        self.wakeup()
        return 202, "reload scheduled"

    def reinitialize(self, force: bool, from_leader: bool) -> tuple[int, str]:
        cluster = self._cluster
        if cluster is None or cluster.leader is None:
            return 503, "Cluster has no leader, can not reinitialize"
        if cluster.leader.name == self._config.name:
            return 503, "I am the leader, can not reinitialize"
        leader = cluster.leader.name
        request = Decision(Action.REINITIALIZE, f"reinitialize: removing the data directory to clone from "
                           f"the leader {leader}", target=leader, on_failure=Decision(Action.NOOP, "busy"))
        applied = self.executor.execute(request, cluster, 0)
        if applied.action != Action.REINITIALIZE:
            return 503, f"{self.executor.busy} in progress"
        logger.info("%s", applied.message)
        return 200, "reinitialize started"

    # -- the loop ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self.wakeup()

    def run(self) -> int:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.cycle()
            except FatalError as exc:
                logger.critical("%s", exc)
                return 1
            except Exception:  # noqa: BLE001 - one bad cycle must not end HA
                logger.exception("unexpected error in the HA cycle")
            self._last_cycle = time.monotonic()
            trim_now_and_then(self._last_cycle)
            if self._stop.is_set():
                break
            remaining = self._config.dynamic.loop_wait - (time.monotonic() - started)
            if remaining > 0:
                self._dcs.watch(remaining)
        return 0

    def cycle(self) -> None:
        try:
            cluster = self._dcs.get_cluster()
        except DCSError as exc:
            self._on_dcs_error(exc)
            return
        self._dcs_last_seen = int(time.time())
        self.failsafe.dcs_is_back()
        self.failsafe.seen(cluster)
        self._cluster = cluster
        self._apply_dynamic(cluster)
        dyn = self._config.dynamic
        cluster = self._cluster = self.failsafe.cluster_view(cluster, dyn.failsafe_mode, dyn.ttl)
        self._apply_pg_settings()
        if self._reload_requested:
            self._reload_requested = False
            self._reload_local()
        if self.watchdog.fired():
            fenced = Decision(Action.FENCED, "the watchdog fired while this daemon did not keep it alive: "
                              "PostgreSQL was fenced")
            logger.error("%s", self.executor.execute(fenced, cluster, 0).message)
        view, facts, self._cycle_state = self.observer.gather(
            self._config, cluster, self._dcs_last_seen, self.restarts.scheduled,
            after_failsafe_outage=self.failsafe.recently_back(self._config.dynamic.ttl))
        decision = decide(cluster, view, self._policy())
        if cluster.leader is not None:
            logger.info("Lock owner: %s; I am %s", cluster.leader.name, self._config.name)
        if decision.action == Action.FATAL:
            raise FatalError(decision.message)
        try:
            applied = self.executor.execute(decision, cluster, facts.wal_lsn)
        except DCSError as exc:  # not a definite "no": the DCS-outage path decides (failsafe_mode)
            self._on_dcs_error(exc)
            return
        logger.info("%s", applied.message)
        decision = applied
        lease_effects.watchdog_step(self.watchdog, applied, cluster, facts)
        self._slots_and_housekeeping(decision, cluster, facts)
        self._manage_vip(decision)
        self.restarts.run_due()
        self._publish(cluster, facts, decision)
        if not self.executor.busy:
            self._cache.save(self._config.dynamic.raw)

    def _policy(self) -> Policy:
        dyn = self._config.dynamic
        return Policy(maximum_lag_on_failover=dyn.maximum_lag_on_failover, check_timeline=dyn.check_timeline,
                      can_bootstrap=True, synchronous_mode=dyn.synchronous_mode,
                      standby_cluster=standby.remote_name(dyn),
                      failsafe_mode=dyn.failsafe_mode,
                      synchronous_quorum=dyn.synchronous_quorum,
                      primary_start_timeout=dyn.master_start_timeout)

    def _slots_and_housekeeping(self, decision: Decision, cluster: Cluster, facts: CycleFacts) -> None:
        """The leader's housekeeping, or a replica's slots. Taking the lock is noted on the
        cycle that decided it: a promotion runs in the background (the executor is busy, so
        the housekeeping only starts a cycle later, when the decision is UPDATE_LOCK), and the
        retain_slots of the status key must be taken over from this cycle's cluster."""
        if decision.action in (Action.PROMOTE, Action.ACQUIRE):
            self.replica_slots.promoted()
            self.housekeeping.took_over(cluster)
        if self._is_leader_now(decision, cluster, facts):
            self.housekeeping.run(self._config, cluster, lambda: self._state_after(decision))
        elif self._is_idle_replica(decision, cluster):
            self.replica_slots.run(self._config, cluster, facts.replay_lsn)

    def _is_leader_now(self, decision: Decision, cluster: Cluster, facts: CycleFacts) -> bool:
        return decision.action in (Action.UPDATE_LOCK, Action.PROMOTE, Action.ACQUIRE) and \
            not self.executor.busy and self.pg.is_running()

    def _is_idle_replica(self, decision: Decision, cluster: Cluster) -> bool:
        """Following another member's lock, with nothing running and PostgreSQL in recovery."""
        state = self._cycle_state
        return decision.action == Action.NOOP and not self.executor.busy and state is not None \
            and state.running and bool(state.in_recovery) and cluster.leader is not None \
            and cluster.leader.name != self._config.name

    def _state_after(self, decision: Decision) -> LocalState:
        """PostgreSQL's state after this cycle's action: the one read at the start of the
        cycle when the action did not touch PostgreSQL (an idle leader: one query a cycle)."""
        if decision.action in (Action.UPDATE_LOCK, Action.NOOP) and self._cycle_state is not None:
            return self._cycle_state
        return self.pg.state()

    def _manage_vip(self, decision: Decision) -> None:
        """Every cycle: the VIP is here iff we hold the lease and run as primary (re-added if gone)."""
        lease_effects.manage_vip(self.executor.vip, decision, self.executor.busy is not None,
                                lambda: self._state_after(decision))

    def _publish(self, cluster: Cluster, facts: CycleFacts, decision: Decision) -> None:
        self._facts = facts
        self._status = patroni_status(self._config, facts)
        if self.failsafe.is_active(self._config.dynamic.ttl):
            self._status["failsafe_mode_is_active"] = True
        if facts.running and not self.executor.busy and decision.action in (Action.NOOP, Action.UPDATE_LOCK):
            self.executor.note_role(member_role(facts))  # facts predate the action
        try:
            self._dcs.touch_member(member_data(self._config, facts))
        except DCSError as exc:
            logger.warning("failed to update the member key: %s", exc)

    # -- configuration -------------------------------------------------------------------
    @staticmethod
    def _with_cached(config: Config, cached: dict[str, Any] | None) -> Config:
        """As Patroni: the dynamic configuration cached in the data directory wins over
        bootstrap.dcs until the DCS `config` key is read."""
        if cached is None:
            return config
        try:
            dynamic = config_mod.dynamic_from(cached, dynamic_cache.CACHE_FILE)
        except config_mod.ConfigError as exc:
            logger.warning("ignoring %s: %s", dynamic_cache.path(config.postgresql.data_dir), exc)
            return config
        logger.info("dynamic configuration from %s", dynamic_cache.path(config.postgresql.data_dir))
        return config.with_dynamic(dynamic)

    def _apply_dynamic(self, cluster: Cluster) -> None:
        if cluster.config is None or cluster.config.version == self._config_version:
            return
        self._config_version = cluster.config.version
        if not cluster.config.valid:
            logger.warning("ignoring invalid cluster config in the DCS: not a JSON object: %.60r",
                           cluster.config.raw)
            return
        try:
            dynamic = config_mod.dynamic_from(cluster.config.data, "config")
        except config_mod.ConfigError as exc:
            logger.warning("ignoring invalid cluster config in the DCS: %s", exc)
            return
        self._set_config(self.local_config.with_dynamic(dynamic))

    def _set_config(self, new: Config) -> None:
        old = self._config
        self._config = new
        self.executor.reconfigure(old, new)
        self._dcs.set_ttl(new.dynamic.ttl)
        self._dcs.set_retry_timeout(new.dynamic.retry_timeout)
        self.watchdog.reconfigure(parse_watchdog(new.watchdog))
        self.watchdog.set_timing(new.dynamic.ttl, new.dynamic.loop_wait, new.dynamic.retry_timeout,
                                 new.dynamic.failsafe_mode)
        if (old.dynamic.ttl, old.dynamic.loop_wait, old.dynamic.retry_timeout) != \
                (new.dynamic.ttl, new.dynamic.loop_wait, new.dynamic.retry_timeout):
            self._warn_lease_timing(new)
        if old.postgresql != new.postgresql:
            self._pg_settings_dirty = True
        self._apply_pg_settings()

    @staticmethod
    def _warn_lease_timing(config: Config) -> None:
        dyn = config.dynamic
        warning = lease.timing_warning(dyn.ttl, dyn.loop_wait, dyn.retry_timeout)
        if warning:
            logger.warning("%s", warning)

    def _apply_pg_settings(self) -> None:
        """Hand changed PostgreSQL settings to the instance; while a background action
        runs this waits for a later cycle, so no change is lost."""
        if not self._pg_settings_dirty or self.executor.busy:
            return
        self._pg_settings_dirty = False
        result = self.pg.update_settings(self.executor.effective_pg_settings())
        logger.info("applied configuration change: %s", result)

    def _reload_local(self) -> None:
        if not self.local_config.path:
            return
        try:
            local, warnings = config_mod.load_config(self.local_config.path)
        except config_mod.ConfigError as exc:
            logger.error("reload refused: %s", exc)
            return
        for warning in warnings:
            logger.warning("%s", warning)
        self.local_config = local
        self._set_config(local.with_dynamic(self._config.dynamic))
        self.executor.callbacks.callbacks = dict(local.postgresql.callbacks)
        if self.pg.reload():
            self.executor.callbacks.fire("on_reload", str(self._status.get("role", "unknown")))

    # -- DCS outage ------------------------------------------------------------------------
    def _on_dcs_error(self, exc: DCSError) -> None:
        self._status = self.outage.handle(exc, self._config, self._cluster, self._dcs_last_seen)

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self) -> None:
        """SIGTERM: stop PostgreSQL, and hand the lock over at once if we held it."""
        self.executor.shutdown(self._cluster, str(self._status.get("role", "unknown")))
        # paused: the leader key stays until it expires (Patroni's Ha.shutdown deletes nothing)
        self._dcs.close(release=not (self._cluster is not None and self._cluster.paused))
