"""POST/DELETE /restart (restarts.py): Patroni's conditions, restart now, schedule, cancel,
and the HA loop running a scheduled restart once it is due."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pg_ha.node.executor import Executor
from pg_ha.node.restarts import Restarts, refusal

from tests.fakes import FakeDCS, make_config

PRIMARY = {"role": "primary", "server_version": 150004, "pending_restart": True}
REPLICA = {"role": "replica", "server_version": 150004}


@pytest.mark.parametrize("status, version, role, pending, reason", [
    (PRIMARY, None, None, False, None),
    (PRIMARY, None, "primary", True, None),
    (PRIMARY, None, "master", False, None),       # Patroni's old name for the primary
    (PRIMARY, None, "leader", False, None),
    (PRIMARY, None, "any", False, None),
    (REPLICA, None, "replica", False, None),
    (REPLICA, None, "primary", False, "role replica does not match primary"),
    (PRIMARY, None, "replica", False, "role primary does not match replica"),
    (REPLICA, None, None, True, "no restart pending"),
    (PRIMARY, "16", None, False, None),
    (PRIMARY, "15.4", None, False, "server version is not lower than 15.4"),
    (PRIMARY, "15.x", None, False, "invalid postgres_version '15.x'"),
])
def test_refusal(status: dict[str, Any], version: str | None, role: str | None, pending: bool,
                 reason: str | None) -> None:
    assert refusal(status, version, role, pending) == reason


class FakePg:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.restarts: list[float] = []
        self.done = threading.Event()

    def restart(self, timeout: float = 60) -> bool:
        self.restarts.append(timeout)
        self.done.set()
        return self.ok


def setup(status: dict[str, Any], ok: bool = True) -> tuple[Restarts, Executor, FakePg, list[str]]:
    pg = FakePg(ok)
    executor = Executor(make_config("pg0"), FakeDCS(name="pg0"), pg)  # type: ignore[arg-type]
    woken: list[str] = []
    return Restarts(pg, executor, lambda: status, lambda: woken.append("wakeup")), executor, pg, woken


def test_restart_now_blocks_and_wakes_the_loop() -> None:
    restarts, executor, pg, woken = setup(PRIMARY)
    assert restarts.request(None, None, None, False, 7.0) == (200, "restarted successfully")
    assert pg.restarts == [7.0] and woken == ["wakeup"] and executor.busy is None
    assert setup(PRIMARY, ok=False)[0].request(None, None, None, False, None) == (503, "restart failed")


def test_restart_now_refused_or_busy_does_not_restart() -> None:
    restarts, executor, pg, _ = setup(REPLICA)
    assert restarts.request(None, None, "primary", False, None) == \
        (503, "restart conditions are not satisfied: role replica does not match primary")
    assert executor.try_begin("creating replica")
    assert restarts.request(None, None, None, False, None) == (503, "creating replica in progress")
    assert pg.restarts == []


def test_schedule_once_then_cancel() -> None:
    restarts, _, pg, woken = setup(PRIMARY)
    when = datetime.now(UTC) + timedelta(hours=1)
    assert restarts.request(when, "16", "primary", True, None) == (202, "Restart scheduled")
    assert restarts.scheduled == {"schedule": when.isoformat(), "postgres_version": "16", "role": "primary",
                                  "restart_pending": True}
    assert restarts.request(when, None, None, False, None) == (409, "Another restart is already scheduled")
    restarts.run_due()  # not due yet
    assert pg.restarts == [] and restarts.scheduled is not None and woken == ["wakeup"]
    assert restarts.cancel() == (200, "scheduled restart cancelled")
    assert restarts.scheduled is None
    assert restarts.cancel() == (404, "no restarts are scheduled")
    assert restarts.request(when, None, None, False, None) == (202, "Restart scheduled")
    assert restarts.scheduled == {"schedule": when.isoformat()}  # conditions not given are not published (Patroni)


def test_a_due_restart_runs_in_the_background() -> None:
    restarts, executor, pg, _ = setup(PRIMARY)
    restarts.request(datetime.now(UTC) - timedelta(seconds=1), None, "primary", False, None)
    restarts.run_due()
    assert restarts.scheduled is None
    assert pg.done.wait(10)
    executor.join(10)
    assert pg.restarts == [60] and executor.busy is None


def test_a_due_restart_waits_for_a_busy_executor_and_is_dropped_when_refused() -> None:
    restarts, executor, pg, _ = setup(REPLICA)
    restarts.request(datetime.now(UTC) - timedelta(seconds=1), None, "primary", False, None)
    assert executor.try_begin("restarting")
    restarts.run_due()
    assert restarts.scheduled is not None  # kept for a later cycle
    executor.end()
    restarts.run_due()
    assert restarts.scheduled is None and pg.restarts == []  # role replica does not match primary
