# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""User callbacks (postgresql.callbacks) and the pre_promote fencing hook.

Callbacks run as `COMMAND ACTION ROLE SCOPE` (Patroni's argv), one at a time and in the
order the events happened, on a worker thread: the HA loop never waits for them.
pre_promote runs synchronously before a promotion and can veto it.
"""
from __future__ import annotations

import logging
import queue
import shlex
import subprocess
import threading

logger = logging.getLogger(__name__)
ACTIONS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")
CALLBACK_TIMEOUT = 600.0


def run_command(argv: list[str], timeout: float) -> int:
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        logger.error("%s timed out after %ss", argv[0], timeout)
        return -1
    except OSError as exc:
        logger.error("cannot run %s: %s", argv[0], exc)
        return -1
    for line in (proc.stdout + proc.stderr).splitlines():
        logger.info("%s: %s", argv[0], line)
    return proc.returncode


class CallbackRunner:
    def __init__(self, callbacks: dict[str, str], scope: str) -> None:
        self.callbacks = dict(callbacks)
        self.scope = scope
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def fire(self, action: str, role: str) -> None:
        """Queue `action` if a command is configured for it."""
        if action not in ACTIONS or not self.callbacks.get(action):
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="callbacks", daemon=True)
            self._thread.start()
        self._queue.put((action, role))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            action, role = item
            command = self.callbacks.get(action)
            if command:
                argv = [*shlex.split(command), action, role, self.scope]
                code = run_command(argv, CALLBACK_TIMEOUT)
                logger.info("callback %s %s finished with exit code %s", action, role, code)
            self._queue.task_done()

    def drain(self, timeout: float = 30) -> None:
        """Wait (bounded) for queued callbacks, e.g. on shutdown."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None


def pre_promote_allows(command: str | None, scope: str, timeout: float) -> bool:
    """Run the fencing hook; a non-zero exit (or a failure to run it) vetoes the promotion."""
    if not command:
        return True
    code = run_command([*shlex.split(command), "pre_promote", "primary", scope], timeout)
    if code != 0:
        logger.error("pre_promote script returned %s: not promoting", code)
        return False
    return True
