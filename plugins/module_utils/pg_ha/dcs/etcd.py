# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd v2 backend through python-etcd (Debian python3-etcd / PyPI python-etcd 0.4.5).

The session is the ttl on the keys: the leader key is created with ``prevExist=false``
and refreshed with ``prevValue=<name>``; member keys are written with the ttl.
Versions are ``modifiedIndex`` values (``prevIndex`` compare-and-swap).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import etcd  # python-etcd
import urllib3

from ..core.model import Cluster, Leader
from .base import DCSError, KeyValueDCS, Node, WatchNotifier, cluster_from_nodes, parse_hosts

logger = logging.getLogger(__name__)
# python-etcd logs every failed attempt at ERROR; our DCSError messages say it once.
logging.getLogger("etcd.client").setLevel(logging.CRITICAL)

WATCH_POLL = 5.0  # seconds one long-poll waits before it is re-issued (also close() latency)
_ANSWERS = (etcd.EtcdCompareFailed, etcd.EtcdKeyNotFound, etcd.EtcdAlreadyExist)
_DELETED = ("delete", "expire", "compareAndDelete")


def _index_of(exc: etcd.EtcdException) -> int:
    payload = exc.payload if isinstance(exc.payload, dict) else {}
    try:
        return int(payload.get("index") or 0)
    except (TypeError, ValueError):
        return 0


