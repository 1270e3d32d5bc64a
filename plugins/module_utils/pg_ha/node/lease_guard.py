# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leader lease deadline, enforced off the HA loop thread.

The Executor tells the guard when a renewal of the leader key succeeded (and when it was
sent), when the members consented in a DCS outage (failsafe_mode), and when this node no
longer leads. A small thread of its own waits for the deadline (core/lease.py); once it has
passed without a renewal it calls `on_expired` whenever `is_primary()` (every POLL seconds
until the deadline moves or the guard is cleared), whatever the HA loop is doing: blocked in
a DCS request, a promotion, a restart. `on_expired` is the Executor's LEASE_EXPIRED action.

In maintenance mode (pause) nothing is done: Patroni does not demote then either; /primary
still answers from the deadline (api/health.py)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..core import lease

logger = logging.getLogger("pg_ha")

POLL = 0.2  # seconds between checks once the deadline has passed


class LeaseGuard:
    def __init__(self, on_expired: Callable[[], None], is_primary: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_expired = on_expired
        self._is_primary = is_primary
        self._clock = clock
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._paused = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- what the Executor tells ------------------------------------------------------
    def renewed(self, sent_at: float, ttl: float) -> None:
        """A renewal sent at `sent_at` (monotonic) succeeded, or every member consented."""
        with self._cond:
            self._deadline = lease.later(self._deadline, lease.deadline(sent_at, ttl))
            self._cond.notify_all()
        self._ensure_thread()

    def clear(self) -> None:
        """We no longer lead (demoted, lock released or handed over, replica)."""
        with self._cond:
            self._deadline = None
            self._cond.notify_all()

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = paused

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (waits up to `timeout` for it unless called from it)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- what others read ---------------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        return self._deadline

    def ahead(self) -> bool:
        return lease.ahead(self._deadline, self._clock())

    def due(self) -> bool:
        """The deadline passed, we still run a primary, and we are not in pause: demote now."""
        with self._cond:
            expired = self._deadline is not None and not lease.ahead(self._deadline, self._clock())
            paused = self._paused
        return expired and not paused and self._is_primary()

    # -- the thread -------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopped:
                return
            self._thread = threading.Thread(target=self._run, name="lease-guard", daemon=True)
        self._thread.start()

    def _wait(self) -> bool:
        """Until the deadline (or POLL after it); False once stopped."""
        with self._cond:
            if self._stopped:
                return False
            if self._deadline is None:
                self._cond.wait()
            else:
                left = self._deadline - self._clock()
                self._cond.wait(left if left > 0 else POLL)
            return not self._stopped

    def _run(self) -> None:
        while self._wait():
            try:
                if self.due():
                    self._on_expired()
            except Exception:  # noqa: BLE001 - the guard must outlive one failed demotion
                logger.exception("the leader lease guard failed to demote")
