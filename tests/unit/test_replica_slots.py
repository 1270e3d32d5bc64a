"""A replica's physical slots (those Patroni leaves on its replicas) follow the replayed
position and never pin WAL; other slots and active ones are left alone."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pg_ha.core.ha import Action, Decision
from pg_ha.node.replica_slots import ReplicaSlots, managed_slot_names
from pg_ha.postgresql import slots

from tests.fakes import FakeDCS, make_config


class FakeDb:
    """Answers the two reads of advance_replica_slots and records the advances."""

    def __init__(self, in_recovery: bool, replay: int | None, rows: list[tuple[str, bool, int | None]],
                 fail: set[str] | None = None) -> None:
        self.in_recovery = in_recovery
        self.replay = replay
        self.rows = rows
        self.fail = fail or set()
        self.advanced: list[str] = []

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        if "pg_replication_slot_advance" in sql:
            if params[0] in self.fail:
                raise RuntimeError("boom")
            self.advanced.append(params[0])
            return [("x", "0/0")]
        if "pg_is_in_recovery" in sql:
            return [(self.in_recovery, self.replay)]
        assert "pg_replication_slots" in sql and "physical" in sql
        return list(self.rows)


def test_lagging_replica_slots_are_the_inactive_managed_ones_behind_replay() -> None:
    rows = [("pg_1", False, 100), ("pg_2", True, 100), ("mine", False, 100), ("pg_3", False, 500),
            ("pg_4", False, None), ("perm", False, 10)]
    assert slots.lagging_replica_slots(rows, 500, {"pg_1", "pg_2", "pg_3", "pg_4", "perm"}) == ["perm", "pg_1"]


def test_advance_replica_slots_moves_patroni_member_slots_to_the_replay_position() -> None:
    db = FakeDb(True, 900, [("pg_0", False, 10), ("pg_2", False, 20), ("backup_tool", False, 5),
                            ("pg_3", True, 1)])
    assert slots.advance_replica_slots(db, {"pg-0", "pg-2", "pg-3"}) == ["pg_0", "pg_2"]  # type: ignore[arg-type]
    assert db.advanced == ["pg_0", "pg_2"]


def test_advance_replica_slots_does_nothing_on_a_primary_and_survives_errors() -> None:
    primary = FakeDb(False, None, [("pg_0", False, 10)])
    assert slots.advance_replica_slots(primary, {"pg_0"}) == []  # type: ignore[arg-type]
    assert primary.advanced == []
    failing = FakeDb(True, 900, [("pg_0", False, 10), ("pg_1", False, 10)], fail={"pg_0"})
    assert slots.advance_replica_slots(failing, {"pg_0", "pg_1"}) == ["pg_1"]  # type: ignore[arg-type]


def test_managed_slot_names_skip_me_cascading_members_and_logical_slots() -> None:
    dcs = FakeDCS(name="pg1")
    dcs.set_member("pg0", role="primary")
    dcs.set_member("pg1")
    dcs.set_member("pg2")
    dcs.set_member("pg3", tags={"replicatefrom": "pg1"})
    dcs.set_leader("pg0")
    permanent = {"keep_phys": {"type": "physical"}, "plain": {}, "cdc": {"type": "logical", "database": "d",
                                                                         "plugin": "pgoutput"}}
    assert managed_slot_names(dcs.get_cluster(), "pg1", permanent) == {"pg0", "pg2", "keep_phys", "plain"}


def test_replica_slots_announce_each_slot_once(caplog: Any) -> None:
    calls: list[set[str]] = []

    def advance(names: set[str]) -> list[str]:
        calls.append(names)
        return ["pg0"]
    dcs = FakeDCS(name="pg1")
    dcs.set_member("pg0", role="primary")
    dcs.set_leader("pg0")
    keeper = ReplicaSlots(SimpleNamespace(advance_replica_slots=advance))
    with caplog.at_level("INFO", logger="pg_ha"):
        keeper.run(dcs.get_cluster(), "pg1", {})
        keeper.run(dcs.get_cluster(), "pg1", {})
    assert calls == [{"pg0"}, {"pg0"}]
    assert sum("replication slot pg0" in r.getMessage() for r in caplog.records) == 1


def test_the_daemon_keeps_slots_only_as_an_idle_replica_of_another_leader() -> None:
    from pg_ha.node.daemon import Daemon

    dcs = FakeDCS(name="pg1")
    dcs.set_member("pg0", role="primary")
    dcs.set_leader("pg0")
    d = Daemon(make_config("pg1"), dcs, SimpleNamespace(data_dir_empty=lambda: False))
    cluster = dcs.get_cluster()
    noop = Decision(Action.NOOP, "no action")
    d._cycle_state = SimpleNamespace(running=True, in_recovery=True)  # type: ignore[assignment]
    assert d._is_idle_replica(noop, cluster)
    assert not d._is_idle_replica(Decision(Action.FOLLOW, "follow"), cluster)
    d._cycle_state = SimpleNamespace(running=True, in_recovery=False)  # type: ignore[assignment]
    assert not d._is_idle_replica(noop, cluster)
    d._cycle_state = SimpleNamespace(running=True, in_recovery=True)  # type: ignore[assignment]
    dcs.set_leader("pg1")  # a standby leader holds the lock: its slots are the leader's business
    assert not d._is_idle_replica(noop, dcs.get_cluster())
