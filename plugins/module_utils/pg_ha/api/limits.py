# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one client may hold of the REST API: a connection among at most MAX_CONNECTIONS,
and a request that arrives whole within REQUEST_DEADLINE.

Without a cap every idle or half-sent connection holds a worker thread for up to the idle
timeout, and a client that opens thousands of them (or sends one byte every few seconds,
"slowloris") exhausts threads and memory while HAProxy's checks and the leader race need
answers. Here, when the cap is reached, the connection that has waited longest for its
request to arrive whole (idle, or sending it slowly) is closed to admit the new one: a
client that sends its request gets served, one that only holds sockets loses them first.
A connection whose request arrived whole and is being answered is never closed for
another. One-shot health checks answered by the accept loop (inline.py) take no place.
"""
from __future__ import annotations

import io
import socket
import threading
import time
from typing import Any

MAX_CONNECTIONS = 200
REQUEST_DEADLINE = 10.0  # seconds from a request's first byte until its last (head and body)


class ConnectionTable:
    """The connections handed to workers; which of them wait for (or receive) a request,
    since when."""

    def __init__(self, cap: int = MAX_CONNECTIONS) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self._waiting: dict[Any, float] = {}  # connection -> monotonic time it began to wait

    def admit(self, conn: Any) -> bool:
        """Count `conn` in; at the cap, first close the longest-waiting connection. False
        (conn not admitted) when every open connection is busy with a request."""
        victim = None
        with self._lock:
            if len(self._open) >= self.cap:
                if not self._waiting:
                    return False
                victim = min(self._waiting, key=self._waiting.__getitem__)
                self._forget(victim)
            self._open.add(conn)
            self._waiting[conn] = time.monotonic()  # until its first byte
        if victim is not None:
            _shut(victim)  # its worker's read ends, and with it the connection
        return True

    def waiting(self, conn: Any) -> None:
        with self._lock:
            if conn in self._open:
                self._waiting[conn] = time.monotonic()

    def busy(self, conn: Any) -> None:
        with self._lock:
            self._waiting.pop(conn, None)

    def discard(self, conn: Any) -> None:
        with self._lock:
            self._forget(conn)

    def _forget(self, conn: Any) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def close_all(self) -> None:
        with self._lock:
            connections = list(self._open)
        for conn in connections:
            _shut(conn)


def _shut(conn: Any) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class DeadlineReader(io.RawIOBase):
    """The socket's bytes for a BufferedReader; each read waits at most `idle` seconds,
    or, once a deadline is set, only until the deadline (TimeoutError after it)."""

    def __init__(self, sock: Any, idle: float | None) -> None:
        super().__init__()
        self._sock = sock
        self.idle = idle
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            timeout = self.idle
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("the request did not arrive whole within its deadline")
        self._sock.settimeout(timeout)
        return int(self._sock.recv_into(buffer))
