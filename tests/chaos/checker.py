"""Judges one scenario from the writer's log, the prober's log and the final table.

Split brain: member A accepted writes in a run of probes with no failed probe between,
and member B accepted a write strictly inside that run (after A's first acknowledged
probe of the run returned, before A's last one was sent). Such writes of B, and the A
runs they fall in, are merged into windows (samples less than 0.5 s apart)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .prober import Attempt, ProbeLog
from .writer import WriteLog

MERGE_GAP = 0.5


@dataclass
class Window:
    start: float
    end: float
    members: list[str]

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Result:
    fault: str
    mode: str
    run: int
    acked: int = 0
    uncertain: int = 0
    uncertain_committed: int = 0
    lost: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    longest_gap: float = 0.0
    gap_start: float = 0.0
    split_brain: list[Window] = field(default_factory=list)
    healed: bool = True
    converged: bool = True
    lost_bound: int | None = None
    notes: list[str] = field(default_factory=list)
    started: float = 0.0
    fault_at: float = 0.0
    duration: float = 0.0
    available: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Result:
        doc = dict(doc)
        doc["split_brain"] = [Window(**w) for w in doc.get("split_brain", [])]
        return cls(**doc)


def runs_of(attempts: list[Attempt]) -> list[list[Attempt]]:
    """Maximal runs of accepted attempts with no failed attempt between them."""
    runs: list[list[Attempt]] = []
    current: list[Attempt] = []
    for attempt in sorted(attempts, key=lambda a: a.start):
        if attempt.ok:
            current.append(attempt)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def split_brain_windows(log: ProbeLog) -> list[Window]:
    flagged: list[tuple[float, float, str, str]] = []
    runs = {name: runs_of(attempts) for name, attempts in log.attempts.items()}
    for a_name, a_runs in runs.items():
        for run in a_runs:
            if len(run) < 2:
                continue
            inner_start, inner_end = run[0].end, run[-1].start
            for b_name, attempts in log.attempts.items():
                if b_name == a_name:
                    continue
                for b in attempts:
                    if b.ok and inner_start < b.start and b.end < inner_end:
                        flagged.append((b.start, b.end, a_name, b_name))
    return merge(flagged)


def merge(samples: Iterable[tuple[float, float, str, str]]) -> list[Window]:
    windows: list[Window] = []
    for start, end, a, b in sorted(samples):
        if windows and start - windows[-1].end < MERGE_GAP:
            last = windows[-1]
            last.end = max(last.end, end)
            last.members = sorted(set(last.members) | {a, b})
        else:
            windows.append(Window(start, end, sorted({a, b})))
    return windows


def longest_gap(log: WriteLog, start: float, end: float) -> tuple[float, float]:
    """Largest time between consecutive acknowledged writes (and the scenario's start/end)."""
    times = [start] + sorted(t for _, t, _ in log.acked) + [end]
    best, at = 0.0, start
    for before, after in zip(times, times[1:], strict=False):
        if after - before > best:
            best, at = after - before, before
    return best, at


def judge(result: Result, log: WriteLog, probes: ProbeLog, final_ids: set[int], end: float) -> Result:
    acked, uncertain = log.acked_ids, log.uncertain_ids
    result.acked = len(acked)
    result.uncertain = len(uncertain)
    result.uncertain_committed = len(uncertain & final_ids)
    result.lost = sorted(acked - final_ids)
    result.unexpected = sorted(final_ids - acked - uncertain)
    result.longest_gap, result.gap_start = longest_gap(log, result.started, end)
    result.split_brain = split_brain_windows(probes)
    result.duration = end - result.started
    return result
