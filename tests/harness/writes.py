"""A client that inserts increasing ids into one member and records each acknowledged one,
for tests that kill the leader under load and then look for lost writes."""
from __future__ import annotations

import threading
from types import TracebackType

from .cluster import Member


class AckedWriter:
    """`with AckedWriter(leader, "acked") as w:` inserts 1, 2, ... into table `table` (created
    first) on `member` until the block ends; `w.acked` holds the ids whose autocommit INSERT
    returned (the commit was acknowledged). Errors (the member dies) reconnect after 50 ms."""

    def __init__(self, member: Member, table: str) -> None:
        self.member = member
        self.table = table
        self.acked: list[int] = []
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
            except Exception:  # noqa: BLE001 - the member dies under us
                conn = None
                if self._stop.wait(0.05):
                    break

    def __enter__(self) -> AckedWriter:
        self.member.sql(f"CREATE TABLE {self.table}(id int primary key)")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def missing_on(self, member: Member) -> list[int]:
        """Acknowledged ids absent from `member`'s table."""
        present = {row[0] for row in member.sql(f"SELECT id FROM {self.table}")}
        return sorted(set(self.acked) - present)
