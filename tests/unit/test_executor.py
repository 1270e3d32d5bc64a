"""Executor: DCS outcomes pick the applied decision; the node state follows role changes."""
from __future__ import annotations

from typing import Any

from pg_ha.core.ha import Action, Decision
from pg_ha.node.executor import Executor

from tests.fakes import FakeDCS, make_config


class FakePg:
    def __init__(self, in_recovery: bool = True) -> None:
        self.calls: list[str] = []
        self.in_recovery = in_recovery

    def is_running(self) -> bool:
        return True

    def promote(self, timeout: float = 30) -> bool:
        self.calls.append("promote")
        self.in_recovery = False
        return True

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool:
        self.calls.append(f"stop:{mode}")
        return True

    def state(self) -> Any:
        return type("S", (), {"in_recovery": self.in_recovery})()

    def local_timeline_lsn(self) -> tuple[int, int]:
        return 1, 1234


def executor(name: str = "pg0", leader: str | None = None,
             in_recovery: bool = True) -> tuple[Executor, FakeDCS, FakePg]:
    dcs = FakeDCS(name=name)
    if leader:
        dcs.set_leader(leader)
    pg = FakePg(in_recovery)
    return Executor(make_config(name), dcs, pg), dcs, pg  # type: ignore[arg-type]


ACQUIRE = Decision(Action.ACQUIRE, "promoted self to leader by acquiring session lock",
                   on_failure=Decision(Action.NOOP, "failed to acquire the leader lock: another member won"))


def test_acquire_won_promotes_and_logs_success() -> None:
    ex, dcs, pg = executor()
    applied = ex.execute(ACQUIRE, dcs.get_cluster(), 0)
    assert applied is ACQUIRE
    ex.join(5)  # pg_ctl promote runs in the background
    assert pg.calls == ["promote"]
    assert dcs.get_cluster().leader.name == "pg0"


def test_acquire_lost_applies_the_fallback_and_does_not_promote() -> None:
    ex, dcs, pg = executor(leader="pg1")
    cluster_without_leader = dcs.get_cluster().__class__()  # we decided on an older snapshot
    applied = ex.execute(ACQUIRE, cluster_without_leader, 0)
    assert applied.message == "failed to acquire the leader lock: another member won"
    assert pg.calls == []


def test_refresh_failure_demotes() -> None:
    ex, dcs, pg = executor(name="pg0", leader="pg0", in_recovery=False)
    cluster = dcs.get_cluster()
    dcs.set_leader("pg1")  # someone else took it meanwhile
    decision = Decision(Action.UPDATE_LOCK, "no action. I am (pg0), the leader with the lock",
                        on_failure=Decision(Action.DEMOTE, "failed to update leader lock: demoting self (pg0)"))
    applied = ex.execute(decision, cluster, 100)
    assert applied.action == Action.DEMOTE
    assert pg.calls == ["stop:immediate"]
    assert ex.state.unverified_primary_data is True


def test_refresh_lock_required_before_acting() -> None:
    ex, dcs, pg = executor(name="pg0", leader="pg1")
    decision = Decision(Action.PROMOTE, "promoted self to leader because I had the session lock", refresh_lock=True)
    applied = ex.execute(decision, dcs.get_cluster(), 0)
    assert applied.action == Action.NOOP and "failed to update leader lock" in applied.message
    assert pg.calls == []


def test_switchover_releases_the_lock_after_a_clean_stop() -> None:
    ex, dcs, pg = executor(name="pg0", leader="pg0", in_recovery=False)
    applied = ex.execute(Decision(Action.SWITCHOVER, "manual failover: demoting myself", target="pg1"),
                         dcs.get_cluster(), 0)
    assert applied.action == Action.SWITCHOVER
    assert pg.calls == ["stop:fast"]
    assert dcs.get_cluster().leader is None
