"""A client that inserts increasing ids into one member and records each acknowledged one,
for tests that kill the leader under load and then look for lost writes."""
from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Protocol


class Endpoint(Protocol):
    """Where the writer connects: a Member, or a proxy in front of the members."""

    def connect(self, timeout: int = 3) -> Any: ...

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...


class AckedWriter:
    """`with AckedWriter(leader, "acked") as w:` inserts 1, 2, ... into table `table` (created
    first) on `member` until the block ends; `w.acked` holds the ids whose autocommit INSERT
    returned (the commit was acknowledged), `w.ack_times` the monotonic time of each ack.
    Errors (the member dies) reconnect after 50 ms."""

    def __init__(self, member: Endpoint, table: str) -> None:
        self.member = member
        self.table = table
        self.acked: list[int] = []
        self.ack_times: list[float] = []
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = None
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                conn = conn or self.member.connect(timeout=2)
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {self.table} VALUES (%s)", (i,))
                self.acked.append(i)
                self.ack_times.append(time.monotonic())
            except Exception:  # noqa: BLE001 - the member dies under us
                conn = None
                if self._stop.wait(0.05):
                    break

    def __enter__(self) -> AckedWriter:
        self.member.sql(f"CREATE TABLE {self.table}(id int primary key)")
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.stopped_at = self.stopped_at or time.monotonic()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def acked_since(self, moment: float) -> int:
        """How many writes were acknowledged after monotonic time `moment`."""
        return sum(1 for t in self.ack_times if t > moment)

    def longest_gap(self) -> float:
        """The longest time in seconds without an acknowledged write, start and stop included."""
        end = self.stopped_at or time.monotonic()
        times = [self.started_at, *self.ack_times, end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    def missing_on(self, member: Endpoint) -> list[int]:
        """Acknowledged ids absent from `member`'s table."""
        present = {row[0] for row in member.sql(f"SELECT id FROM {self.table}")}
        return sorted(set(self.acked) - present)
