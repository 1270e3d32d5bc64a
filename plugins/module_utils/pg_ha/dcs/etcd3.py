# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd v3 backend over etcd's JSON gRPC gateway, standard library only.

One lease per daemon carries the member key and the leader key; compare-and-swap goes
through ``/v3/kv/txn``; a background thread streams ``/v3/watch`` over the keys from
``failover`` to ``leader`` and wakes :meth:`Etcd3.watch` when the leader key is deleted
or changes owner, or the failover key is written or deleted.
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .base import AbstractDCS, Cluster, DCSError, Leader, Node, WatchNotifier, cluster_from_nodes
from .etcd3_client import Etcd3Client, EtcdError, as_int, b64, error_from, prefix_end, unb64

logger = logging.getLogger(__name__)
T = TypeVar("T")

WATCH_IDLE_TIMEOUT = 30.0  # re-open a silent watch stream after this long (dead peers)


class _Watcher(threading.Thread):
    """Streams /v3/watch over [failover, leader] and fires the DCS's notifier."""

    def __init__(self, dcs: Etcd3) -> None:
        super().__init__(name=f"etcd3-watch-{dcs.scope}", daemon=True)
        self.dcs = dcs
        self.stopping = threading.Event()
        self.revision = 0  # highest revision seen on the stream
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = 0.2
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self._stream()
            except TimeoutError:
                pass  # idle stream: open a new one from the same revision
            except Exception as exc:  # noqa: BLE001 - the watcher must survive anything
                if isinstance(exc, EtcdError) and exc.invalid_token:
                    self.dcs._client.invalidate_token()
                logger.debug("etcd3 watch: %r", exc)
            if time.monotonic() - started > 10:
                delay = 0.2
            else:
                delay = min(delay * 2, 5.0)
            self.stopping.wait(delay)

    def _stream(self) -> None:
        dcs = self.dcs
        # From the snapshot's own revision, not the next one: should etcd have compacted
        # exactly at the next revision, that event is gone and only a start below the
        # compaction point makes etcd say so (the replayed old event is filtered out).
        start = max(self.revision, dcs._notifier.seen)
        body = {"create_request": {"key": b64(dcs.client_path("failover")),
                                   "range_end": b64(dcs.leader_path + "\0"),
                                   "start_revision": str(start), "prev_kv": True}}
        conn, resp = dcs._client.open_stream("/v3/watch", body, dcs.retry_timeout)
        with self._lock:
            self._conn = conn
        try:
            if self.stopping.is_set():
                return
            if conn.sock is not None:
                conn.sock.settimeout(WATCH_IDLE_TIMEOUT)
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
            compacted = as_int(result.get("compact_revision")) or 0
            if compacted:  # events we had not seen are gone: re-read to be safe
                self.revision = max(self.revision, compacted)  # the oldest start allowed
                self.dcs._notifier.fire(None)
            raise EtcdError(f"watch canceled: {result.get('cancel_reason') or 'compacted'}")
        for event in result.get("events") or []:
            self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        kv = event.get("kv") or {}
        key = unb64(kv.get("key"))
        revision = as_int(kv.get("mod_revision")) or 0
        self.revision = max(self.revision, revision)
        if key == self.dcs.client_path("failover"):
            self.dcs._notifier.fire(revision)
        elif key == self.dcs.leader_path:
            prev = event.get("prev_kv")
            deleted = event.get("type") == "DELETE"
            if deleted or not prev or unb64(prev.get("value")) != unb64(kv.get("value")):
                self.dcs._notifier.fire(revision)

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


