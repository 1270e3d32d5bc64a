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


class RecordingPg(FakePg):
    """Records what start() and follow() are given: the recovery settings written."""

    def __init__(self) -> None:
        super().__init__(in_recovery=True)
        self.started: list[tuple[Any, Any]] = []
        self.followed: list[tuple[Any, Any]] = []

    def conninfo_for(self, url: str) -> dict[str, Any]:
        return {"host": url}

    @staticmethod
    def slot_name_for(name: str) -> str:
        return name

    def start(self, role: str, conninfo: Any = None, slot: Any = None, **_: Any) -> bool:
        self.started.append((conninfo, slot))
        return True

    def follow(self, conninfo: Any, slot: Any = None, **_: Any) -> bool:
        self.followed.append((conninfo, slot))
        return True


def nostream_executor(nostream: bool) -> tuple[Executor, FakeDCS, RecordingPg]:
    from pg_ha.config.settings import PostgresqlSettings

    dcs = FakeDCS(name="pg1")
    dcs.set_leader("pg0")
    dcs.set_member("pg0", conn_url="postgres://pg0:5432/postgres")
    config = make_config("pg1", tags={"nostream": nostream} if nostream else None)
    assert isinstance(config.postgresql, PostgresqlSettings) and config.postgresql.use_slots
    pg = RecordingPg()
    return Executor(config, dcs, pg), dcs, pg  # type: ignore[arg-type]


def test_a_nostream_replica_starts_and_follows_without_primary_conninfo_or_slot() -> None:
    ex, dcs, pg = nostream_executor(True)
    assert ex.start_replica(dcs.get_cluster(), "pg0")
    assert pg.started == [(None, None)] and ex.state.upstream == "pg0"  # follows pg0 through the archive
    follow = Decision(Action.FOLLOW, "following new leader (pg0)", target="pg0")
    assert ex.execute(follow, dcs.get_cluster(), 0) is follow
    assert pg.followed == [(None, None)]
    gone = Decision(Action.FOLLOW, "following new leader (pgX)", target="pgX")  # not a member
    ex.execute(gone, dcs.get_cluster(), 0)
    assert pg.followed == [(None, None)] and ex.state.upstream == "pg0"


def test_a_streaming_replica_starts_with_primary_conninfo_and_its_slot() -> None:
    ex, dcs, pg = nostream_executor(False)
    assert ex.start_replica(dcs.get_cluster(), "pg0")
    assert pg.started == [({"host": "postgres://pg0:5432/postgres"}, "pg1")] and ex.state.upstream == "pg0"


class Fired:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def fire(self, action: str, role: str) -> None:
        self.calls.append((action, role))


RELEASE = Decision(Action.RELEASE_LOCK, "removed leader key after trying and failing to start postgres")


def test_releasing_the_lock_after_a_failed_primary_start_reports_demoted_then_replica() -> None:
    from pg_ha.node.state import NodeState

    ex, dcs, pg = executor(in_recovery=False)
    assert dcs.attempt_to_acquire_leader()
    ex.callbacks = Fired()  # type: ignore[assignment]
    ex.note_role("primary")
    ex._become(NodeState.primary_did_not_start)  # what the start handler records
    assert ex.execute(RELEASE, dcs.get_cluster(), 0) is RELEASE and dcs.get_cluster().leader is None
    assert ex.callbacks.calls == [("on_role_change", "demoted")]  # type: ignore[attr-defined]
    ex.note_role("replica")  # started again as a replica
    assert ex.callbacks.calls[-1] == ("on_role_change", "replica")  # type: ignore[attr-defined]


def test_releasing_the_lock_for_a_failover_without_a_failed_start_reports_nothing() -> None:
    ex, dcs, pg = executor(in_recovery=False)
    assert dcs.attempt_to_acquire_leader()
    ex.callbacks = Fired()  # type: ignore[assignment]
    crashed = Decision(Action.RELEASE_LOCK, "Primary crashed. Failing over.")
    assert ex.execute(crashed, dcs.get_cluster(), 0) is crashed and dcs.get_cluster().leader is None
    assert ex.callbacks.calls == []  # type: ignore[attr-defined]
