"""The write client: one INSERT every 20 ms through HAProxy's primary listener, reconnecting
after any error. Each acknowledged insert is kept as (monotonic time, backend port), the port
coming from ``inet_server_port()``, so the bench knows which member took the write."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg2

from tests.harness.cluster import SUPERUSER_PASSWORD

INTERVAL = 0.02
TABLE = "bench_writes"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, t timestamptz NOT NULL)"
INSERT = f"INSERT INTO {TABLE} (t) VALUES (clock_timestamp()) RETURNING inet_server_port()"


@dataclass(frozen=True)
class Gap:
    seconds: float
    start: float  # monotonic time of the last ack before the gap
    end: float  # monotonic time of the first ack after it


def connect(port: int) -> Any:
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=SUPERUSER_PASSWORD,
                            dbname="postgres", connect_timeout=2, options="-c statement_timeout=3000",
                            keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2)
    conn.autocommit = True
    return conn


def insert_once(port: int) -> int:
    """One insert through `port` on a fresh connection; returns the backend's PostgreSQL port."""
    conn = connect(port)
    try:
        with conn.cursor() as cur:
            cur.execute(CREATE)
            cur.execute(INSERT)
            return int(cur.fetchone()[0])
    finally:
        conn.close()


class Writer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.acks: list[tuple[float, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        conn: Any = None
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.port)
                with conn.cursor() as cur:
                    cur.execute(INSERT)
                    backend = int(cur.fetchone()[0])
                self.acks.append((time.monotonic(), backend))
            except Exception:  # noqa: BLE001 - any failure: count, drop the connection, go on
                self.errors += 1
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
            due += INTERVAL
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                due = time.monotonic()
        if conn is not None:
            conn.close()

    def first_ack_after(self, since: float, not_port: int | None = None, port: int | None = None) -> float | None:
        for t, backend in list(self.acks):
            if t > since and (not_port is None or backend != not_port) and (port is None or backend == port):
                return t
        return None

    def longest_gap(self, since: float) -> Gap:
        """Longest interval between two consecutive acks where the second one came after `since`."""
        acks = [t for t, _ in self.acks]
        best = Gap(0.0, since, since)
        for before, after in zip(acks, acks[1:], strict=False):
            if after > since and after - before > best.seconds:
                best = Gap(after - before, before, after)
        return best
