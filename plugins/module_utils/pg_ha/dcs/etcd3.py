# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd v3 backend over etcd's JSON gRPC gateway, standard library only.

One lease per daemon carries the member key and the leader key; compare-and-swap goes
through ``/v3/kv/txn``. A background thread (etcd3_watch.py) streams ``/v3/watch`` over the
whole scope into a cache (kvcache.py) and wakes :meth:`Etcd3.watch` when the leader key is
deleted or changes owner, or the failover key is written or deleted.

Requests at idle: one lease keepalive per cycle on the leader, one per ttl/3 on the other
members (in get_cluster: it also proves etcd is reachable); the cluster is served from the
cache while the watch streams. The member key and the leader's
optime are written only when their content changed (or the lease did: the keepalive keeps
keys bound to the lease alive); the leader's lock is checked by a compare-and-set only when
the cache does not already show it ours on our live lease. Our own writes are read back: a
get_cluster after a write waits for the watch to deliver it, or reads etcd.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..core.model import Cluster, Leader
from .base import DCSError, KeyValueDCS, Node, WatchNotifier, cluster_from_nodes
from .etcd3_client import Etcd3Client, EtcdError, as_int, b64, prefix_end, unb64
from .etcd3_watch import Etcd3Watcher
from .kvcache import KVCache, leader_refresh, member_write_needed

logger = logging.getLogger(__name__)
T = TypeVar("T")

READ_BACK_WAIT = 0.5  # seconds get_cluster waits for the watch to deliver our own last write
KEEPALIVE_REUSE = 1.0  # a keepalive younger than this (and than ttl/4) serves the writes of a cycle


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


