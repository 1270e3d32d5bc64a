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


def test_key_of_another_leader_is_rewritten() -> None:
    p = plan(cluster(SyncState(1, "pg9", ("pg1",))), "pg0", [row("pg1", sync_state="sync")], ["pg1"], 1, False)
    assert p.write_key and p.key_standbys == ("pg1",)


def test_standby_names_round_trip() -> None:
    value = standby_names_value(["batman-pg1", 'we"ird'], 1)
    assert value == 'FIRST 1 ("batman-pg1","we""ird")'
    assert parse_standby_names(value) == ("batman-pg1", 'we"ird')
    assert standby_names_value(list(BLOCK_ALL), 1) == "*" and parse_standby_names("*") == BLOCK_ALL
    assert standby_names_value([], 1) == "" and parse_standby_names("") == ()
