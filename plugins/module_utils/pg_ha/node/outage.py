# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HA cycle in which the DCS could not be read (any DCSError): decide with the
failsafe rules (ask the members when failsafe_mode is on), keep or drop the lease's side
effects, have the Executor demote a primary that has no consent, and publish what we
still know."""
from __future__ import annotations

import logging
import time
from typing import Any

from ..config.settings import Config
from ..core.failsafe import OutageView
from ..core.ha import Action, Decision
from ..core.model import Cluster
from ..core.status import CycleFacts, patroni_status
from ..dcs.base import DCSError
from ..watchdog import Watchdog
from . import lease_effects
from .executor import Executor
from .failsafe_keeper import FailsafeKeeper

logger = logging.getLogger("pg_ha")


class OutagePath:
    """One per daemon; :meth:`handle` runs one cycle without the DCS."""

    def __init__(self, pg: Any, executor: Executor, watchdog: Watchdog, failsafe: FailsafeKeeper) -> None:
        self._pg = pg
        self._executor = executor
        self._watchdog = watchdog
        self._failsafe = failsafe

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
        decision = self._failsafe.decide(view, config, config.postgresql.conn_url, state.wal_lsn or 0)
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
        if self._failsafe.is_active(config.dynamic.ttl):
            status["failsafe_mode_is_active"] = True
        return status
