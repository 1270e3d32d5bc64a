"""pg_ha.node.heap_trim: malloc_trim at most every TRIM_EVERY seconds."""
from __future__ import annotations

import pytest
from pg_ha.node import heap_trim


def test_trim_is_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(heap_trim, "_trim", calls.append)
    monkeypatch.setattr(heap_trim, "_last", 0.0)
    assert heap_trim.trim_now_and_then(100.0)
    assert not heap_trim.trim_now_and_then(100.0 + heap_trim.TRIM_EVERY / 2)
    assert heap_trim.trim_now_and_then(100.0 + heap_trim.TRIM_EVERY)
    assert calls == [0, 0]


def test_without_glibc_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap_trim, "_trim", False)
    monkeypatch.setattr(heap_trim, "_last", 0.0)
    assert not heap_trim.trim_now_and_then(1000.0)


def test_real_trim_runs() -> None:
    heap_trim.trim_now_and_then(heap_trim._last + heap_trim.TRIM_EVERY + 1)  # loads libc's malloc_trim here
    assert heap_trim._trim is not None
