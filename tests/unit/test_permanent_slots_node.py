"""node/permanent_slots.py with a fake PostgreSQL: what a replica and the leader do with
their slots in one cycle (the rules themselves are in test_permanent_slots.py)."""
from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from pg_ha.config.load import build_config
from pg_ha.core.ha import Action, Decision
from pg_ha.core.model import Cluster, ClusterConfig, Leader, Member
from pg_ha.node import permanent_slots
from pg_ha.node.leader_housekeeping import LeaderHousekeeping
from pg_ha.postgresql import slots as pg_slots

from tests.fakes import FakeDCS, make_config

SLOTS = {"cdc": {"type": "logical", "database": "db", "plugin": "test_decoding"}, "archive": None}


def config(name: str = "pg-1", **dynamic: Any):
    raw = {"scope": "s", "name": name, "etcd3": {"hosts": ["127.0.0.1:2379"]},
           "restapi": {"listen": "127.0.0.1:8008"},
           "postgresql": {"listen": "127.0.0.1:5432", "data_dir": "/tmp/x", "bin_dir": "/usr/bin"},
           "bootstrap": {"dcs": {"slots": SLOTS, **dynamic}}}
    return build_config(raw)[0]


def cluster(status: dict | None = None, leader: str = "pg-0") -> Cluster:
    members = tuple(Member.from_value(n, 1, json.dumps({"conn_url": f"postgres://127.0.0.1:{p}/postgres"}))
                    for n, p in (("pg-0", 5432), ("pg-1", 5433)))
    return Cluster(initialize="1", leader=Leader(leader, 1, None), members=members, status=status)


class FakePg:
    def __init__(self, slots: dict[str, dict[str, Any]]) -> None:
        self.slots = slots
        self.calls: list[tuple[Any, ...]] = []
        self.advanced = threading.Event()
        self.failing: set[str] = set()  # advance_physical_slot fails (logged) for these

    @staticmethod
    def slot_name_for(member: str) -> str:
        return member.replace("-", "_")

    def local_slots(self) -> dict[str, dict[str, Any]]:
        return self.slots

    def drop_slot(self, name: str) -> bool:
        self.calls.append(("drop", name))
        return True

    def create_physical_slot(self, name: str) -> None:
        self.calls.append(("create", name))

    def advance_physical_slot(self, name: str, lsn: int) -> bool:
        if name in self.failing:
            return False
        self.calls.append(("advance_physical", name, lsn))
        return True

    def advance_logical_slots(self, database: str, slots: dict[str, int]) -> list[str]:
        self.calls.append(("advance_logical", database, dict(slots)))
        self.advanced.set()
        return []

    def leader_admin_conninfo(self, url: str) -> dict[str, str]:
        return {"url": url}

    def primary_slot_states(self, kwargs: dict[str, str], names: list[str]) -> dict[str, dict[str, Any]]:
        self.calls.append(("read_states", kwargs["url"], tuple(names)))
        return {n: {"type": "logical", "database": "db", "plugin": "test_decoding", "data": b"state"} for n in names}

    def primary_catalog_xmins(self, kwargs: dict[str, str], names: list[str]) -> dict[str, int | None]:
        return {}

    def sync_replication_slots(self, names: set[str], in_recovery_ok: bool = False,
                               keep: frozenset[str] = frozenset()) -> None:
        self.calls.append(("sync", frozenset(names), keep))

    def ensure_logical_slots(self, wanted: dict[str, tuple[str, str]]) -> None:
        self.calls.append(("ensure_logical", dict(wanted)))


class FakeExecutor:
    busy = None

    def __init__(self) -> None:
        self.copied: list[dict[str, bytes]] = []

    def copy_logical_slots(self, cluster: Cluster, files: dict[str, bytes]) -> bool:
        self.copied.append(dict(files))
        return True


def slot(kind: str, lsn: int, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "database": kw.get("database"), "plugin": kw.get("plugin"), "active": False, "lsn": lsn,
            "xmin": kw.get("xmin"), "catalog_xmin": None, "wal_status": "reserved"}


def test_replica_copies_a_missing_logical_slot_through_the_executor() -> None:
    pg, executor = FakePg({}), FakeExecutor()
    keeper = permanent_slots.ReplicaSlots(pg, executor)
    keeper.run(config(), cluster({"optime": 900, "slots": {"cdc": 500, "archive": 400}}), 900)
    assert ("read_states", "postgres://127.0.0.1:5432/postgres", ("cdc",)) in pg.calls
    assert executor.copied == [{"cdc": b"state"}]
    assert ("create", "archive") in pg.calls and ("create", "pg_0") in pg.calls
    assert keeper.pending == {"cdc": None}