class Etcd(KeyValueDCS):
    """Patroni-compatible keys in etcd through the v2 API."""

    def __init__(self, namespace: str, scope: str, name: str, ttl: int, retry_timeout: float,
                 hosts: list[str], protocol: str = "http", username: str | None = None,
                 password: str | None = None, cacert: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(namespace, scope, name, ttl, retry_timeout)
        self._hosts = parse_hosts(hosts)
        options: dict[str, Any] = {"protocol": protocol, "read_timeout": retry_timeout,
                                   "allow_reconnect": False, "allow_redirect": False}
        if cert:
            options["cert"] = (cert, key) if key else cert
        if cacert:
            options["ca_cert"] = cacert
        if username:
            options.update(username=username, password=password)
        self._clients = [self._make_client(host, port, options) for host, port in self._hosts]
        self._current = 0
        self._notifier = WatchNotifier()
        self._watcher: _Watcher | None = None
        self._watcher_lock = threading.Lock()
        self._closed = False
        # what close() may remove: only keys this object wrote (pg_hactl may share our name)
        self._member_written = False
        self._maybe_leader = False

    @staticmethod
    def _make_client(host: str, port: int, options: dict[str, Any]) -> etcd.Client:
        client = etcd.Client(host=host, port=port, **options)
        # urllib3 must never re-send on its own: a re-sent compare-and-swap that had
        # already been applied would report failure. Retries are ours (bounded).
        client.http.connection_pool_kw["retries"] = False
        return client

    # -- plumbing -----------------------------------------------------------------
    def request(self, method: str, path: str, params: dict[str, str] | None = None,
                idempotent: bool = True, timeout: float | None = None) -> tuple[dict[str, Any], int]:
        """One v2 keys request with the hosts tried in turn within ``retry_timeout``.

        Returns (JSON answer, X-Etcd-Index). Compare failures / missing / existing keys
        and cleared event indexes are raised as python-etcd's exceptions; every other
        failure is a DCSError."""
        deadline = time.monotonic() + (timeout or self.retry_timeout)
        count = len(self._clients)
        index, tries, last = self._current, 0, "no attempt"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DCSError(f"etcd {method} {path} failed within {self.retry_timeout}s: {last}")
            client = self._clients[index]
            where = f"{self._hosts[index][0]}:{self._hosts[index][1]}"
            try:
                resp = client.api_execute(client.key_endpoint + path, method, params=params,
                                          timeout=max(min(remaining, 1.0), remaining / count))
                self._current = index
                try:
                    doc = json.loads(resp.data.decode("utf-8"))
                    etcd_index = int(resp.headers.get("x-etcd-index") or 0)
                except (ValueError, UnicodeError) as exc:
                    raise DCSError(f"etcd {path}: unreadable answer: {exc}") from exc
                return (doc if isinstance(doc, dict) else {}), etcd_index
            except (DCSError, *_ANSWERS, etcd.EtcdEventIndexCleared):
                raise
            except etcd.EtcdConnectionFailed as exc:
                cause = exc.cause
                if not (idempotent or isinstance(cause, urllib3.exceptions.ConnectTimeoutError)):
                    raise DCSError(f"etcd {method} {path} on {where}: outcome unknown: {exc}") from exc
                last = f"{where}: {exc}"
            except etcd.EtcdException as exc:
                if not idempotent or isinstance(exc, (etcd.EtcdKeyError, etcd.EtcdValueError,
                                                      etcd.EtcdInsufficientPermissions)):
                    raise DCSError(f"etcd {method} {path} on {where}: {exc}") from exc
                last = f"{where}: {exc}"
            except Exception as exc:  # noqa: BLE001 - python-etcd lets some errors through
                raise DCSError(f"etcd {method} {path} on {where}: {exc!r}") from exc
            tries += 1
            index = (index + 1) % count
            if tries % count == 0:
                pause = min(0.1 * 2 ** (tries // count - 1), 1.0, deadline - time.monotonic())
                if pause > 0:
                    time.sleep(pause)

    def _write(self, path: str, value: str, idempotent: bool = True, **params: Any) -> bool:
        """PUT a key; False when the condition in `params` does not hold."""
        fields = {"value": value}
        for name, val in params.items():
            if val is not None:
                fields[name] = ("true" if val else "false") if isinstance(val, bool) else str(val)
        try:
            self.request("PUT", self.client_path(path), fields, idempotent=idempotent)
        except _ANSWERS:
            return False
        return True

    def _delete(self, path: str, idempotent: bool = True, missing_ok: bool = True, **params: Any) -> bool:
        fields = {name: str(val) for name, val in params.items() if val is not None}
        try:
            self.request("DELETE", path, fields, idempotent=idempotent)
        except etcd.EtcdKeyNotFound:
            return missing_ok
        except _ANSWERS:
            return False
        return True

    def _put(self, path: str, value: str) -> bool:
        return self._write(path, value)

    def _cas_put(self, path: str, value: str, version: int | None) -> bool:
        if version is None:
            return self._write(path, value)
        if version == 0:  # "absent" (v2 ignores prevIndex=0)
            return self._write(path, value, idempotent=False, prevExist=False)
        return self._write(path, value, idempotent=False, prevIndex=version)

    def _cas_delete(self, path: str, version: int | None) -> bool:
        if version is None:
            return self._delete(self.client_path(path))
        return self._delete(self.client_path(path), idempotent=False, missing_ok=False, prevIndex=version)

    # -- reads --------------------------------------------------------------------
    def get_cluster(self) -> Cluster:
        try:
            doc, etcd_index = self.request("GET", self.base_path, {"recursive": "true", "quorum": "true"})
        except etcd.EtcdKeyNotFound as exc:
            self._notifier.snapshot(_index_of(exc))
            return Cluster()
        except etcd.EtcdException as exc:  # any other definite answer
            raise DCSError(f"etcd read of {self.base_path}: {exc}") from exc
        prefix = self.base_path + "/"
        nodes: dict[str, Node] = {}

        def walk(node: Any) -> None:
            children = node.get("nodes") if isinstance(node, dict) else None
            for child in children if isinstance(children, list) else []:
                if not isinstance(child, dict):
                    continue
                if child.get("dir"):
                    walk(child)
                    continue
                key = str(child.get("key") or "")
                if key.startswith(prefix):
                    try:
                        version = int(child.get("modifiedIndex") or 0)
                        ttl = int(child["ttl"]) if child.get("ttl") is not None else None
                    except (TypeError, ValueError):
                        version, ttl = 0, None
                    value = child.get("value")
                    nodes[key[len(prefix):]] = Node(value if isinstance(value, str) else "", version, ttl)

        walk(doc.get("node"))
        self._notifier.snapshot(etcd_index)
        return cluster_from_nodes(nodes)

    # -- member / leader ----------------------------------------------------------
    def touch_member(self, data: dict[str, Any]) -> bool:
        self._member_written = True
        return self._write(f"members/{self.name}", json.dumps(data, separators=(",", ":")), ttl=self.ttl)

    def attempt_to_acquire_leader(self) -> bool:
        self._maybe_leader = True
        return self._write("leader", self.name, idempotent=False, ttl=self.ttl, prevExist=False)

    def update_leader(self, leader: Leader, last_lsn: int | None) -> bool:
        self._maybe_leader = True
        if not self._write("leader", self.name, ttl=self.ttl, prevValue=self.name):
            return False
        if last_lsn is not None:
            try:
                self._write("optime/leader", str(last_lsn))
            except DCSError as exc:
                logger.warning("could not write optime/leader: %s", exc)
        return True

    def delete_leader(self, leader: Leader | None, last_lsn: int | None = None) -> bool:
        if last_lsn is not None and (leader is None or leader.name == self.name):
            self._write("optime/leader", str(last_lsn))
        return self._delete(self.leader_path, idempotent=False, missing_ok=False, prevValue=self.name)

    # -- cluster-wide keys --------------------------------------------------------
    def initialize(self, create_new: bool = True, sysid: str = "") -> bool:
        if create_new:
            return self._write("initialize", sysid, idempotent=False, prevExist=False)
        return self._write("initialize", sysid)

    def cancel_initialization(self) -> bool:
        return self._delete(self.client_path("initialize"))

    def write_status(self, value: dict[str, Any]) -> bool:
        self._write("status", json.dumps(value, separators=(",", ":")))
        optime = value.get("optime")
        if isinstance(optime, int) and not isinstance(optime, bool):
            self._write("optime/leader", str(optime))
        return True

    def write_failsafe(self, value: dict[str, Any]) -> bool:
        return self._write("failsafe", json.dumps(value, separators=(",", ":")))

    def delete_cluster(self) -> bool:
        return self._delete(self.base_path, recursive="true", dir="true")

    # -- waiting ------------------------------------------------------------------
    def watch(self, timeout: float) -> bool:
        with self._watcher_lock:
            if not self._closed and (self._watcher is None or not self._watcher.is_alive()):
                self._watcher = _Watcher(self)
                self._watcher.start()
        return self._notifier.wait(timeout)

    def wakeup(self) -> None:
        self._notifier.wakeup()

    def close(self, release: bool = True) -> None:
        """Stop the watcher and drop the keys this object wrote (the v2 'session')."""
        with self._watcher_lock:
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        drop = [(self.leader_path, {"prevValue": self.name})] if self._maybe_leader else []
        if self._member_written:
            drop.append((self.member_path, {}))
        self._maybe_leader = self._member_written = False
        for path, params in drop:
            try:
                self._delete(path, idempotent=False, **params)
            except DCSError as exc:
                logger.warning("could not delete %s on close: %s", path, exc)


class _Watcher(threading.Thread):
    """Long-polls the scope directory (recursive, from the last index) and fires the
    notifier for changes of the leader key (deleted/expired/new owner) and of failover."""

    def __init__(self, dcs: Etcd) -> None:
        super().__init__(name=f"etcd-watch-{dcs.scope}", daemon=True)
        self.dcs = dcs
        self.stopping = threading.Event()
        self.index = 0  # highest modifiedIndex seen

    def run(self) -> None:
        delay = 0.2
        while not self.stopping.is_set():
            try:
                self._poll()  # one event (progress) or a timeout after WATCH_POLL
                delay = 0.2
                continue
            except etcd.EtcdWatchTimedOut:
                continue  # nothing happened for WATCH_POLL seconds: poll again
            except etcd.EtcdEventIndexCleared as exc:  # fell behind the event history
                self.dcs._notifier.fire(None)  # something may have been missed: re-read
                current = _index_of(exc)
                if current > self.index:
                    self.index = current
                    continue
            except Exception as exc:  # noqa: BLE001 - the watcher must survive anything
                logger.debug("etcd watch: %r", exc)
            self.stopping.wait(delay)
            delay = min(delay * 2, 5.0)

    def _poll(self) -> None:
        dcs = self.dcs
        start = max(self.index, dcs._notifier.seen) + 1
        params = {"wait": "true", "recursive": "true", "waitIndex": str(start)}
        client = dcs._clients[dcs._current]
        resp = client.api_execute(client.key_endpoint + dcs.base_path, "GET", params=params, timeout=WATCH_POLL)
        doc = json.loads(resp.data.decode("utf-8"))
        if not self.stopping.is_set():
            self.handle(doc, start)

    def handle(self, doc: Any, start: int) -> None:
        """One answer of a long-poll that asked for events from index `start`."""
        if not isinstance(doc, dict):
            return
        dcs = self.dcs
        node = doc.get("node") if isinstance(doc.get("node"), dict) else {}
        prev = doc.get("prevNode") if isinstance(doc.get("prevNode"), dict) else {}
        try:
            index = int(node.get("modifiedIndex") or 0)
        except (TypeError, ValueError):
            index = 0
        index = max(index, start)  # never ask for the same event twice
        self.index = max(self.index, index)
        key, action = str(node.get("key") or ""), doc.get("action")
        if key == dcs.client_path("failover"):
            dcs._notifier.fire(index)
        elif key == dcs.leader_path:
            if action in _DELETED or not prev or prev.get("value") != node.get("value"):
                dcs._notifier.fire(index)
        elif action in _DELETED and dcs.leader_path.startswith(key.rstrip("/") + "/"):
            dcs._notifier.fire(index)  # the scope directory itself went away

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(0.2)  # a pending long-poll ends by itself within WATCH_POLL
