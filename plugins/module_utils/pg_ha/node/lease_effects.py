# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The side effects tied to the leader lease, once per HA cycle: the watchdog runs while we
hold the lock, the VIP is here while we hold the lock and run as primary. Also their part
in a cycle without the DCS. The HA loop (daemon.py) calls these after the decision was
applied; the rules themselves are in watchdog/loop.py and vip.holds_lease (pure)."""
from __future__ import annotations

from collections.abc import Callable

from ..core.ha import Decision
from ..core.model import Cluster
from ..core.status import CycleFacts
from ..postgresql.query import LocalState
from ..vip import NoVip, VipManager, holds_lease
from ..watchdog import Watchdog
from ..watchdog.loop import Step, after_cycle


def watchdog_step(watchdog: Watchdog, applied: Decision, cluster: Cluster, facts: CycleFacts) -> None:
    """Arm or disarm the watchdog after the decision actually carried out (`applied`)."""
    step = after_cycle(applied, cluster.paused, facts.running, facts.in_recovery)
    if step == Step.ARM:
        watchdog.arm()
    elif step == Step.DISARM:
        watchdog.disarm()


def manage_vip(vip: VipManager | NoVip, decision: Decision, busy: bool,
               state_after: Callable[[], LocalState]) -> None:
    """Every cycle: the VIP is here iff we hold the lease and run as primary (re-added if gone).
    `state_after` reads PostgreSQL's state after the action; called only while we hold the lease."""
    if vip.settings is None:
        return
    if not holds_lease(decision.action.value, busy):
        vip.release("I do not hold the leader lock")
        return
    state = state_after()
    if state.running and state.in_recovery is False:
        vip.acquire()
    else:
        vip.release("PostgreSQL is not running as primary")


def during_outage(watchdog: Watchdog, vip: VipManager | NoVip, consented: bool) -> None:
    """A cycle without the DCS: with every member's consent (failsafe_mode) we are still the
    leader, so the watchdog is kept alive and the VIP stays; otherwise the VIP goes at once."""
    if consented:
        watchdog.keepalive()
    else:
        vip.release("the DCS is not accessible: the leader lease is unknown")
