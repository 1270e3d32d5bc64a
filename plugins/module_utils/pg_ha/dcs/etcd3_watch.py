# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd v3 watcher: one ``/v3/watch`` stream over the whole ``/<namespace>/<scope>/``
prefix, feeding every event into the DCS's :class:`KVCache` and waking the HA loop (the
DCS's notifier) when the leader key is deleted or changes owner, or the failover key is
written or deleted."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any, Protocol

from ..http1 import Connection
from .base import Node, WatchNotifier
from .etcd3_client import Etcd3Client, EtcdError, as_int, b64, error_from, prefix_end, unb64
from .kvcache import Event, KVCache

logger = logging.getLogger(__name__)

# A silent stream is normal at idle. A dead peer (host gone, no RST) is found by TCP
# keepalive probes (no etcd requests: KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL
# = 25 s); the stream is re-opened anyway after WATCH_IDLE_TIMEOUT without a line.
WATCH_IDLE_TIMEOUT = 120.0
# etcd ends the stream of a member that lost its raft leader (clientv3's WithRequireLeader):
# a partitioned member would otherwise keep a stream open that delivers nothing.
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3


def enable_tcp_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        option = getattr(socket, name, None)
        if option is not None:  # Linux; elsewhere the system defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class WatchedEtcd3(Protocol):
    """What the watcher uses of its DCS, dcs/etcd3.py's Etcd3 (which imports this module):
    its cache, client and notifier are the watcher's to feed, read and fire."""

    scope: str
    retry_timeout: float
    cache: KVCache
    _client: Etcd3Client
    _notifier: WatchNotifier

    @property
    def base_path(self) -> str: ...

    def read_all(self) -> int: ...


class Etcd3Watcher(threading.Thread):
    def __init__(self, dcs: WatchedEtcd3) -> None:
        super().__init__(name=f"etcd3-watch-{dcs.scope}", daemon=True)
        self.dcs = dcs
        self.stopping = threading.Event()
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = 0.2
        cache = self.dcs.cache
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if not cache.loaded:
                    self.dcs.read_all()  # the base revision the stream starts from
                self._stream()
            except TimeoutError:
                pass  # idle stream: open a new one from the cache's revision (nothing is lost)
            except Exception as exc:  # noqa: BLE001 - the watcher must survive anything
                if isinstance(exc, EtcdError) and exc.invalid_token:
                    self.dcs._client.invalidate_token()
                cache.invalidate()  # events may have been missed: the next read is a full one
                logger.debug("etcd3 watch: %r", exc)
            finally:
                cache.set_streaming(False)
            if time.monotonic() - started > 10:
                delay = 0.2
            else:
                delay = min(delay * 2, 5.0)
            self.stopping.wait(delay)

    def _stream(self) -> None:
        dcs, cache = self.dcs, self.dcs.cache
        prefix = dcs.base_path + "/"
        # From the cache's own revision, not the next one: should etcd have compacted exactly
        # at the next revision, that event is gone and only a start below the compaction
        # point makes etcd say so (the replayed events at that revision are skipped).
        body = {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                   "start_revision": str(max(cache.revision, 1)), "prev_kv": True}}
        conn, resp = dcs._client.open_stream("/v3/watch", body, dcs.retry_timeout, REQUIRE_LEADER)
        with self._lock:
            self._conn = conn
        try:
            if self.stopping.is_set():
                return
            if conn.sock is not None:
                conn.sock.settimeout(WATCH_IDLE_TIMEOUT)
                enable_tcp_keepalive(conn.sock)
            while not self.stopping.is_set():
                line = resp.readline()
                if not line:
                    return  # etcd closed the stream (restart, shutdown)
                if line.strip():
                    self._handle(json.loads(line))
        finally:
            with self._lock:
                self._conn = None
            conn.close()

    def _handle(self, doc: Any) -> None:
        error = error_from(doc, 200)
        if error is not None:
            raise error
        result = doc.get("result") or {}
        if result.get("canceled"):
            if as_int(result.get("compact_revision")):  # events we had not seen are gone
                self.dcs._notifier.fire(None)  # the caller re-reads (the cache is invalidated)
            raise EtcdError(f"watch canceled: {result.get('cancel_reason') or 'compacted'}")
        if result.get("created"):
            self.dcs.cache.set_streaming(True)
        events = result.get("events") or []
        if events:
            self._events(events)

    def _events(self, raw: list[dict[str, Any]]) -> None:
        dcs = self.dcs
        prefix = dcs.base_path + "/"
        parsed: list[Event] = []
        wake: int | None = None
        for event in raw:
            kv = event.get("kv") or {}
            key = unb64(kv.get("key"))
            if not key.startswith(prefix):
                continue
            path = key[len(prefix):]
            revision = as_int(kv.get("mod_revision")) or 0
            deleted = event.get("type") == "DELETE"
            node = None if deleted else Node(unb64(kv.get("value")), revision, as_int(kv.get("lease")) or None)
            parsed.append(Event(path, revision, node))
            if path == "failover":
                wake = revision
            elif path == "leader":
                prev = event.get("prev_kv")
                if deleted or not prev or unb64(prev.get("value")) != unb64(kv.get("value")):
                    wake = revision
        dcs.cache.apply(parsed)  # before waking: the woken reader finds the change in the cache
        if wake is not None:
            dcs._notifier.fire(wake)

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.is_alive() and threading.current_thread() is not self:
            self.join(5)
