"""The client under test: unique increasing ids through HAProxy's primary port, one INSERT
about every 20 ms, autocommit; every acknowledged id is logged with the time of its ack.

An INSERT that failed or whose COMMIT came back with the sync-cancel warning is "uncertain":
it may or may not be in the table, and the checker counts it neither as lost nor as unexpected."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from .pgconn import close_quietly, connect, unreplicated_warning


@dataclass
class WriteLog:
    acked: list[tuple[int, float, int]] = field(default_factory=list)  # (id, ack wall time, server port)
    uncertain: list[tuple[int, float, str]] = field(default_factory=list)  # (id, wall time, error)
    events: list[tuple[float, str]] = field(default_factory=list)  # state changes only
    last_id: int = 0

    @property
    def acked_ids(self) -> set[int]:
        return {row[0] for row in self.acked}

    @property
    def uncertain_ids(self) -> set[int]:
        return {row[0] for row in self.uncertain}


class Writer(threading.Thread):
    def __init__(self, port: int, table: str, interval: float = 0.02, statement_timeout_ms: int = 5000) -> None:
        super().__init__(name=f"writer-{table}", daemon=True)
        self.port = port
        self.table = table
        self.interval = interval
        self.statement_timeout_ms = statement_timeout_ms
        self.log = WriteLog()
        self._stop_event = threading.Event()
        self._ok = True

    def stop(self, timeout: float = 15) -> WriteLog:
        self._stop_event.set()
        self.join(timeout)
        return self.log

    def acked_count(self) -> int:
        return len(self.log.acked)

    def _event(self, ok: bool, message: str) -> None:
        if ok != self._ok:
            self.log.events.append((time.time(), message))
            self._ok = ok

    def run(self) -> None:
        conn: Any = None
        next_at = time.monotonic()
        sql = f"INSERT INTO {self.table}(id) VALUES (%s) RETURNING inet_server_port()"
        while not self._stop_event.is_set():
            if conn is None:
                try:
                    conn = connect(self.port, self.statement_timeout_ms)
                except psycopg2.Error as exc:
                    self._event(False, f"connect failed: {str(exc).strip().splitlines()[0]}")
                    self._stop_event.wait(0.05)
                    continue
            self.log.last_id += 1
            ident = self.log.last_id
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, (ident,))
                    port = int(cur.fetchone()[0])
                warning = unreplicated_warning(conn)
                if warning:
                    self.log.uncertain.append((ident, time.time(), warning))
                    self._event(False, f"commit not replicated: {warning}")
                else:
                    self.log.acked.append((ident, time.time(), port))
                    self._event(True, f"writes acknowledged by port {port}")
            except psycopg2.Error as exc:
                message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.log.uncertain.append((ident, time.time(), message))
                self._event(False, f"write failed: {message}")
                close_quietly(conn)
                conn = None
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop_event.wait(delay)
            else:
                next_at = time.monotonic()
        close_quietly(conn)
