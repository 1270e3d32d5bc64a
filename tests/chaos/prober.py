"""Tries a real write (an INSERT, autocommit) on every member's own PostgreSQL port about
every 100 ms, one thread per member, and keeps every attempt: (start, end, accepted).

A write counts as accepted only if its COMMIT was acknowledged without the sync-cancel warning."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from .pgconn import close_quietly, connect, unreplicated_warning

PROBE_TABLE = "chaos_probe"


@dataclass
class Attempt:
    start: float
    end: float
    ok: bool


@dataclass
class ProbeLog:
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)


class MemberProbe(threading.Thread):
    def __init__(self, name: str, port: int, interval: float, stop_event: threading.Event,
                 attempts: list[Attempt]) -> None:
        super().__init__(name=f"probe-{name}", daemon=True)
        self.member = name
        self.port = port
        self.interval = interval
        self.stop_event = stop_event
        self.attempts = attempts

    def run(self) -> None:
        conn: Any = None
        while not self.stop_event.is_set():
            start = time.time()
            ok = False
            try:
                if conn is None or conn.closed:
                    conn = connect(self.port, statement_timeout_ms=1000)
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {PROBE_TABLE}(member) VALUES (%s)", (self.member,))
                ok = unreplicated_warning(conn) is None
            except psycopg2.Error:
                if conn is not None and conn.closed:
                    conn = None
            self.attempts.append(Attempt(start, time.time(), ok))
            self.stop_event.wait(max(0.0, self.interval - (time.time() - start)))
        close_quietly(conn)


class Prober:
    def __init__(self, members: list[tuple[str, int]], interval: float = 0.1) -> None:
        self.log = ProbeLog()
        self._stop_event = threading.Event()
        self._threads: list[MemberProbe] = []
        for name, port in members:
            attempts: list[Attempt] = []
            self.log.attempts[name] = attempts
            self._threads.append(MemberProbe(name, port, interval, self._stop_event, attempts))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10) -> ProbeLog:
        self._stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        return self.log
