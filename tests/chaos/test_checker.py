"""The checker's rules on hand-made logs (no processes): the split-brain detector must see an
overlap, and must not see a clean handover."""
from __future__ import annotations

from tests.chaos.checker import Result, judge, longest_gap, split_brain_windows
from tests.chaos.prober import Attempt, ProbeLog
from tests.chaos.writer import WriteLog


def probes(spec: str, t0: float = 0.0, period: float = 0.1) -> list[Attempt]:
    """'11100' -> accepted, accepted, accepted, failed, failed (each 10 ms long)."""
    return [Attempt(t0 + i * period, t0 + i * period + 0.01, c == "1") for i, c in enumerate(spec)]


def test_clean_handover_is_not_split_brain() -> None:
    log = ProbeLog({"a": probes("1111100000"), "b": probes("0000011111")})
    assert split_brain_windows(log) == []


def test_adjacent_single_accepts_are_not_split_brain() -> None:
    log = ProbeLog({"a": probes("1111000000"), "b": probes("0000111111", t0=-0.05)})
    assert split_brain_windows(log) == []


def test_overlap_is_one_window_naming_both_members() -> None:
    log = ProbeLog({"a": probes("1111111111"), "b": probes("0001111000")})
    windows = split_brain_windows(log)
    assert len(windows) == 1
    assert windows[0].members == ["a", "b"]
    assert 0.3 <= windows[0].start and windows[0].end <= 0.7


def test_failed_probe_splits_a_run() -> None:
    log = ProbeLog({"a": probes("1110001111"), "b": probes("0000100000")})
    assert split_brain_windows(log) == []


def test_lost_unexpected_and_uncertain() -> None:
    log = WriteLog(acked=[(1, 1.0, 5432), (2, 1.1, 5432), (4, 3.0, 5433)], uncertain=[(3, 1.2, "boom")], last_id=4)
    result = judge(Result("f", "async", 1, started=0.5), log, ProbeLog({}), {1, 3, 4, 9}, end=3.5)
    assert result.lost == [2]
    assert result.unexpected == [9]
    assert result.uncertain_committed == 1
    assert round(result.longest_gap, 2) == 1.9


def test_longest_gap_counts_the_tail() -> None:
    log = WriteLog(acked=[(1, 1.0, 1)])
    assert longest_gap(log, 0.0, 10.0) == (9.0, 1.0)