def test_replica_advances_its_copy_and_drops_unknown_slots() -> None:
    pg = FakePg({"cdc": slot("logical", 200, database="db", plugin="test_decoding"),
                 "archive": slot("physical", 100), "pg_0": slot("physical", 100), "junk": slot("physical", 5)})
    keeper = permanent_slots.ReplicaSlots(pg, FakeExecutor())
    keeper.run(config(), cluster({"optime": 900, "slots": {"cdc": 500, "archive": 400, "pg_0": 900}}), 800)
    assert pg.advanced.wait(5)
    assert ("advance_logical", "db", {"cdc": 500}) in pg.calls
    assert ("advance_physical", "archive", 400) in pg.calls and ("advance_physical", "pg_0", 900) in pg.calls
    assert ("drop", "junk") in pg.calls


def test_nothing_on_the_leader_or_while_the_executor_is_busy() -> None:
    pg = FakePg({})
    permanent_slots.ReplicaSlots(pg, FakeExecutor()).run(config(), cluster(leader="pg-1"), 0)
    busy = FakeExecutor()
    busy.busy = "starting"
    permanent_slots.ReplicaSlots(pg, busy).run(config(), cluster(), 0)
    assert pg.calls == []


class FakeDcs:
    def __init__(self) -> None:
        self.status: list[dict[str, Any]] = []

    def write_status(self, value: dict[str, Any]) -> bool:
        self.status.append(value)
        return True


def test_new_leader_keeps_the_retained_slots_and_publishes_the_status_key() -> None:
    pg = FakePg({"cdc": slot("logical", 500, database="db", plugin="test_decoding"),
                 "archive": slot("physical", 300), "pg_1": slot("physical", 700),
                 "user_made": slot("logical", 100, database="db", plugin="wal2json")})
    dcs = FakeDcs()
    housekeeping = LeaderHousekeeping(dcs, pg, None, None)  # type: ignore[arg-type]
    c = Cluster(initialize="1", leader=Leader("pg-0", 1, None),
                members=(Member.from_value("pg-0", 1, "{}"),),
                status={"optime": 800, "retain_slots": ["pg_0", "pg_1"]})
    housekeeping.took_over(c)
    cfg = config("pg-0")
    local = permanent_slots.to_local(pg.local_slots())
    members = housekeeping._sync_slots(cfg, c, local)
    assert members == {"pg_1"}  # pg-1's key expired with the old leader's lease: its slot stays
    assert ("sync", frozenset({"pg_1", "archive"}), frozenset()) in pg.calls
    assert ("drop", "user_made") in pg.calls  # not permanent, not ignored
    permanent_slots.publish_status(dcs, cfg, c, local, members, 900)
    assert dcs.status == [{"optime": 900, "slots": {"archive": 300, "cdc": 500, "pg_0": 900, "pg_1": 700},
                           "retain_slots": ["pg_0", "pg_1"]}]


def test_ignore_slots_spares_a_logical_slot_on_the_leader() -> None:
    pg = FakePg({"user_made": slot("logical", 100, database="db", plugin="wal2json")})
    cfg = config("pg-0", ignore_slots=[{"plugin": "wal2json"}])
    c = Cluster(initialize="1", leader=Leader("pg-0", 1, None), members=(Member.from_value("pg-0", 1, "{}"),))
    LeaderHousekeeping(FakeDcs(), pg, None, None)._sync_slots(  # type: ignore[arg-type]
        cfg, c, permanent_slots.to_local(pg.local_slots()))
    assert not [c for c in pg.calls if c[0] == "drop"]
    assert ("sync", frozenset({"archive"}), frozenset({"user_made"})) in pg.calls


