# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the HA loop does with the watchdog after a cycle's decision was applied. Pure."""
from __future__ import annotations

import enum

from ..core.ha import Action, Decision


class Step(enum.StrEnum):
    ARM = "arm"          # we hold the leader lock: the watchdog must run (kept alive by the refresh)
    DISARM = "disarm"    # not a primary (or paused): stop the watchdog
    KEEP = "keep"        # a primary whose lock was not refreshed: no keepalive, let it run down


_HOLDS_LOCK = (Action.UPDATE_LOCK, Action.PROMOTE, Action.ACQUIRE)
_GAVE_UP = (Action.DEMOTE, Action.SWITCHOVER, Action.RELEASE_LOCK)


def after_cycle(applied: Decision, paused: bool, running: bool, in_recovery: bool) -> Step:
    """`applied` is the decision actually carried out (its on_failure when the DCS said no);
    running/in_recovery describe PostgreSQL before it was carried out."""
    if paused:
        return Step.DISARM
    if applied.action in _HOLDS_LOCK or applied.refresh_lock and applied.action not in _GAVE_UP:
        return Step.ARM
    if applied.action in _GAVE_UP or not running or in_recovery:
        return Step.DISARM
    return Step.KEEP
