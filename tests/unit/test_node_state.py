"""One owner for the node's state: every Action has a handler in the Executor's table, the
transitions of NodeState are named and pure, and nothing outside the Executor changes it."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pg_ha.core.ha import Action, Decision
from pg_ha.node.executor import HANDLERS, Executor
from pg_ha.node.state import NodeState

from tests.fakes import FakeDCS, make_config

PKG = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "pg_ha"


def test_every_action_has_a_handler() -> None:
    missing = set(Action) - set(HANDLERS)
    assert not missing, f"Actions without a handler in executor.HANDLERS: {sorted(missing)}"
    for action, handler in HANDLERS.items():
        assert getattr(Executor, handler.__name__) is handler, f"{action}: handler is not an Executor method"


def test_node_state_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NodeState().upstream = "pg1"  # type: ignore[misc]


S0 = NodeState()
TRANSITIONS = [
    # transition, start, expected fields that differ from the start
    (lambda s: s.started_replica("pg0"), NodeState(stopped_on_purpose=True),
     {"upstream": "pg0", "stopped_on_purpose": False}),
    (NodeState.started_primary, NodeState(upstream="pg0", primary_start_failed=True, stopped_on_purpose=True),
     {"upstream": None, "primary_start_failed": False, "stopped_on_purpose": False}),
    (NodeState.primary_did_not_start, S0, {"primary_start_failed": True, "unverified_primary_data": True}),
    (NodeState.replica_did_not_start, S0, {"unverified_primary_data": True}),
    (NodeState.stopping, S0, {"stopped_on_purpose": True}),
    (NodeState.promoted, NodeState(upstream="pg0", unverified_primary_data=True),
     {"upstream": None, "unverified_primary_data": False}),
    (NodeState.demoted, NodeState(upstream="pg0"),
     {"upstream": None, "unverified_primary_data": True, "stopped_on_purpose": True}),
    (NodeState.lock_released, NodeState(primary_start_failed=True),
     {"primary_start_failed": False, "unverified_primary_data": True}),
    (lambda s: s.following("pg2"), S0, {"upstream": "pg2"}),
    (lambda s: s.following_remote("h:5432"), NodeState(unverified_primary_data=True),
     {"upstream": "h:5432", "unverified_primary_data": False}),
    (NodeState.upstream_forgotten, NodeState(upstream="h:5432"), {"upstream": None}),
    (NodeState.data_verified, NodeState(unverified_primary_data=True), {"unverified_primary_data": False}),
    (NodeState.data_suspect, S0, {"unverified_primary_data": True}),
    (lambda s: s.bootstrapped_standby("h:1"), NodeState(unverified_primary_data=True, stopped_on_purpose=True),
     {"upstream": "h:1", "unverified_primary_data": False, "stopped_on_purpose": False}),
    (lambda s: s.bootstrap_failed(12.5), S0, {"bootstrap_failed_at": 12.5}),
    (NodeState.fenced, S0, {"unverified_primary_data": True, "stopped_on_purpose": True}),
    (lambda s: s.refused("system ID mismatch"), S0, {"fatal": "system ID mismatch"}),
    (lambda s: s.started_standby_leader("h:1"), NodeState(primary_start_failed=True, stopped_on_purpose=True),
     {"upstream": "h:1", "primary_start_failed": False, "stopped_on_purpose": False}),
    (NodeState.standby_leader_did_not_start, S0, {"primary_start_failed": True}),
]


@pytest.mark.parametrize("transition, start, changed", TRANSITIONS)
def test_transition_changes_exactly_its_fields(transition: Any, start: NodeState, changed: dict[str, Any]) -> None:
    after = transition(start)
    diff = {f.name: getattr(after, f.name) for f in dataclasses.fields(NodeState)
            if getattr(after, f.name) != getattr(start, f.name)}
    assert diff == changed


OWNERS = ("node/executor.py", "node/state.py")


def state_writes(source: str) -> list[int]:
    """Lines of `source` that touch the Executor's private state (`_state`, `_become`),
    name NodeState (to build one), or assign to a field of `.state` / `.memory`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("_state", "_become") or \
                isinstance(node, ast.Name) and node.id == "NodeState" or \
                isinstance(node, ast.alias) and node.name == "NodeState":
            lines.append(node.lineno)
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
        lines += [node.lineno for t in targets if isinstance(t, ast.Attribute)
                  and isinstance(t.value, ast.Attribute) and t.value.attr in ("state", "memory")]
    return lines


@pytest.mark.parametrize("source", [
    "executor.state.upstream = 'pg1'", "ex.memory.stopped_on_purpose = True", "ex._become(lambda s: s)",
    "ex._state = None", "from .state import NodeState",
])
def test_the_check_sees_a_write(source: str) -> None:
    assert state_writes(source) == [1]


def test_only_the_executor_changes_node_state() -> None:
    found = [f"{path.relative_to(PKG).as_posix()}:{line}" for path in sorted(PKG.rglob("*.py"))
             if path.relative_to(PKG).as_posix() not in OWNERS for line in state_writes(path.read_text())]
    assert found == [], "only node/executor.py changes the node's state"


class FakePg:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool:
        self.calls.append(f"stop:{mode}")
        return True

    def start(self, role: str, conninfo: Any, slot: Any, **kw: Any) -> bool:
        self.calls.append(f"start:{role}")
        return True

    def remove_data_dir(self) -> bool:
        self.calls.append("remove")
        return True


def executor() -> tuple[Executor, FakeDCS, FakePg]:
    dcs, pg = FakeDCS(name="pg0"), FakePg()
    return Executor(make_config("pg0"), dcs, pg), dcs, pg  # type: ignore[arg-type]


def test_demote_offline_stops_and_starts_read_only_without_upstream() -> None:
    ex, dcs, pg = executor()
    ex.execute(Decision(Action.DEMOTE_OFFLINE, "demoting self because DCS is not accessible"), dcs.get_cluster(), 0)
    ex.join(5)
    assert pg.calls == ["stop:immediate", "start:replica"]
    assert ex.state == NodeState().demoted()


def test_remove_data_dir_wipes_and_wakes_the_loop() -> None:
    ex, dcs, pg = executor()
    woken: list[bool] = []
    ex.on_done = lambda: woken.append(True)
    ex.execute(Decision(Action.REMOVE_DATA_DIR, "no pg_control"), dcs.get_cluster(), 0)
    assert pg.calls == ["remove"] and woken == [True]


def test_fenced_marks_the_data_as_a_former_primary_stopped_on_purpose() -> None:
    ex, dcs, pg = executor()
    ex.execute(Decision(Action.FENCED, "the watchdog fired"), dcs.get_cluster(), 0)
    assert ex.state.unverified_primary_data and ex.state.stopped_on_purpose and pg.calls == []


def test_reinitialize_refused_while_busy() -> None:
    ex, dcs, pg = executor()
    assert ex.try_begin("rewinding")
    request = Decision(Action.REINITIALIZE, "reinitialize", target="pg1", on_failure=Decision(Action.NOOP, "busy"))
    assert ex.execute(request, dcs.get_cluster(), 0).action == Action.NOOP
    ex.end()
    assert ex.execute(request, dcs.get_cluster(), 0).action == Action.REINITIALIZE
    ex.join(5)
    assert pg.calls[:2] == ["stop:immediate", "remove"] and ex.state.stopped_on_purpose