def test_paused_leader_drops_no_slot_and_a_nostream_member_gets_none() -> None:
    pg = FakePg({"user_made": slot("logical", 100, database="db", plugin="wal2json"), "old": slot("physical", 1)})
    c = Cluster(initialize="1", config=ClusterConfig(1, {"pause": True}), leader=Leader("pg-0", 1, None),
                members=(Member.from_value("pg-0", 1, "{}"),
                         Member.from_value("pg-1", 1, json.dumps({"tags": {"nostream": True}}))))
    LeaderHousekeeping(FakeDcs(), pg, None, None)._sync_slots(  # type: ignore[arg-type]
        config("pg-0"), c, permanent_slots.to_local(pg.local_slots()))
    assert not [c for c in pg.calls if c[0] == "drop"]
    assert ("sync", frozenset({"archive"}), frozenset({"user_made", "old"})) in pg.calls


# -- a replica's idle physical slots pin no WAL (was node/replica_slots.py) ------------------------
def cascade_cluster(status: dict | None = None) -> Cluster:
    """pg-0 leads; pg-1 (this node), pg-2, and pg-3 which replicates from pg-1."""
    members = tuple(Member.from_value(n, 1, json.dumps({"conn_url": f"postgres://127.0.0.1:{5432 + i}/postgres",
                                                        "tags": tags}))
                    for i, (n, tags) in enumerate((("pg-0", {}), ("pg-1", {}), ("pg-2", {}),
                                                   ("pg-3", {"replicatefrom": "pg-1"}))))
    return Cluster(initialize="1", leader=Leader("pg-0", 1, None), members=members, status=status)


def advances(pg: FakePg) -> dict[str, int]:
    return {c[1]: c[2] for c in pg.calls if c[0] == "advance_physical"}


def test_replica_moves_patroni_member_slots_and_permanent_physical_ones_to_the_replay_position() -> None:
    """Slots Patroni left on a replica (one per other member, the permanent physical ones)
    with no position published follow replay; not this node's own name, not the slot of
    a member cascading from here, not an active one, not a logical one; an unknown slot
    is dropped (Patroni; ignore_slots spares it) rather than kept pinning WAL."""
    pg = FakePg({"pg_0": slot("physical", 10), "pg_2": slot("physical", 20), "pg_3": slot("physical", 1),
                 "archive": slot("physical", 5), "backup_tool": slot("physical", 5),
                 "cdc": slot("logical", 5, database="db", plugin="test_decoding")})
    keeper = permanent_slots.ReplicaSlots(pg, FakeExecutor())
    keeper.run(config(), cascade_cluster(), 900)
    assert advances(pg) == {"pg_0": 900, "pg_2": 900, "archive": 900}
    assert ("drop", "backup_tool") in pg.calls
    assert not [c for c in pg.calls if c[0] == "advance_logical"]  # a copy moves only to a published position


def test_replica_spares_an_active_slot_and_an_ignored_one() -> None:
    pg = FakePg({"pg_0": {**slot("physical", 10), "active": True}, "backup_tool": slot("physical", 5)})
    permanent_slots.ReplicaSlots(pg, FakeExecutor()).run(
        config(ignore_slots=[{"name": "backup_tool"}]), cascade_cluster(), 900)
    assert advances(pg) == {}
    assert not [c for c in pg.calls if c[0] == "drop"]


def test_replica_follows_the_published_position_where_there_is_one() -> None:
    pg = FakePg({"pg_0": slot("physical", 10), "pg_2": slot("physical", 20), "archive": slot("physical", 5)})
    permanent_slots.ReplicaSlots(pg, FakeExecutor()).run(
        config(), cascade_cluster({"optime": 900, "slots": {"pg_0": 900, "pg_2": 300}}), 800)
    assert advances(pg) == {"pg_0": 900, "pg_2": 300, "archive": 800}  # (PostgreSQL stops pg_0 at replay)


def test_one_failing_advance_does_not_stop_the_others() -> None:
    pg = FakePg({"pg_0": slot("physical", 10), "pg_2": slot("physical", 10)})
    pg.failing = {"pg_0"}
    permanent_slots.ReplicaSlots(pg, FakeExecutor()).run(config(), cascade_cluster(), 900)
    assert advances(pg) == {"pg_2": 900}
    assert ("create", "archive") in pg.calls


def test_advance_physical_slot_logs_an_error_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
            assert "pg_replication_slot_advance" in sql
            raise RuntimeError("boom")

    class Ok:
        def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
            assert params == ("pg_1", "0/384")
            return [("pg_1", "0/384")]
    with caplog.at_level("ERROR", logger="pg_ha"):
        assert pg_slots.advance_physical_slot(Failing(), "pg_0", 900) is False  # type: ignore[arg-type]
    assert "could not advance replication slot pg_0" in caplog.text
    assert pg_slots.advance_physical_slot(Ok(), "pg_1", 900) is True  # type: ignore[arg-type]


