# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DCS contract every backend implements (AbstractDCS, DCSError) and the helpers the
backends share (Node -> Cluster, host lists, the watch notifier). The cluster model
itself lives in core/model.py."""
from __future__ import annotations

import abc
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..core.model import (
    Cluster,
    ClusterConfig,
    Failover,
    Leader,
    Member,
    SyncState,
    TimelineHistory,
    parse_int,
    parse_json,
)
from . import garbage


class DCSError(Exception):
    """Any failure to talk to the DCS (timeout, refused, no leader, auth...)."""


class AbstractDCS(abc.ABC):
    """One DCS connection per daemon. Every call is bounded by ``retry_timeout``
    and raises :class:`DCSError` on failure (never hangs, never returns garbage)."""

    def __init__(self, namespace: str, scope: str, name: str, ttl: int, retry_timeout: float) -> None:
        self.namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.scope = scope
        self.name = name
        self.ttl = ttl
        self.retry_timeout = retry_timeout

    # -- paths --------------------------------------------------------------
    @property
    def base_path(self) -> str:
        return f"{self.namespace}/{self.scope}"

    def client_path(self, path: str) -> str:
        return f"{self.base_path}/{path.lstrip('/')}"

    @property
    def leader_path(self) -> str:
        return self.client_path("leader")

    @property
    def member_path(self) -> str:
        return self.client_path(f"members/{self.name}")

    # -- timing -------------------------------------------------------------
    def set_ttl(self, ttl: int) -> None:
        """Takes effect at the next lease grant/refresh."""
        self.ttl = ttl

    def set_retry_timeout(self, retry_timeout: float) -> None:
        self.retry_timeout = retry_timeout

    # -- reads --------------------------------------------------------------
    @abc.abstractmethod
    def get_cluster(self) -> Cluster:
        """One consistent snapshot of every key of the scope."""

    # -- member / leader ----------------------------------------------------
    @abc.abstractmethod
    def touch_member(self, data: dict[str, Any]) -> bool:
        """Write members/<name> (JSON), expiring with this daemon's session (ttl)."""

    @abc.abstractmethod
    def attempt_to_acquire_leader(self) -> bool:
        """Create the leader key with our name iff it does not exist (session-bound)."""

    @abc.abstractmethod
    def update_leader(self, leader: Leader, last_lsn: int | None) -> bool:
        """Refresh the session and check the leader key still holds our name;
        write optime/leader when last_lsn is given. False = we lost the lock."""

    def lease_sent_at(self, before: float) -> float:
        """When the request that renewed our leader lease was sent (time.monotonic()), after
        update_leader or attempt_to_acquire_leader succeeded; `before` is when that call
        started. A backend that may reuse an earlier keepalive for the call says when that
        was sent (etcd v3); the others renew in the call itself, so `before` is right."""
        return before

    @abc.abstractmethod
    def delete_leader(self, leader: Leader | None, last_lsn: int | None = None) -> bool:
        """Delete the leader key iff it holds our name (write optime first)."""

    # -- cluster-wide keys --------------------------------------------------
    @abc.abstractmethod
    def initialize(self, create_new: bool = True, sysid: str = "") -> bool:
        """create_new: create `initialize` iff absent (the bootstrap race);
        otherwise write the system identifier into it."""

    @abc.abstractmethod
    def cancel_initialization(self) -> bool:
        """Delete the `initialize` key (bootstrap failed)."""

    @abc.abstractmethod
    def set_config_value(self, value: str, version: int | None = None) -> bool:
        """Write `config`; with version, only if its mod revision still equals it."""

    @abc.abstractmethod
    def set_failover_value(self, value: str, version: int | None = None) -> bool:
        """Write `failover` (value "" deletes it); CAS on version when given."""

    @abc.abstractmethod
    def set_history_value(self, value: str) -> bool: ...

    @abc.abstractmethod
    def set_sync_state_value(self, value: str, version: int | None = None) -> bool: ...

    @abc.abstractmethod
    def delete_sync_state(self, version: int | None = None) -> bool: ...

    @abc.abstractmethod
    def write_status(self, value: dict[str, Any]) -> bool:
        """Write `status` (JSON: optime, slots...) and optime/leader."""

    @abc.abstractmethod
    def write_failsafe(self, value: dict[str, Any]) -> bool: ...

    @abc.abstractmethod
    def delete_cluster(self) -> bool:
        """Remove every key of the scope (pg_hactl remove)."""

    # -- waiting ------------------------------------------------------------
    @abc.abstractmethod
    def watch(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; return True early as soon as the leader
        or failover key changes (or was already changed since the last
        get_cluster()). Never raises: on DCS errors it simply waits."""

    def wakeup(self) -> None:  # noqa: B027 - optional hook
        """Make a pending or the next watch() return at once."""

    def close(self, release: bool = True) -> None:  # noqa: B027 - optional hook
        """Stop threads and release the session (the leader key goes with it); with
        release=False what the session holds stays until its ttl runs out, where the backend
        can leave it (etcd v3 does not revoke its lease; a ZooKeeper session always closes)."""

    # -- helpers ------------------------------------------------------------
    def manual_failover(
        self, leader: str | None, candidate: str | None,
        scheduled_at: datetime | None = None, version: int | None = None,
    ) -> bool:
        value: dict[str, Any] = {}
        if leader:
            value["leader"] = leader
        if candidate:
            value["member"] = candidate
        if scheduled_at:
            value["scheduled_at"] = scheduled_at.isoformat()
        return self.set_failover_value(json.dumps(value, separators=(",", ":")), version)


class KeyValueDCS(AbstractDCS):
    """The cluster-wide keys of a backend that offers three primitives on a path relative
    to the scope: write, compare-and-set write and compare-and-set delete (version None:
    whatever the version; 0: only if absent)."""

    @abc.abstractmethod
    def _put(self, path: str, value: str) -> bool: ...

    @abc.abstractmethod
    def _cas_put(self, path: str, value: str, version: int | None) -> bool: ...

    @abc.abstractmethod
    def _cas_delete(self, path: str, version: int | None) -> bool: ...

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


# -- helpers shared by the backends ---------------------------------------------
@dataclass(frozen=True)
class Node:
    """One key of the scope as read from the DCS, by path relative to the scope."""

    value: str
    version: int  # mod_revision (etcd3) / modifiedIndex (etcd v2)
    session: str | int | None = None  # lease id (etcd3) / ttl (etcd v2)


def cluster_from_nodes(nodes: Mapping[str, Node]) -> Cluster:
    """Build the snapshot from the keys of one read. Garbage values give absent fields
    (and one warning per key and version)."""
    garbage.report(nodes)

    def get(path: str, factory: Any) -> Any:
        node = nodes.get(path)
        return factory(node.version, node.value) if node is not None else None

    node = nodes.get("leader")
    leader = Leader(node.value, node.version, node.session) if node is not None else None
    status = parse_json(nodes["status"].value) if "status" in nodes else None
    status = status if isinstance(status, dict) else None
    failsafe = parse_json(nodes["failsafe"].value) if "failsafe" in nodes else None
    # Patroni >= 2.1 keeps the leader's optime in `status` and may leave a stale
    # optime/leader behind; we write both. The larger valid one is the latest.
    lsns = [parse_int(nodes["optime/leader"].value) if "optime/leader" in nodes else None]
    if status is not None:
        optime = status.get("optime")
        lsns.append(optime if isinstance(optime, int) and not isinstance(optime, bool) else None)
    members = sorted(
        (Member.from_value(path[8:], n.version, n.value) for path, n in nodes.items()
         if path.startswith("members/") and path[8:] and "/" not in path[8:]),
        key=lambda m: m.name)
    init = nodes.get("initialize")
    return Cluster(
        initialize=init.value if init is not None else None,
        config=get("config", ClusterConfig.from_value),
        leader=leader,
        last_lsn=max((x for x in lsns if x is not None and x >= 0), default=0),
        members=tuple(members),
        failover=get("failover", Failover.from_value),
        sync=get("sync", SyncState.from_value),
        history=get("history", TimelineHistory.from_value),
        status=status,
        failsafe=failsafe if isinstance(failsafe, dict) else None,
    )


def parse_hosts(hosts: list[str] | tuple[str, ...] | str, default_port: int = 2379) -> list[tuple[str, int]]:
    """``["h1:2379", "[::1]:2379", "http://h2:2379"]`` or ``"h1:2379,h2"`` -> [(host, port)]."""
    items = hosts.split(",") if isinstance(hosts, str) else list(hosts)
    result: list[tuple[str, int]] = []
    for item in items:
        item = item.strip()
        if "://" in item:
            item = item.split("://", 1)[1]
        item = item.split("/", 1)[0]
        if not item:
            continue
        host, port = item, default_port
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif item.count(":") == 1:
            name, _, num = item.partition(":")
            if not num.isdigit():
                raise ValueError(f"bad DCS host {item!r}")
            host, port = name, int(num)
        result.append((host, port))
    if not result:
        raise ValueError("no DCS hosts given")
    return result


class WatchNotifier:
    """What ``watch()`` waits on: events newer than the last snapshot, or a wakeup.

    A background watcher calls :meth:`fire` with the revision (etcd3 mod_revision /
    v2 modifiedIndex) of each interesting event; ``get_cluster`` calls :meth:`snapshot`
    with the revision it read at, so events already reflected in it do not wake anyone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen = 0
        self._fired = 0
        self._wake = False

    @property
    def seen(self) -> int:
        return self._seen

    def snapshot(self, revision: int) -> None:
        with self._cond:
            self._seen = max(self._seen, revision)

    def fire(self, revision: int | None = None) -> None:
        """An interesting event at `revision` (None: something may have been missed)."""
        with self._cond:
            if revision is None:
                self._wake = True
            elif revision > self._seen:
                self._fired = max(self._fired, revision)
            else:
                return
            self._cond.notify_all()

    def wakeup(self) -> None:  # noqa: B027 - optional hook
        self.fire(None)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                if self._wake or self._fired > self._seen:
                    self._wake = False
                    self._seen = max(self._seen, self._fired)
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
