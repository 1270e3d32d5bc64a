# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One long step at a time (initdb, basebackup, rewind, start) in a background thread;
while it runs the node is `busy` and the HA loop keeps refreshing the lease instead of
deciding anything new."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("pg_ha.node.executor")


class BackgroundWork:
    """The Executor's background thread and its `busy` marker."""

    def __init__(self) -> None:
        self._busy: str | None = None
        self._busy_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.on_done: Callable[[], None] = lambda: None  # wakes the loop after a background step

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