def _put(key: str, value: str, lease: int | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def _delete(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def _compare(key: str, target: str, value: Any) -> dict[str, Any]:
    field = {"CREATE": "create_revision", "MOD": "mod_revision", "VALUE": "value"}[target]
    return {"key": b64(key), "target": target, "result": "EQUAL",
            field: b64(value) if target == "VALUE" else str(value)}


class Etcd3(AbstractDCS):
    """Patroni-compatible keys in etcd through the v3 API."""

    def __init__(self, namespace: str, scope: str, name: str, ttl: int, retry_timeout: float,
                 hosts: list[str], protocol: str = "http", username: str | None = None,
                 password: str | None = None, cacert: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(namespace, scope, name, ttl, retry_timeout)
        self._client = Etcd3Client(hosts, protocol, username, password, cacert, cert, key, retry_timeout)
        self._notifier = WatchNotifier()
        self._lease: int | None = None
        self._lease_ttl = 0
        self._lease_lock = threading.Lock()
        self._watcher: _Watcher | None = None
        self._watcher_lock = threading.Lock()
        self._closed = False

    def set_retry_timeout(self, retry_timeout: float) -> None:
        super().set_retry_timeout(retry_timeout)
        self._client.retry_timeout = retry_timeout

    @property
    def lease(self) -> int | None:
        return self._lease

    # -- plumbing -----------------------------------------------------------------
    def _txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
             idempotent: bool = False) -> bool:
        doc = self._client.call("/v3/kv/txn", {"compare": compare, "success": success},
                                idempotent=idempotent)
        return bool(doc.get("succeeded"))

    def _refresh_lease(self) -> int:
        """Keep our lease alive; grant a new one when it expired or the ttl changed."""
        with self._lease_lock:
            if self._lease is not None and self._lease_ttl == self.ttl:
                doc = self._client.call("/v3/lease/keepalive", {"ID": str(self._lease)})
                result = doc.get("result") or {}
                if (as_int(result.get("TTL")) or 0) > 0:
                    return self._lease
                logger.warning("etcd lease %x expired: granting a new one", self._lease)
            doc = self._client.call("/v3/lease/grant", {"TTL": self.ttl})
            lease = as_int(doc.get("ID"))
            if not lease:
                raise DCSError(f"lease grant gave no ID: {doc!r}")
            self._lease, self._lease_ttl = lease, self.ttl
            return lease

    def _with_lease(self, func: Callable[[int], T]) -> T:
        """Run `func(lease)`; if etcd lost the lease meanwhile, once more with a new one."""
        lease = self._refresh_lease()
        try:
            return func(lease)
        except EtcdError as exc:
            if not exc.lease_not_found:
                raise
        with self._lease_lock:
            if self._lease == lease:
                self._lease = None
        return func(self._refresh_lease())

    def _put(self, path: str, value: str) -> bool:
        self._client.call("/v3/kv/put", {"key": b64(self.client_path(path)), "value": b64(value)})
        return True

    def _cas_put(self, path: str, value: str, version: int | None) -> bool:
        if version is None:
            return self._put(path, value)
        key = self.client_path(path)
        return self._txn([_compare(key, "MOD", version)], [_put(key, value)])

    def _cas_delete(self, path: str, version: int | None) -> bool:
        key = self.client_path(path)
        if version is None:
            self._client.call("/v3/kv/deleterange", {"key": b64(key)})
            return True
        return self._txn([_compare(key, "MOD", version)], [_delete(key)])

    # -- reads --------------------------------------------------------------------
    def get_cluster(self) -> Cluster:
        prefix = self.base_path + "/"
        doc = self._client.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        nodes: dict[str, Node] = {}
        try:
            revision = int((doc.get("header") or {}).get("revision") or 0)
            for kv in doc.get("kvs") or []:
                key = unb64(kv.get("key"))
                if key.startswith(prefix):
                    version = as_int(kv.get("mod_revision")) or 0
                    nodes[key[len(prefix):]] = Node(unb64(kv.get("value")), version,
                                                    as_int(kv.get("lease")) or None)
        except (AttributeError, TypeError, ValueError) as exc:
            raise DCSError(f"unexpected range answer from etcd: {exc!r}") from exc
        self._notifier.snapshot(revision)
        return cluster_from_nodes(nodes)

    # -- member / leader ----------------------------------------------------------
    def touch_member(self, data: dict[str, Any]) -> bool:
        value = json.dumps(data, separators=(",", ":"))
        key = self.member_path

        def put(lease: int) -> bool:
            self._client.call("/v3/kv/put", {"key": b64(key), "value": b64(value), "lease": str(lease)})
            return True
        return self._with_lease(put)

    def attempt_to_acquire_leader(self) -> bool:
        key = self.leader_path
        return self._with_lease(
            lambda lease: self._txn([_compare(key, "CREATE", 0)], [_put(key, self.name, lease)]))

    def update_leader(self, leader: Leader, last_lsn: int | None) -> bool:
        key = self.leader_path

        def update(lease: int) -> bool:
            success = []
            if leader is None or leader.session != lease:  # re-attach to our current lease
                success.append(_put(key, self.name, lease))
            if last_lsn is not None:
                success.append(_put(self.client_path("optime/leader"), str(last_lsn)))
            return self._txn([_compare(key, "VALUE", self.name)], success)
        return self._with_lease(update)

    def delete_leader(self, leader: Leader | None, last_lsn: int | None = None) -> bool:
        key = self.leader_path
        success = [_put(self.client_path("optime/leader"), str(last_lsn))] if last_lsn is not None else []
        return self._txn([_compare(key, "VALUE", self.name)], [*success, _delete(key)])

    # -- cluster-wide keys --------------------------------------------------------
    def initialize(self, create_new: bool = True, sysid: str = "") -> bool:
        if not create_new:
            return self._put("initialize", sysid)
        key = self.client_path("initialize")
        return self._txn([_compare(key, "CREATE", 0)], [_put(key, sysid)])

    def cancel_initialization(self) -> bool:
        return self._cas_delete("initialize", None)

    def set_config_value(self, value: str, version: int | None = None) -> bool:
        return self._cas_put("config", value, version)

    def set_failover_value(self, value: str, version: int | None = None) -> bool:
        if value == "":
            return self._cas_delete("failover", version)
        return self._cas_put("failover", value, version)

    def set_history_value(self, value: str) -> bool:
        return self._put("history", value)

    def set_sync_state_value(self, value: str, version: int | None = None) -> bool:
        return self._cas_put("sync", value, version)

    def delete_sync_state(self, version: int | None = None) -> bool:
        return self._cas_delete("sync", version)

    def write_status(self, value: dict[str, Any]) -> bool:
        ops = [_put(self.client_path("status"), json.dumps(value, separators=(",", ":")))]
        optime = value.get("optime")
        if isinstance(optime, int) and not isinstance(optime, bool):
            ops.append(_put(self.client_path("optime/leader"), str(optime)))
        self._client.call("/v3/kv/txn", {"compare": [], "success": ops})
        return True

    def write_failsafe(self, value: dict[str, Any]) -> bool:
        return self._put("failsafe", json.dumps(value, separators=(",", ":")))

    def delete_cluster(self) -> bool:
        prefix = self.base_path + "/"
        self._client.call("/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return True

    # -- waiting ------------------------------------------------------------------
    def watch(self, timeout: float) -> bool:
        with self._watcher_lock:
            if not self._closed and (self._watcher is None or not self._watcher.is_alive()):
                self._watcher = _Watcher(self)
                self._watcher.start()
        return self._notifier.wait(timeout)

    def wakeup(self) -> None:
        self._notifier.wakeup()

    def close(self) -> None:
        with self._watcher_lock:
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        with self._lease_lock:
            lease, self._lease = self._lease, None
        if lease:
            try:
                self._client.call("/v3/lease/revoke", {"ID": str(lease)})
            except DCSError as exc:
                if not (isinstance(exc, EtcdError) and exc.lease_not_found):
                    logger.warning("could not revoke etcd lease %x: %s", lease, exc)
