"""Synchronous replication planning: the key never names a standby PostgreSQL does not wait for."""
from __future__ import annotations

from pg_ha.core.model import Cluster, Leader, Member, SyncState
from pg_ha.core.sync import BLOCK_ALL, parse_standby_names, plan, standby_names_value


def cluster(sync: SyncState | None = None, nosync: tuple[str, ...] = ()) -> Cluster:
    members = tuple(Member(n, 1, {"tags": {"nosync": True}} if n in nosync else {}) for n in ("pg0", "pg1", "pg2"))
    return Cluster(initialize="1", leader=Leader("pg0", 1), members=members, sync=sync)


def row(name: str, state: str = "streaming", sync_state: str = "async", flush: int = 100) -> dict:
    return {"application_name": name, "state": state, "sync_state": sync_state, "flush_lsn": flush}


def test_new_standby_goes_to_postgres_first_not_to_the_key() -> None:
    p = plan(cluster(SyncState(1, "pg0", ())), "pg0", [row("pg1")], [], 1, strict=False)
    assert p.standby_names == ("pg1",)
    assert p.key_standbys == ()  # not yet confirmed by PostgreSQL
    assert not p.write_key


def test_confirmed_standby_enters_the_key() -> None:
    p = plan(cluster(SyncState(1, "pg0", ())), "pg0", [row("pg1", sync_state="sync")], ["pg1"], 1, strict=False)
    assert p.standby_names == ("pg1",) and p.key_standbys == ("pg1",) and p.write_key


def test_lost_standby_leaves_the_key_before_postgres() -> None:
    p = plan(cluster(SyncState(1, "pg0", ("pg1",))), "pg0", [row("pg2")], ["pg1"], 1, strict=False)
    assert p.key_standbys == ()  # removed from the key now
    assert p.standby_names == ("pg2",)  # PostgreSQL waits for the replacement
    assert p.write_key


def test_strict_without_standbys_blocks_commits() -> None:
    p = plan(cluster(SyncState(1, "pg0", ("pg1",))), "pg0", [], ["pg1"], 1, strict=True)
    assert p.standby_names == BLOCK_ALL and p.key_standbys == ()
    assert "commits wait" in (p.message or "") or "sync key" in (p.message or "")


def test_non_strict_without_standbys_goes_async() -> None:
    p = plan(cluster(SyncState(1, "pg0", ())), "pg0", [row("pg1", state="catchup")], [], 1, strict=False)
    assert p.standby_names == () and p.key_standbys == ()


def test_nosync_tag_and_count() -> None:
    rows = [row("pg1", flush=50), row("pg2", flush=90)]
    assert plan(cluster(None, nosync=("pg2",)), "pg0", rows, [], 2, False).standby_names == ("pg1",)
    assert plan(cluster(None), "pg0", rows, [], 1, False).standby_names == ("pg2",)  # least lag first
    assert plan(cluster(None), "pg0", rows, ["pg1"], 1, False).standby_names == ("pg1",)  # no flapping


def tagged(tags: dict[str, dict]) -> Cluster:
    members = tuple(Member(n, 1, {"tags": tags.get(n, {})}) for n in ("pg0", "pg1", "pg2", "pg3"))
    return Cluster(initialize="1", leader=Leader("pg0", 1), members=members)


def test_sync_priority_as_patroni() -> None:
    """Higher sync_priority first, before the current synchronous standby and the lag; 0 (or
    "0": tags from a YAML file may be strings) never; nosync wins over sync_priority."""
    rows = [row("pg1", flush=90), row("pg2", flush=50), row("pg3", flush=10)]
    c = tagged({"pg1": {"sync_priority": "0"}, "pg2": {"sync_priority": 1}, "pg3": {"sync_priority": "2"}})
    assert plan(c, "pg0", rows, ["pg2"], 1, False).standby_names == ("pg3",)
    assert plan(c, "pg0", rows, [], 3, False).standby_names == ("pg3", "pg2")
    c = tagged({"pg3": {"sync_priority": 2, "nosync": True}, "pg1": {"sync_priority": 0, "nosync": False}})
    # pg1: nosync false wins, so it may be synchronous, but with priority 0 after pg2's default 1
    assert plan(c, "pg0", rows, [], 1, False).standby_names == ("pg2",)
    assert plan(c, "pg0", rows, [], 3, False).standby_names == ("pg2", "pg1")
    c = tagged({"pg2": {"sync_priority": 5}})
    assert plan(c, "pg0", rows, ["pg1"], 1, False).standby_names == ("pg2",)


def test_key_of_another_leader_is_rewritten() -> None:
    p = plan(cluster(SyncState(1, "pg9", ("pg1",))), "pg0", [row("pg1", sync_state="sync")], ["pg1"], 1, False)
    assert p.write_key and p.key_standbys == ("pg1",)


def test_standby_names_round_trip() -> None:
    value = standby_names_value(["batman-pg1", 'we"ird'], 1)
    assert value == 'FIRST 1 ("batman-pg1","we""ird")'
    assert parse_standby_names(value) == ("batman-pg1", 'we"ird')
    assert standby_names_value(list(BLOCK_ALL), 1) == "*" and parse_standby_names("*") == BLOCK_ALL
    assert standby_names_value([], 1) == "" and parse_standby_names("") == ()


