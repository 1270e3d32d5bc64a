# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HA cycle in which the DCS could not be read (any DCSError): decide with the
failsafe rules (ask the members when failsafe_mode is on), keep or drop the lease's side
effects, have the Executor demote a primary that has no consent, and publish what we
still know."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from ..config.settings import Config
from ..core import slots as slot_rules
from ..core.failsafe import OutageView
from ..core.ha import Action, Decision
from ..core.model import Cluster
from ..core.status import CycleFacts, patroni_status
from ..dcs.base import DCSError
from ..watchdog import Watchdog
from . import lease_effects
from .executor import Executor
from .failsafe_keeper import FailsafeKeeper
from .permanent_slots import ReplicaSlots, advance_cascading_slots, to_local, wanted_here

logger = logging.getLogger("pg_ha")


class OutagePath:
    """One per daemon; :meth:`handle` runs one cycle without the DCS."""

    def __init__(self, pg: Any, executor: Executor, watchdog: Watchdog, failsafe: FailsafeKeeper,
                 replica_slots: ReplicaSlots | None = None) -> None:
        self._pg = pg
        self._executor = executor
        self._watchdog = watchdog
        self._failsafe = failsafe
        self._slots = replica_slots

    def _slot_positions(self) -> dict[str, int] | None:
        """{slot: position} of every slot here (Patroni's slots()), None when unreadable."""
        try:
            return {n: s.lsn for n, s in to_local(self._pg.local_slots()).items() if s.lsn}
        except Exception as exc:  # noqa: BLE001 - the call goes out without positions
            logger.warning("failsafe: could not read the replication slots: %s", exc)
            return None

    def _advance_cascading_slots(self, config: Config, known: Cluster) -> None:
        """A primary running on the members' consent: the idle slots of members that cascade
        from others follow the positions those members answered with (Patroni), so pg_wal does
        not grow while the DCS is down."""
        lsns = self._failsafe.member_lsns
        members = tuple(replace(m, data={**m.data, "xlog_location": lsns[m.name]})
                        if m.tags.get("replicatefrom") and m.name in lsns else m for m in known.members)
        cluster = replace(known, members=members)
        try:
            local = to_local(self._pg.local_slots())
        except Exception as exc:  # noqa: BLE001 - retried next cycle
            logger.warning("failsafe: could not read the replication slots: %s", exc)
            return
        names = {self._pg.slot_name_for(n) for n in
                 slot_rules.leader_member_names(cluster, config.name,
                                                member_slots_ttl=config.dynamic.member_slots_ttl)}
        advance_cascading_slots(self._pg, wanted_here(config, cluster), cluster, config.name, local, names)

    def _replica_slots(self, config: Config, known: Cluster | None, state: Any) -> None:
        """A running replica that a primary keeps calling (failsafe_mode): advance the copies of
        the permanent slots to the positions it sent, as if they came from the status key; no
        copy from the primary while the DCS is down (Patroni)."""
        if self._slots is None or not config.dynamic.failsafe_mode or not state.running or not state.in_recovery:
            return
        cluster = self._failsafe.cluster_with_slots(known, config.dynamic.ttl)
        if cluster is not None:
            self._slots.run(config, cluster, state.replay_lsn, copy=False)

    def handle(self, exc: DCSError, config: Config, known: Cluster | None, dcs_last_seen: int) -> dict[str, Any]:
        """`known` is the last cluster read; returns the GET /patroni body to publish."""
        logger.error("Error communicating with DCS: %s", exc)
        pg, executor = self._pg, self._executor
        state = pg.state()
        view = OutageView(name=config.name, failsafe_mode=config.dynamic.failsafe_mode,
                          paused=bool(known and known.paused), running=state.running,
                          in_recovery=state.in_recovery, busy=executor.busy,
                          known_topology=self._failsafe.topology)
        asked_at = time.monotonic()
        decision = self._failsafe.decide(view, config, config.postgresql.conn_url, state.wal_lsn or 0,
                                         self._slot_positions if config.postgresql.use_slots else lambda: None)
        if decision.consented:  # the members' consent moves the lease deadline (core/lease.py)
            executor.lease_consented(asked_at)
        logger.info("%s", decision.message)
        lease_effects.during_outage(self._watchdog, executor.vip, decision.consented)
        if decision.action == Action.DEMOTE_OFFLINE:
            executor.execute(Decision(decision.action, decision.message), known or Cluster(), state.wal_lsn or 0)
        elif not state.running or state.in_recovery:
            self._watchdog.disarm()
        facts = CycleFacts(running=state.running, in_recovery=state.in_recovery, wal_lsn=state.wal_lsn or 0,
                           timeline=state.timeline, dcs_last_seen=dcs_last_seen,
                           server_version=state.server_version, busy=executor.busy)
        status = patroni_status(config, facts)
        self._replica_slots(config, known, state)
        if decision.consented and known is not None and config.postgresql.use_slots:
            self._advance_cascading_slots(config, known)
        if self._failsafe.is_active(config.dynamic.ttl):
            status["failsafe_mode_is_active"] = True
        return status
