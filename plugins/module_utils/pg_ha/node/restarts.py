# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""POST/DELETE /restart: restart PostgreSQL now or at a scheduled time, under Patroni's
conditions (role, restart_pending, postgres_version). The REST API thread asks; the HA loop
runs a scheduled restart once it is due (run_due, once per cycle)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .executor import Executor

logger = logging.getLogger("pg_ha")


def postgres_version_to_int(version: str) -> int | None:
    """'9.5.2' -> 90502, '15.4' -> 150004, '15' -> 150000 (server_version_num)."""
    try:
        parts = [int(x) for x in version.strip().split(".")]
    except ValueError:
        return None
    if not parts or len(parts) > 3 or any(p < 0 for p in parts):
        return None
    if parts[0] >= 10:
        return parts[0] * 10000 + (parts[1] if len(parts) > 1 else 0)
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def refusal(status: dict[str, Any], postgres_version: str | None, role: str | None, pending: bool) -> str | None:
    """Why a restart must not run given the published status, or None."""
    if role and role not in (status.get("role"), "any") and \
            not (role in ("master", "primary", "leader") and status.get("role") == "primary"):
        return f"role {status.get('role')} does not match {role}"
    if pending and not status.get("pending_restart"):
        return "no restart pending"
    if postgres_version:
        wanted = postgres_version_to_int(postgres_version)
        if wanted is None:
            return f"invalid postgres_version {postgres_version!r}"
        if int(status.get("server_version") or 0) >= wanted:
            return f"server version is not lower than {postgres_version}"
    return None


class Restarts:
    """One per daemon. `scheduled` is the pending job (published as scheduled_restart)."""

    def __init__(self, pg: Any, executor: Executor, status: Callable[[], dict[str, Any]],
                 wakeup: Callable[[], None]) -> None:
        self._pg = pg
        self._executor = executor
        self._status = status  # the last published GET /patroni body
        self._wakeup = wakeup
        self.scheduled: dict[str, Any] | None = None

    def request(self, scheduled_at: datetime | None, postgres_version: str | None,
                role: str | None, restart_pending: bool, timeout: float | None) -> tuple[int, str]:
        """POST /restart: schedule it, or restart now (blocks until done)."""
        if scheduled_at is not None:
            if self.scheduled is not None:
                return 409, "Another restart is already scheduled"
            job = {"schedule": scheduled_at.isoformat(), "postgres_version": postgres_version,
                   "role": role, "restart_pending": restart_pending or None}
            self.scheduled = {k: v for k, v in job.items() if v is not None}  # as Patroni: only the conditions given
            self._wakeup()
            return 202, "Restart scheduled"
        reason = refusal(self._status(), postgres_version, role, restart_pending)
        if reason:
            return 503, f"restart conditions are not satisfied: {reason}"
        if not self._executor.try_begin("restarting"):
            return 503, f"{self._executor.busy} in progress"
        try:
            ok = self._pg.restart(timeout=timeout or 60)
        finally:
            self._executor.end()
            self._wakeup()
        if ok:
            self._executor.callbacks.fire("on_restart", str(self._status().get("role", "unknown")))
        return (200, "restarted successfully") if ok else (503, "restart failed")

    def cancel(self) -> tuple[int, str]:
        """DELETE /restart."""
        if self.scheduled is None:
            return 404, "no restarts are scheduled"
        self.scheduled = None
        return 200, "scheduled restart cancelled"

    def run_due(self) -> None:
        """The HA loop, every cycle: start the scheduled restart in the background once due."""
        job = self.scheduled
        if job is None or self._executor.busy:
            return
        when = datetime.fromisoformat(job["schedule"])
        if when > datetime.now(UTC):
            return
        self.scheduled = None
        reason = refusal(self._status(), job.get("postgres_version"), job.get("role"),
                         bool(job.get("restart_pending")))
        if reason:
            logger.info("scheduled restart skipped: %s", reason)
            return
        logger.info("running the scheduled restart")
        role = str(self._status().get("role", "unknown"))

        def restart() -> None:
            if self._pg.restart(timeout=60):
                self._executor.callbacks.fire("on_restart", role)
        self._executor.run_async("restarting", restart)
