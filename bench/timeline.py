"""Merge the members' and HAProxy's log lines around an event into one timeline (offsets in
seconds from the action), so the report can say where the time of a write gap went."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

DAEMON_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (.*)$")
HAPROXY_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d) (.*)$")
# HAProxy logs one line per refused client connection while no server is up: keep state changes only
HAPROXY_KEEP = ("Server ", "proxy ", "backup server", "has no server")


def parse_line(line: str) -> tuple[float, str] | None:
    match = DAEMON_TS.match(line)
    if match:
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")  # local time, as logging writes it
        return stamp.timestamp(), match.group(2)
    match = HAPROXY_TS.match(line)
    if match:
        if not any(word in match.group(2) for word in HAPROXY_KEEP):
            return None
        return datetime.fromisoformat(match.group(1)).timestamp(), match.group(2)
    return None


def collect(sources: dict[str, Path], start: float, end: float) -> list[tuple[float, str, str]]:
    """(wall time, source, text) of every timestamped line in [start, end], sorted."""
    events: list[tuple[float, str, str]] = []
    for label, path in sources.items():
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            parsed = parse_line(line)
            if parsed is not None and start <= parsed[0] <= end:
                events.append((parsed[0], label, parsed[1][:220]))
    events.sort()
    return events


def render(title: str, action_wall: float, marks: dict[str, float], events: list[tuple[float, str, str]]) -> str:
    """Text timeline; `marks` are the bench's own observations (wall times) merged in."""
    rows = [(t, "bench", what) for what, t in marks.items()] + events
    rows.sort()
    out = [f"# {title} (t=0: {datetime.fromtimestamp(action_wall).isoformat(timespec='milliseconds')})"]
    out += [f"{t - action_wall:+8.3f}s  {label:<14} {text}" for t, label, text in rows]
    return "\n".join(out) + "\n"


ROUTINE = ("no action.", "Lock owner:", "Got response from", "waiting for leader to bootstrap")


def condensed(text: str) -> str:
    """The timeline without the routine once-per-cycle lines."""
    return "\n".join(line for line in text.splitlines() if not any(r in line for r in ROUTINE)) + "\n"
