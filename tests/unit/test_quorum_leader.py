"""The leader's side of quorum commit on a fake DCS: steps in order, one compare-and-set
write of the sync key per cycle, nothing more after a lost compare-and-set."""
from __future__ import annotations

import json
from typing import Any

from pg_ha.core.quorum import Commit
from pg_ha.node.executor import Executor
from pg_ha.node.quorum_steps import current_commit, manage_quorum

from tests.fakes import FakeDCS, make_config


class SettingsSink:
    """Records the synchronous_standby_names each update_settings call would apply."""

    def __init__(self, events: list[str]) -> None:
        self.applied: list[str] = []
        self.events = events

    def update_settings(self, settings: Any) -> None:
        self.applied.append(str(settings.parameters.get("synchronous_standby_names")))
        self.events.append("pg " + self.applied[-1])


class RecordingDCS(FakeDCS):
    def __init__(self, events: list[str]) -> None:
        super().__init__(name="pg0")
        self.events = events

    def set_sync_state_value(self, value: str, version: int | None = None) -> bool:
        ok = super().set_sync_state_value(value, version)
        self.events.append(f"key {value}" if ok else "key refused")
        return ok


def setup() -> tuple[Executor, RecordingDCS, SettingsSink]:
    events: list[str] = []
    dcs = RecordingDCS(events)
    for name in ("pg0", "pg1", "pg2"):
        dcs.set_member(name)
    dcs.set_leader("pg0")
    dcs.set_json("sync", {"leader": "pg0", "sync_standby": None, "quorum": 0})
    sink = SettingsSink(events)
    config = make_config("pg0", synchronous_mode=True, synchronous_quorum=True, synchronous_node_count=1)
    return Executor(config, dcs, sink), dcs, sink  # type: ignore[arg-type]


STREAMING = [{"application_name": n, "state": "streaming"} for n in ("pg1", "pg2")]


def sync_key(dcs: FakeDCS) -> dict[str, Any]:
    return json.loads(dcs.keys["sync"][1])


def test_grows_key_first_then_postgresql_and_then_stays() -> None:
    ex, dcs, sink = setup()
    manage_quorum(dcs, ex, dcs.get_cluster(), "pg0", STREAMING)
    assert sync_key(dcs) == {"leader": "pg0", "sync_standby": "pg1,pg2", "quorum": 1}
    assert dcs.events == ['key {"leader":"pg0","quorum":1,"sync_standby":"pg1,pg2"}', 'pg ANY 1 ("pg1","pg2")']
    assert ex.sync_commit == Commit(1, frozenset({"pg1", "pg2"}))
    revision = dcs.keys["sync"][0]
    manage_quorum(dcs, ex, dcs.get_cluster(), "pg0", STREAMING)
    assert dcs.keys["sync"][0] == revision and len(sink.applied) == 1  # steady: no write, no reload


def test_shrinks_postgresql_first_then_key() -> None:
    ex, dcs, sink = setup()
    manage_quorum(dcs, ex, dcs.get_cluster(), "pg0", STREAMING)
    dcs.events.clear()
    manage_quorum(dcs, ex, dcs.get_cluster(), "pg0", STREAMING[:1])
    assert dcs.events == ['pg ANY 1 ("pg1")', 'key {"leader":"pg0","quorum":0,"sync_standby":"pg1"}']
    assert sync_key(dcs) == {"leader": "pg0", "sync_standby": "pg1", "quorum": 0}


def test_lost_compare_and_set_changes_nothing_else() -> None:
    ex, dcs, sink = setup()
    stale = dcs.get_cluster()
    dcs.set_json("sync", {"leader": "pg0", "sync_standby": None, "quorum": 0})  # a newer revision
    manage_quorum(dcs, ex, stale, "pg0", STREAMING)
    assert dcs.events == ["key refused"] and sink.applied == [] and ex.sync_commit is None


def test_current_commit_reads_first_mode_names_conservatively() -> None:
    ex, _, _ = setup()
    ex.sync_names = ("pg1", "pg2")
    assert current_commit(ex, 1) == Commit(1, frozenset({"pg1", "pg2"}))
    ex.sync_names = ("*",)
    assert current_commit(ex, 1).block_all


def test_promotion_hands_the_vote_on_before_postgresql_is_promoted() -> None:
    ex, dcs, sink = setup()
    dcs.set_json("sync", {"leader": "pg9", "sync_standby": "pg0,pg1", "quorum": 1})
    assert ex.prepare_promotion(dcs.get_cluster())
    assert dcs.events[0] == 'key {"leader":"pg0","quorum":1,"sync_standby":"pg1,pg9"}'
    assert sink.applied == ['ANY 1 ("pg1","pg9")']
    # once replicas stream from the new leader the planner drops the old leader, PostgreSQL first
    dcs.events.clear()
    manage_quorum(dcs, ex, dcs.get_cluster(), "pg0", STREAMING)
    assert dcs.events[0] == 'key {"leader":"pg0","quorum":2,"sync_standby":"pg1,pg2,pg9"}'


def test_promotion_without_voters_starts_afresh() -> None:
    ex, dcs, sink = setup()
    assert ex.prepare_promotion(dcs.get_cluster())
    assert sync_key(dcs) == {"leader": "pg0", "sync_standby": None, "quorum": 0}
    assert sink.applied == [""]