def test_maximum_lag_on_syncnode_replaces_a_lagging_sync_standby() -> None:
    """Patroni's maximum_lag_on_syncnode: pg2 (sync, replay paused under remote_apply) falls
    more than the limit behind pg1, so pg1 becomes the synchronous standby."""
    from pg_ha.core.sync import LagLimit, lsn_column

    rows = [{"application_name": "pg1", "state": "streaming", "sync_state": "async", "flush_lsn": 900,
             "replay_lsn": 900},
            {"application_name": "pg2", "state": "streaming", "sync_state": "sync", "flush_lsn": 900,
             "replay_lsn": 100}]
    key = cluster(SyncState(1, "pg0", ("pg2",)))
    limit = LagLimit(500, lsn_column("remote_apply"), 1000)
    p = plan(key, "pg0", rows, ["pg2"], 1, strict=False, limit=limit)
    assert p.standby_names == ("pg1",) and p.key_standbys == () and p.write_key
    # off (-1), or measured in flush_lsn (synchronous_commit on): pg2 stays
    assert plan(key, "pg0", rows, ["pg2"], 1, strict=False).standby_names == ("pg2",)
    on = LagLimit(500, lsn_column("on"), 1000)
    assert plan(key, "pg0", rows, ["pg2"], 1, strict=False, limit=on).standby_names == ("pg2",)


def test_maximum_lag_on_syncnode_with_one_standby_compares_with_the_leader() -> None:
    from pg_ha.core.sync import LagLimit

    far = plan(cluster(), "pg0", [row("pg1", flush=100)], [], 1, strict=False, limit=LagLimit(500, "flush_lsn", 1000))
    assert far.standby_names == ()
    near = plan(cluster(), "pg0", [row("pg1", flush=600)], [], 1, strict=False, limit=LagLimit(500, "flush_lsn", 1000))
    assert near.standby_names == ("pg1",)


def test_the_sync_key_lists_standbys_sorted_as_patroni() -> None:
    """etcdctl users and Patroni's tools read `sync_standby` as "a,b" in name order."""
    from types import SimpleNamespace

    from pg_ha.config.settings import DynamicSettings
    from pg_ha.node.leader_housekeeping import LeaderHousekeeping

    written: list[str] = []
    dcs = SimpleNamespace(set_sync_state_value=lambda value, version: written.append(value) or True)
    executor = SimpleNamespace(sync_names=("pg2", "pg1"), set_sync_names=lambda names: None,
                               confirmed_replication=lambda cluster, rows, column: rows)
    config = SimpleNamespace(name="pg0", dynamic=DynamicSettings(synchronous_mode=True, synchronous_node_count=2),
                             postgresql=SimpleNamespace(parameters={}))
    rows = [row("pg2", sync_state="sync", flush=200), row("pg1", sync_state="sync", flush=100)]
    state = SimpleNamespace(replication=rows, wal_lsn=300)
    duties = LeaderHousekeeping(dcs, None, executor, None)  # type: ignore[arg-type]
    duties._manage_sync(config, cluster(SyncState(1, "pg0", ())), state)  # type: ignore[arg-type]
    assert written == ['{"leader":"pg0","quorum":0,"sync_standby":"pg1,pg2"}']


def test_a_newly_listed_standby_is_ready_only_at_the_barrier() -> None:
    from pg_ha.core.sync import ready_standbys, unready_as_potential

    rows = [row("pg1", sync_state="sync", flush=900), row("pg2", sync_state="potential", flush=2000)]
    assert ready_standbys(rows, ("pg1", "pg2"), 1000, "flush_lsn", (), ()) == frozenset()
    assert [r["sync_state"] for r in unready_as_potential(rows, ())] == ["potential", "potential"]
    caught_up = [row("pg1", sync_state="sync", flush=1000)]
    assert ready_standbys(caught_up, ("pg1",), 1000, "flush_lsn", (), ()) == {"pg1"}
    # the sync key's standby stays confirmed; ready ones stay ready while listed, not once dropped
    assert ready_standbys(rows, ("pg1",), 1000, "flush_lsn", ("pg1",), ()) == {"pg1"}
    assert ready_standbys([], ("pg1",), 1000, "flush_lsn", (), ("pg1", "pg2")) == {"pg1"}
    assert ready_standbys(caught_up, ("*",), 0, "flush_lsn", (), ()) == frozenset()


def test_the_planner_keeps_a_lagging_replacement_out_of_the_key() -> None:
    """pg1 (in the key) is gone; pg2 replaced it in synchronous_standby_names and PostgreSQL
    calls it sync at once, but it has not reached the flush position of the change: the key
    names nobody until it has (commits pg1 acknowledged may be missing on pg2)."""
    from pg_ha.node.sync_control import SyncControl

    from tests.fakes import make_config

    class Pg:
        lsn = 5000

        def update_settings(self, settings: object) -> None:
            pass

        def sync_barrier_lsn(self) -> int:
            return self.lsn

    control = SyncControl()
    control.config = make_config("pg0")
    control.pg = Pg()  # type: ignore[assignment]
    control.set_sync_names(("pg2",))
    assert control.sync_barrier_lsn == 5000
    mine = cluster(SyncState(1, "pg0", ()))
    lagging = control.confirmed_replication(mine, [row("pg2", sync_state="sync", flush=4000)], "flush_lsn")
    step = plan(mine, "pg0", lagging, ("pg2",), 1, strict=False)
    assert step.key_standbys == ()
    there = control.confirmed_replication(mine, [row("pg2", sync_state="sync", flush=5000)], "flush_lsn")
    step = plan(mine, "pg0", there, ("pg2",), 1, strict=False)
    assert step.key_standbys == ("pg2",)
    # listed again later (a change that keeps it): no new wait for a standby already ready
    control.pg.lsn = 9000  # type: ignore[attr-defined]
    control.set_sync_names(("pg2", "pg1"))
    again = control.confirmed_replication(cluster(SyncState(2, "pg0", ("pg2",))),
                                          [row("pg2", sync_state="sync", flush=6000),
                                           row("pg1", sync_state="potential", flush=6000)], "flush_lsn")
    assert [r["sync_state"] for r in again] == ["sync", "potential"]