class Etcd3(KeyValueDCS):
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
        self._keepalive_at = 0.0  # monotonic time the last successful keepalive/grant was sent
        self._watcher: Etcd3Watcher | None = None
        self._watcher_lock = threading.Lock()
        self._closed = False
        self.cache = KVCache()
        self._written = 0  # revision of our last write (get_cluster reads it back)
        self._built: tuple[int, Cluster] | None = None  # (cache stamp, Cluster built from it)

    def set_retry_timeout(self, retry_timeout: float) -> None:
        super().set_retry_timeout(retry_timeout)
        self._client.retry_timeout = retry_timeout

    @property
    def lease(self) -> int | None:
        return self._lease

    # -- plumbing -----------------------------------------------------------------
    def _wrote(self, doc: dict[str, Any]) -> None:
        """Remember the revision a write of ours created, to read it back."""
        revision = as_int((doc.get("header") or {}).get("revision")) or 0
        self._written = max(self._written, revision)

    def _txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
             idempotent: bool = False) -> bool:
        doc = self._client.call("/v3/kv/txn", {"compare": compare, "success": success},
                                idempotent=idempotent)
        succeeded = bool(doc.get("succeeded"))
        if succeeded and success:
            self._wrote(doc)
        return succeeded

    def _cycle_reuse(self) -> float:
        """How old a keepalive may be to serve the reads and writes of the same cycle."""
        return min(KEEPALIVE_REUSE, self.ttl / 4)

    def _refresh_lease(self, max_age: float | None = None) -> int:
        """Keep our lease alive; grant a new one when it expired or the ttl changed. A
        keepalive sent less than `max_age` seconds ago counts (default: KEEPALIVE_REUSE and
        ttl/4, so one keepalive serves the reads and writes of one cycle; 0: send one now)."""
        if max_age is None:
            max_age = self._cycle_reuse()
        with self._lease_lock:
            if self._lease is not None and self._lease_ttl == self.ttl:
                if time.monotonic() - self._keepalive_at < max_age:
                    return self._lease
                sent = time.monotonic()
                self._keepalive_at = 0.0  # a failed keepalive is never reused
                doc = self._client.call("/v3/lease/keepalive", {"ID": str(self._lease)})
                result = doc.get("result") or {}
                if (as_int(result.get("TTL")) or 0) > 0:
                    self._keepalive_at = sent
                    return self._lease
                logger.warning("etcd lease %x expired: granting a new one", self._lease)
            self._keepalive_at = 0.0
            sent = time.monotonic()
            doc = self._client.call("/v3/lease/grant", {"TTL": self.ttl})
            lease = as_int(doc.get("ID"))
            if not lease:
                raise DCSError(f"lease grant gave no ID: {doc!r}")
            self._lease, self._lease_ttl, self._keepalive_at = lease, self.ttl, sent
            return lease

    def _with_lease(self, func: Callable[[int], T], max_age: float | None = None) -> T:
        """Run `func(lease)`; if etcd lost the lease meanwhile, once more with a new one."""
        lease = self._refresh_lease(max_age)
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
        self._wrote(self._client.call("/v3/kv/put", {"key": b64(self.client_path(path)), "value": b64(value)}))
        return True

    def _cas_put(self, path: str, value: str, version: int | None) -> bool:
        if version is None:
            return self._put(path, value)
        key = self.client_path(path)
        return self._txn([_compare(key, "MOD", version)], [_put(key, value)])

    def _cas_delete(self, path: str, version: int | None) -> bool:
        key = self.client_path(path)
        if version is None:
            doc = self._client.call("/v3/kv/deleterange", {"key": b64(key)})
            if as_int(doc.get("deleted")):
                self._wrote(doc)
            return True
        return self._txn([_compare(key, "MOD", version)], [_delete(key)])

    # -- reads --------------------------------------------------------------------
    def read_all(self) -> int:
        """One range read of the whole scope into the cache; returns its revision."""
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
        self.cache.reset(nodes, revision)
        return revision

    def keepalive_interval(self) -> float:
        """How often get_cluster keeps the lease alive. Every cycle while the cache shows us
        holding the leader key: that keepalive is the leader's lock refresh. Otherwise only
        the member key hangs on the lease: a keepalive once ttl/3 is old leaves it alive
        through one failed keepalive, with a third of the requests at ttl=10/loop_wait=2."""
        leader = self.cache.node("leader")
        if leader is not None and leader.value == self.name:
            return 0.0
        return self.ttl / 3

    def _cache_usable(self) -> bool:
        """The watch streams into the cache, our last write is in it, and etcd answered
        within keepalive_interval(): the lease keepalive doubles as the check (no lease
        yet: read etcd). A write (acquiring the lock) always sends a fresh keepalive."""
        watcher = self._watcher
        if self._lease is None or watcher is None or not watcher.is_alive() or not self.cache.streaming:
            return False
        self._refresh_lease(self.keepalive_interval())  # raises DCSError when etcd does not answer
        return self.cache.wait_for(self._written, READ_BACK_WAIT)

    def get_cluster(self) -> Cluster:
        if not self._cache_usable():
            self.read_all()
        nodes, revision, stamp = self.cache.snapshot()
        built = self._built
        if built is None or built[0] != stamp:
            built = (stamp, cluster_from_nodes(nodes))
            self._built = built
        self._notifier.snapshot(revision)
        return built[1]

    # -- member / leader ----------------------------------------------------------
    def touch_member(self, data: dict[str, Any]) -> bool:
        value = json.dumps(data, separators=(",", ":"))
        key = self.member_path

        def put(lease: int) -> bool:
            if member_write_needed(self.cache.node(f"members/{self.name}"), value, lease):
                self._wrote(self._client.call("/v3/kv/put", {"key": b64(key), "value": b64(value),
                                                             "lease": str(lease)}))
            return True
        # the member key needs no fresher lease than get_cluster keeps (the leader's: this cycle's)
        return self._with_lease(put, max(self._cycle_reuse(), self.keepalive_interval()))

    def attempt_to_acquire_leader(self) -> bool:
        key = self.leader_path
        return self._with_lease(
            lambda lease: self._txn([_compare(key, "CREATE", 0)], [_put(key, self.name, lease)]))

    def update_leader(self, leader: Leader, last_lsn: int | None) -> bool:
        key = self.leader_path

        def update(lease: int) -> bool:
            plan = leader_refresh(self.cache.node("leader"), self.cache.node("optime/leader"), self.name,
                                  lease, last_lsn, self.cache.streaming)
            if not plan.txn:
                return True  # the cache shows the lock ours on the lease the keepalive just refreshed
            success = []
            if plan.put_leader:  # (re-)attach to our current lease
                success.append(_put(key, self.name, lease))
            if plan.put_optime:
                success.append(_put(self.client_path("optime/leader"), str(last_lsn)))
            return self._txn([_compare(key, "VALUE", self.name)], success)
        return self._with_lease(update)

    def lease_sent_at(self, before: float) -> float:
        """The leader key hangs on our lease: it lives ttl from the last keepalive etcd
        answered, which the call may have reused (KEEPALIVE_REUSE) or sent itself."""
        sent = self._keepalive_at
        return min(before, sent) if sent else before

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

    def write_status(self, value: dict[str, Any]) -> bool:
        ops = [_put(self.client_path("status"), json.dumps(value, separators=(",", ":")))]
        optime = value.get("optime")
        if isinstance(optime, int) and not isinstance(optime, bool):
            ops.append(_put(self.client_path("optime/leader"), str(optime)))
        self._wrote(self._client.call("/v3/kv/txn", {"compare": [], "success": ops}))
        return True

    def write_failsafe(self, value: dict[str, Any]) -> bool:
        return self._put("failsafe", json.dumps(value, separators=(",", ":")))

    def delete_cluster(self) -> bool:
        prefix = self.base_path + "/"
        doc = self._client.call("/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        if as_int(doc.get("deleted")):
            self._wrote(doc)
        return True

    # -- waiting ------------------------------------------------------------------
    def watch(self, timeout: float) -> bool:
        with self._watcher_lock:
            if not self._closed and (self._watcher is None or not self._watcher.is_alive()):
                self._watcher = Etcd3Watcher(self)
                self._watcher.start()
        return self._notifier.wait(timeout)

    def wakeup(self) -> None:
        self._notifier.wakeup()

    def close(self, release: bool = True) -> None:
        with self._watcher_lock:
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        with self._lease_lock:
            lease, self._lease = self._lease, None
        if lease and release:
            try:
                self._client.call("/v3/lease/revoke", {"ID": str(lease)})
            except DCSError as exc:
                if not (isinstance(exc, EtcdError) and exc.lease_not_found):
                    logger.warning("could not revoke etcd lease %x: %s", lease, exc)
        self._client.close()