def test_replica_says_once_per_slot_that_it_is_advanced(caplog: pytest.LogCaptureFixture) -> None:
    pg = FakePg({"pg_0": slot("physical", 10)})
    pg.failing = {"pg_0"}
    keeper = permanent_slots.ReplicaSlots(pg, FakeExecutor())
    with caplog.at_level("INFO", logger="pg_ha"):
        keeper.run(config(), cluster(), 900)  # failed: not announced
        pg.failing = set()
        keeper.run(config(), cluster(), 900)
        keeper.run(config(), cluster(), 900)
    assert [c for c in pg.calls if c[:2] == ("advance_physical", "pg_0")] == [("advance_physical", "pg_0", 900)] * 2
    assert sum("replication slot pg_0 on this replica" in r.getMessage() for r in caplog.records) == 1


def test_the_daemon_keeps_slots_only_as_an_idle_replica_of_another_leader() -> None:
    from pg_ha.node.daemon import Daemon

    dcs = FakeDCS(name="pg1")
    dcs.set_member("pg0", role="primary")
    dcs.set_leader("pg0")
    d = Daemon(make_config("pg1"), dcs, SimpleNamespace(data_dir_empty=lambda: False))
    assert isinstance(d.replica_slots, permanent_slots.ReplicaSlots)  # the one owner of a replica's slots
    cluster = dcs.get_cluster()
    noop = Decision(Action.NOOP, "no action")
    d._cycle_state = SimpleNamespace(running=True, in_recovery=True)  # type: ignore[assignment]
    assert d._is_idle_replica(noop, cluster)
    assert not d._is_idle_replica(Decision(Action.FOLLOW, "follow"), cluster)
    d._cycle_state = SimpleNamespace(running=True, in_recovery=False)  # type: ignore[assignment]
    assert not d._is_idle_replica(noop, cluster)
    d._cycle_state = SimpleNamespace(running=False, in_recovery=True)  # type: ignore[assignment]
    assert not d._is_idle_replica(noop, cluster)
    d._cycle_state = SimpleNamespace(running=True, in_recovery=True)  # type: ignore[assignment]
    d.executor._busy = "starting"  # something runs in the background: not this cycle
    assert not d._is_idle_replica(noop, cluster)
    d.executor._busy = None
    assert d._is_idle_replica(noop, cluster)
    dcs.set_leader("pg1")  # a standby leader holds the lock: its slots are the leader's business
    assert not d._is_idle_replica(noop, dcs.get_cluster())


def test_a_promotion_in_the_background_still_takes_over_the_retained_slots() -> None:
    """PROMOTE runs in the background (executor busy): the housekeeping does not run on that
    cycle, but the retain_slots of that cycle's status key are taken over and the replica's
    advancing stops; the next cycle (UPDATE_LOCK, promotion done) keeps them."""
    from pg_ha.node.daemon import Daemon

    dcs = FakeDCS(name="pg1")
    dcs.set_member("pg1")
    dcs.set_json("status", {"optime": 900, "retain_slots": ["pg0", "pg1"]})
    d = Daemon(make_config("pg1"), dcs, SimpleNamespace(data_dir_empty=lambda: False, is_running=lambda: True))
    calls: list[str] = []
    d.replica_slots = SimpleNamespace(promoted=lambda: calls.append("promoted"),  # type: ignore[assignment]
                                      run=lambda *a: calls.append("replica run"))
    d.housekeeping.run = lambda *a: calls.append("housekeeping")  # type: ignore[method-assign]
    facts = SimpleNamespace(replay_lsn=900)
    d.executor._busy = "promoting"
    d._slots_and_housekeeping(Decision(Action.PROMOTE, "promote"), dcs.get_cluster(), facts)  # type: ignore[arg-type]
    assert calls == ["promoted"]
    assert set(d.housekeeping.retained) == {"pg0", "pg1"}
    d.executor._busy = None
    dcs.set_json("status", {"optime": 950})  # our own first status write: no retain_slots any more
    d._slots_and_housekeeping(Decision(Action.UPDATE_LOCK, "renew"), dcs.get_cluster(), facts)  # type: ignore[arg-type]
    assert calls == ["promoted", "housekeeping"]
    assert set(d.housekeeping.retained) == {"pg0", "pg1"}
