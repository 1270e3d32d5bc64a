"""The leader lease deadline: its arithmetic (core/lease.py), the guard that enforces it off
the HA loop (node/lease_guard.py, injected clock), the Executor's LEASE_EXPIRED, and the
health answers that follow it (api/health.py, api/handlers.py)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pg_ha.api.handlers import get_health
from pg_ha.api.health import health_status
from pg_ha.api.messages import Request
from pg_ha.core import lease
from pg_ha.core.ha import Action, Decision
from pg_ha.core.model import Cluster, Leader
from pg_ha.node.executor import Executor
from pg_ha.node.lease_guard import LeaseGuard

from tests.fakes import FakeBackend, FakeDCS, make_config, primary_status, replica_status


# -- arithmetic -----------------------------------------------------------------------
@pytest.mark.parametrize(("ttl", "margin", "deadline"), [
    (30, 5.0, 125.0),   # Patroni's defaults: 25 s of the lease, 5 s to stop PostgreSQL
    (20, 5.0, 115.0),
    (10, 2.5, 107.5),   # the integration tests' ttl: a quarter of it
    (4, 1.0, 103.0),
])
def test_deadline_is_sent_time_plus_ttl_minus_margin(ttl: int, margin: float, deadline: float) -> None:
    assert lease.margin(ttl) == margin
    assert lease.deadline(100.0, ttl) == deadline


def test_ahead_and_later() -> None:
    assert lease.ahead(10.0, 9.99) and not lease.ahead(10.0, 10.0) and not lease.ahead(None, 0.0)
    assert lease.later(None, 5.0) == 5.0
    assert lease.later(7.0, 5.0) == 7.0  # a renewal that finished late never moves it back
    assert lease.later(7.0, 9.0) == 9.0


def test_timing_warning() -> None:
    assert lease.timing_warning(30, 10, 10) is None       # 25 > 20
    assert lease.timing_warning(10, 2, 3) is None         # 7.5 > 5
    warning = lease.timing_warning(20, 10, 5)             # 15 <= 15
    assert warning is not None and "raise ttl" in warning


# -- the guard with an injected clock --------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(primary: bool = True) -> tuple[LeaseGuard, Clock, list[str]]:
    clock, fired = Clock(), []
    g = LeaseGuard(lambda: fired.append("expired"), lambda: primary, clock)
    g._ensure_thread = lambda: None  # type: ignore[method-assign] - due() is tested alone here
    return g, clock, fired


def test_guard_due_only_after_the_deadline() -> None:
    g, clock, _ = guard()
    assert not g.due() and not g.ahead() and g.deadline is None  # no lease: nothing to enforce
    g.renewed(1000.0, 10)
    assert g.deadline == 1007.5
    clock.now = 1007.49
    assert g.ahead() and not g.due()
    clock.now = 1007.5
    assert not g.ahead() and g.due()


def test_guard_renewal_moves_the_deadline_and_clear_stops_it() -> None:
    g, clock, _ = guard()
    g.renewed(1000.0, 10)
    clock.now = 1005.0
    g.renewed(1004.0, 10)  # sent at 1004, answered at 1005
    clock.now = 1010.0
    assert g.ahead() and not g.due()
    clock.now = 1011.5
    assert g.due()
    g.clear()
    assert not g.due() and not g.ahead()


def test_guard_not_due_in_pause_or_when_not_primary() -> None:
    g, clock, _ = guard()
    g.renewed(1000.0, 10)
    clock.now = 1020.0
    g.set_paused(True)
    assert not g.due() and not g.ahead()  # Patroni does not demote in pause; /primary still says 503
    g.set_paused(False)
    assert g.due()
    replica, clock2, _ = guard(primary=False)
    replica.renewed(1000.0, 10)
    clock2.now = 1020.0
    assert not replica.due()


def test_guard_thread_fires_while_the_caller_is_blocked() -> None:
    """The real thread and clock: the deadline passes while this thread blocks (as the HA
    loop would in a DCS call); on_expired runs anyway, and again while still primary."""
    fired = threading.Event()
    calls: list[float] = []

    def on_expired() -> None:
        calls.append(time.monotonic())
        if len(calls) >= 2:
            fired.set()
    g = LeaseGuard(on_expired, lambda: True)
    ttl = 10
    sent = time.monotonic() - ttl + lease.margin(ttl) + 0.3  # deadline 0.3 s from now
    g.renewed(sent, ttl)
    try:
        assert fired.wait(5), "the guard did not fire"
        deadline = g.deadline
        assert deadline is not None and calls[0] >= deadline
        assert calls[0] - deadline < 1.0, f"fired {calls[0] - deadline:.2f} s after the deadline"
    finally:
        g.stop()


# -- the Executor ----------------------------------------------------------------------
class FakePg:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = True

    def is_running(self) -> bool:
        return self.running

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool:
        self.calls.append(f"stop:{mode}")
        self.running = False
        return True


def test_refresh_sets_the_deadline_from_the_send_time_and_lease_expired_stops(tmp_path: Path) -> None:
    dcs = FakeDCS("pg0")
    dcs.set_leader("pg0")
    pg = FakePg()
    ex = Executor(make_config("pg0", ttl=30), dcs, pg)  # type: ignore[arg-type]
    before = time.monotonic()
    decision = Decision(Action.UPDATE_LOCK, "no action. I am (pg0), the leader with the lock")
    assert ex.execute(decision, dcs.get_cluster(), 0) is decision
    deadline = ex.lease.deadline
    assert deadline is not None and before + 25 <= deadline <= time.monotonic() + 25
    ex.lease.stop()
    applied = ex.execute(Decision(Action.LEASE_EXPIRED, "lease deadline passed"), Cluster(), 0)
    assert applied.action == Action.LEASE_EXPIRED
    assert pg.calls == ["stop:immediate"]
    assert ex.state.unverified_primary_data and ex.state.stopped_on_purpose


def test_failed_refresh_does_not_move_the_deadline() -> None:
    dcs = FakeDCS("pg0")
    dcs.set_leader("pg1")
    ex = Executor(make_config("pg0"), dcs, FakePg())  # type: ignore[arg-type]
    assert not ex.refresh_lock(Cluster(leader=Leader("pg0", 1)), 0)
    assert ex.lease.deadline is None


def test_runs_primary_from_the_data_directory(tmp_path: Path) -> None:
    config = make_config("pg0")
    config = type(config)(**{**config.__dict__, "postgresql": type(config.postgresql)(
        **{**config.postgresql.__dict__, "data_dir": str(tmp_path)})})
    pg = FakePg()
    ex = Executor(config, FakeDCS("pg0"), pg)  # type: ignore[arg-type]
    (tmp_path / "PG_VERSION").write_text("15\n")
    assert ex._runs_primary()
    (tmp_path / "standby.signal").write_text("")
    assert not ex._runs_primary()
    ex.try_begin("promoting")
    assert ex._runs_primary()  # a promotion under way is stopped too
    pg.running = False
    assert not ex._runs_primary()


# -- health --------------------------------------------------------------------------
def leader_cluster() -> Cluster:
    return Cluster(leader=Leader("pg0", 2))


@pytest.mark.parametrize("path", ["/", "/primary", "/master", "/read-write", "/leader", "/read-only"])
def test_primary_paths_answer_503_after_the_deadline(path: str) -> None:
    config = make_config("pg0")
    status = primary_status(config)
    assert health_status(path, {}, status, leader_cluster(), config, lease_ahead=True)[0] == 200
    assert health_status(path, {}, status, leader_cluster(), config, lease_ahead=False)[0] == 503


def test_replica_and_standby_leader_do_not_depend_on_the_deadline() -> None:
    config = make_config("pg1")
    replica = replica_status(config)
    assert health_status("/replica", {}, replica, leader_cluster(), config, lease_ahead=False)[0] == 200
    standby_leader: dict[str, Any] = {**replica_status(make_config("pg0")), "role": "standby_leader"}
    assert health_status("/standby-leader", {}, standby_leader, leader_cluster(), make_config("pg0"),
                         lease_ahead=False)[0] == 200


def test_paused_without_snapshot_trusts_the_local_role_as_before() -> None:
    config = make_config("pg0")
    status = {**primary_status(config), "pause": True}
    assert health_status("/primary", {}, status, None, config, lease_ahead=False)[0] == 200


@pytest.mark.parametrize(("until", "code"), [(float("inf"), 200), (None, 503), (-1.0, 503)])
def test_handler_reads_the_deadline_from_the_backend(until: float | None, code: int) -> None:
    dcs = FakeDCS("pg0")
    dcs.set_leader("pg0")
    backend = FakeBackend(dcs)
    backend.lease_until = until
    assert get_health(backend, Request("GET", "/primary")).code == code  # type: ignore[arg-type]
