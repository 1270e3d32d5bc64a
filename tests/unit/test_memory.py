"""pg_ha.node.heap_trim: malloc_trim at most every TRIM_EVERY seconds."""
from __future__ import annotations

import pytest
from pg_ha.node import heap_trim as memory


def test_trim_is_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_trim", calls.append)
    monkeypatch.setattr(memory, "_last", 0.0)
    assert memory.trim_now_and_then(100.0)
    assert not memory.trim_now_and_then(100.0 + memory.TRIM_EVERY / 2)
    assert memory.trim_now_and_then(100.0 + memory.TRIM_EVERY)
    assert calls == [0, 0]


def test_without_glibc_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_trim", False)
    monkeypatch.setattr(memory, "_last", 0.0)
    assert not memory.trim_now_and_then(1000.0)


def test_real_trim_runs() -> None:
    memory.trim_now_and_then(memory._last + memory.TRIM_EVERY + 1)  # loads libc's malloc_trim here
    assert memory._trim is not None
