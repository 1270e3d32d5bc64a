# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZooKeeper backend through kazoo (Debian python3-kazoo / PyPI kazoo), Patroni's layout.

Znodes under ``/<namespace>/<scope>/``: ``leader`` and ``members/<name>`` are ephemeral
znodes of this daemon's session; ``config``, ``initialize``, ``history``, ``sync``,
``failover``, ``status``, ``failsafe``, ``optime/leader`` are persistent. The lease is the
ZooKeeper session: its timeout is the ttl, kazoo keeps it alive, and when it ends (the
process died, or could not reach ZooKeeper for ttl seconds) ZooKeeper drops the leader and
member znodes. A changed ttl moves our ephemeral znodes to a new session, each in one
transaction (the leader key never disappears in between).

Versions are ``mzxid`` values (the zxid of the znode's last change: unique, never 0, like
etcd's mod_revision); a compare-and-set reads the znode's data version for that mzxid and
sets with it. Watches on ``leader`` and ``failover``, set by every read, wake the HA loop.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.protocol.states import EventType, WatchedEvent, ZnodeStat

from ..core.model import Cluster, Leader
from .base import DCSError, KeyValueDCS, Node, WatchNotifier, cluster_from_nodes
from .zookeeper_client import ZkSession, acls

logger = logging.getLogger(__name__)
CONTAINERS = ("members", "optime")  # znodes that only hold others (created by makepath)
WATCHED = ("leader", "failover")
ANSWER_REUSE = 1.0  # an answer younger than this (and than ttl/4) proves the session for touch_member


def node_of(data: bytes | None, stat: ZnodeStat) -> Node | None:
    """One znode as a key of the scope, or None for a znode that holds others (a directory)."""
    if stat.numChildren > 0:
        return None
    value = (data or b"").decode("utf-8", "replace")
    return Node(value, int(stat.mzxid), int(stat.ephemeralOwner) or None)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class ZooKeeper(KeyValueDCS):
    """Patroni-compatible znodes in ZooKeeper."""

    def __init__(self, namespace: str, scope: str, name: str, ttl: int, retry_timeout: float,
                 hosts: list[str], use_ssl: bool = False, cacert: str | None = None,
                 cert: str | None = None, key: str | None = None, key_password: str | None = None,
                 verify: bool = True, set_acls: tuple[tuple[str, tuple[str, ...]], ...] = (),
                 auth_data: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(namespace, scope, name, ttl, retry_timeout)
        self._hosts = ",".join(hosts)
        options: dict[str, Any] = {"use_ssl": use_ssl, "verify_certs": verify, "auth_data": list(auth_data)}
        for option, value in (("ca", cacert), ("certfile", cert), ("keyfile", key), ("keyfile_password", key_password)):
            if value:
                options[option] = value
        if set_acls:
            options["default_acl"] = acls(set_acls)
        self._options = options
        self._session: ZkSession | None = None
        self._lock = threading.RLock()  # the session: created, moved, closed
        self._closed = False
        self._notifier = WatchNotifier()
        self._events = 0  # interesting watch events so far (the notifier's revisions)
        self._armed: ZkSession | None = None  # the session whose watches are set
        self._seen: dict[str, tuple[str, int | None] | None] = {}  # leader/failover at the last read
        self._nodes: dict[str, Node] = {}  # the last read (touch_member skips unchanged writes)

    # -- session ------------------------------------------------------------------
    def _current(self) -> ZkSession:
        with self._lock:
            if self._closed:
                raise DCSError("the ZooKeeper connection was closed")
            if self._session is None:
                self._session = ZkSession(self._hosts, self.ttl, self.retry_timeout, self._options, self._rearm)
            self._session.retry_timeout = self.retry_timeout
            return self._session

    def _fresh(self, deadline: float) -> ZkSession:
        """The session for writes of session-bound znodes: one with the current ttl."""
        session = self._current()
        if session.ttl == self.ttl:
            return session
        with self._lock:
            if self._session is not session:
                return self._current()
            new = ZkSession(self._hosts, self.ttl, self.retry_timeout, self._options, self._rearm)
            try:
                self._move_ephemerals(session, new, deadline)
            except Exception:
                new.close()
                raise
            self._session = new
        logger.info("ZooKeeper session timeout changed to %ss: moved to a new session", self.ttl)
        session.close()
        return new

    def _move_ephemerals(self, old: ZkSession, new: ZkSession, deadline: float) -> None:
        """Re-create the leader and member znodes of `old` as `new`'s, each in one transaction."""
        old_id = old.session_id
        for path in (self.leader_path, self.member_path):
            try:
                data, stat = new.call(f"get {path}", lambda c, p=path: c.get_async(p), deadline)
            except NoNodeError:
                continue
            if old_id is None or stat.ephemeralOwner != old_id:
                continue
            self._replace(new, path, data, stat.version, deadline)

    def _replace(self, session: ZkSession, path: str, data: bytes, version: int, deadline: float) -> bool:
        """Delete `path` at `version` and create it as an ephemeral of `session`, atomically."""
        def start(client: Any) -> Any:
            txn = client.transaction()
            txn.check(path, version)
            txn.delete(path, version)
            txn.create(path, data, ephemeral=True)
            return txn.commit_async()
        results = session.call(f"re-create {path}", start, deadline, idempotent=False)
        return not any(isinstance(r, Exception) for r in results)

    # -- watches --------------------------------------------------------------------
    def _on_event(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:  # connection lost: kazoo dropped every watch
            self._armed = None
            return
        if event.path in (self.leader_path, self.client_path("failover")):
            self._fire()

    def _fire(self) -> None:
        with self._lock:
            self._events += 1
            revision = self._events
        self._notifier.fire(revision)

    def _rearm(self, session: ZkSession) -> None:
        """After a (re)connect: set the watches again and wake the loop if the leader or
        failover key changed while they were not set."""
        try:
            self._arm(session, time.monotonic() + self.retry_timeout)
        except DCSError as exc:
            logger.debug("ZooKeeper watches not set: %s", exc)

    def _arm(self, session: ZkSession, deadline: float) -> None:
        if self._armed is session or session.closed:
            return
        starts = [self._watching_exists(k) for k in WATCHED]
        stats = session.batch("watch", starts, deadline)
        current = {k: None if s is None or isinstance(s, Exception) else self._identity(k, s)
                   for k, s in zip(WATCHED, stats, strict=True)}
        self._armed = session
        if self._seen and current != self._seen:
            self._fire()

    def _watching_exists(self, rel: str) -> Callable[[Any], Any]:
        path = self.client_path(rel)
        return lambda client: client.exists_async(path, watch=self._on_event)

    @staticmethod
    def _identity(key: str, stat: ZnodeStat) -> tuple[str, int | None]:
        """What a wake-up is about: the leader's owner session, the failover key's version."""
        if key == "leader":
            return ("leader", int(stat.ephemeralOwner) or None)
        return ("failover", int(stat.mzxid))

    # -- reads ----------------------------------------------------------------------
    def _read_tree(self, session: ZkSession, deadline: float) -> dict[str, Node]:
        """Every znode of the scope, one level per round trip; sets the watches."""
        nodes: dict[str, Node] = {}
        base = self.base_path
        try:
            level = [(name, f"{base}/{name}") for name in
                     session.call(f"list {base}", lambda c: c.get_children_async(base), deadline)]
        except NoNodeError:
            level = []
        present = {rel for rel, _ in level}
        watch_missing = [k for k in WATCHED if k not in present]
        if not level:  # an empty or absent scope: watch for the keys' creation all the same
            session.batch("watch", [self._watching_exists(k) for k in watch_missing], deadline)
        while level:
            starts: list[Callable[[Any], Any]] = [
                lambda c, p=path, r=rel: c.get_async(p, watch=self._on_event if r in WATCHED else None)
                for rel, path in level]
            starts += [self._watching_exists(k) for k in watch_missing]
            results = session.batch("read", starts, deadline)
            directories = []
            for (rel, path), result in zip(level, results, strict=False):
                if isinstance(result, Exception):
                    continue  # deleted meanwhile
                data, stat = result
                node = node_of(data, stat)
                if node is not None and rel not in CONTAINERS:
                    nodes[rel] = node
                elif node is None:
                    directories.append((rel, path))
            watch_missing = []
            listings = session.batch("list", [lambda c, p=path: c.get_children_async(p) for _, path in directories],
                                     deadline)
            level = [(f"{rel}/{child}", f"{path}/{child}") for (rel, path), children in zip(directories, listings,
                                                                                              strict=True)
                     if not isinstance(children, Exception) for child in children]
        return nodes

    def get_cluster(self) -> Cluster:
        session = self._current()
        deadline = time.monotonic() + self.retry_timeout
        with self._lock:
            start = self._events
        nodes = self._read_tree(session, deadline)
        self._armed = session
        self._seen = {k: None if k not in nodes else (k, nodes[k].session if k == "leader" else nodes[k].version)
                      for k in WATCHED}
        self._nodes = nodes
        self._notifier.snapshot(start)
        return cluster_from_nodes(nodes)

    # -- plumbing for writes --------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.retry_timeout

    def _set_or_create(self, session: ZkSession, path: str, value: str, deadline: float) -> None:
        data = value.encode("utf-8")
        for _ in range(3):  # a concurrent create or delete: try the other way
            try:
                session.call(f"set {path}", lambda c: c.set_async(path, data), deadline)
                return
            except NoNodeError:
                pass
            try:
                session.call(f"create {path}", lambda c: c.create_async(path, data, makepath=True), deadline,
                             idempotent=False)
                return
            except NodeExistsError:
                pass
        raise DCSError(f"ZooKeeper: {path} keeps being created and deleted")

    def _put(self, rel: str, value: str) -> bool:
        self._set_or_create(self._current(), self.client_path(rel), value, self._deadline())
        return True

    def _create(self, session: ZkSession, path: str, value: str, deadline: float, ephemeral: bool = False) -> bool:
        try:
            session.call(f"create {path}", lambda c: c.create_async(path, value.encode("utf-8"),
                                                                    ephemeral=ephemeral, makepath=True),
                         deadline, idempotent=False)
            return True
        except NodeExistsError:
            return False

    def _stat_at(self, session: ZkSession, path: str, version: int, deadline: float) -> ZnodeStat | None:
        """The znode's stat if its mzxid is still `version`."""
        stat = session.call(f"stat {path}", lambda c: c.exists_async(path), deadline)
        return stat if stat is not None and int(stat.mzxid) == version else None

    def _cas_put(self, rel: str, value: str, version: int | None) -> bool:
        if version is None:
            return self._put(rel, value)
        session, deadline, path = self._current(), self._deadline(), self.client_path(rel)
        if version == 0:  # only if absent
            return self._create(session, path, value, deadline)
        stat = self._stat_at(session, path, version, deadline)
        if stat is None:
            return False
        try:
            session.call(f"set {path}", lambda c: c.set_async(path, value.encode("utf-8"), stat.version),
                         deadline, idempotent=False)
            return True
        except (BadVersionError, NoNodeError):
            return False

    def _cas_delete(self, rel: str, version: int | None) -> bool:
        session, deadline, path = self._current(), self._deadline(), self.client_path(rel)
        if version is None:
            try:
                session.call(f"delete {path}", lambda c: c.delete_async(path), deadline)
            except NoNodeError:
                pass
            return True
        stat = self._stat_at(session, path, version, deadline)
        if stat is None:
            return False
        return self._delete_at(session, path, stat.version, deadline)

    @staticmethod
    def _delete_at(session: ZkSession, path: str, version: int, deadline: float) -> bool:
        """Delete `path` if its znode still has this data version (compare-and-delete)."""
        try:
            session.call(f"delete {path}", lambda c: c.delete_async(path, version), deadline, idempotent=False)
            return True
        except (BadVersionError, NoNodeError):
            return False

    # -- member / leader ------------------------------------------------------------
    def touch_member(self, data: dict[str, Any]) -> bool:
        deadline = self._deadline()
        session = self._fresh(deadline)
        value, path = _dumps(data), self.member_path
        sid = session.session_id
        known = self._nodes.get(f"members/{self.name}")
        if known is not None and sid is not None and known.session == sid:
            if known.value == value and time.monotonic() - session.answered_at < min(ANSWER_REUSE, self.ttl / 4):
                return True  # our znode of this session, unchanged since this cycle's read
            try:
                session.call(f"set {path}", lambda c: c.set_async(path, value.encode("utf-8")), deadline)
                return True
            except NoNodeError:
                pass
        if self._create(session, path, value, deadline, ephemeral=True):
            return True
        stat = session.call(f"stat {path}", lambda c: c.exists_async(path), deadline)
        if stat is None:
            return self._create(session, path, value, deadline, ephemeral=True)
        if stat.ephemeralOwner == session.session_id:
            session.call(f"set {path}", lambda c: c.set_async(path, value.encode("utf-8")), deadline)
            return True
        # left by an earlier session of ours (or persistent): take it over
        logger.warning("re-creating %s: it belongs to another ZooKeeper session", path)
        return self._replace(session, path, value.encode("utf-8"), stat.version, deadline)

    def attempt_to_acquire_leader(self) -> bool:
        deadline = self._deadline()
        return self._create(self._fresh(deadline), self.leader_path, self.name, deadline, ephemeral=True)

    def update_leader(self, leader: Leader, last_lsn: int | None) -> bool:
        deadline = self._deadline()
        session = self._fresh(deadline)
        path = self.leader_path
        try:
            data, stat = session.call(f"get {path}", lambda c: c.get_async(path), deadline)
        except NoNodeError:
            return False
        if data.decode("utf-8", "replace") != self.name:
            return False
        if stat.ephemeralOwner != session.session_id:
            logger.warning("re-creating the leader znode: it belongs to another ZooKeeper session")
            if not self._replace(session, path, data, stat.version, deadline):
                return False
        if last_lsn is not None:
            try:
                self._set_or_create(session, self.client_path("optime/leader"), str(last_lsn), deadline)
            except DCSError as exc:
                logger.warning("could not write optime/leader: %s", exc)
        return True

    def delete_leader(self, leader: Leader | None, last_lsn: int | None = None) -> bool:
        session, deadline, path = self._current(), self._deadline(), self.leader_path
        if last_lsn is not None and (leader is None or leader.name == self.name):
            self._set_or_create(session, self.client_path("optime/leader"), str(last_lsn), deadline)
        try:
            data, stat = session.call(f"get {path}", lambda c: c.get_async(path), deadline)
        except NoNodeError:
            return False
        if data.decode("utf-8", "replace") != self.name:
            return False
        return self._delete_at(session, path, stat.version, deadline)

    # -- cluster-wide keys ----------------------------------------------------------
    def initialize(self, create_new: bool = True, sysid: str = "") -> bool:
        if not create_new:
            return self._put("initialize", sysid)
        return self._create(self._current(), self.client_path("initialize"), sysid, self._deadline())

    def write_status(self, value: dict[str, Any]) -> bool:
        session, deadline = self._current(), self._deadline()
        self._set_or_create(session, self.client_path("status"), _dumps(value), deadline)
        optime = value.get("optime")
        if isinstance(optime, int) and not isinstance(optime, bool):
            self._set_or_create(session, self.client_path("optime/leader"), str(optime), deadline)
        return True

    def write_failsafe(self, value: dict[str, Any]) -> bool:
        return self._put("failsafe", _dumps(value))

    def delete_cluster(self) -> bool:
        """Delete the scope's znodes, deepest first (kazoo's recursive delete is unbounded)."""
        session, deadline, base = self._current(), self._deadline(), self.base_path
        for _ in range(5):  # members may come back while we delete: a few rounds
            paths, level = [], [base]
            while level:
                paths.extend(level)
                listings = session.batch("list", [lambda c, p=p: c.get_children_async(p) for p in level], deadline)
                level = [f"{p}/{child}" for p, children in zip(level, listings, strict=True)
                         if not isinstance(children, Exception) for child in children]
            results = session.batch("delete", [lambda c, p=p: c.delete_async(p) for p in reversed(paths)], deadline)
            if not any(isinstance(r, NotEmptyError) for r in results):
                return True
        return False

    # -- waiting --------------------------------------------------------------------
    def watch(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        session = self._session
        if session is not None and self._armed is not session and not session.closed:
            try:  # e.g. watch() before the first get_cluster(): set the watches now
                self._arm(session, min(deadline, time.monotonic() + self.retry_timeout))
            except DCSError as exc:
                logger.debug("ZooKeeper watches not set: %s", exc)
        return self._notifier.wait(deadline - time.monotonic())

    def wakeup(self) -> None:
        self._notifier.wakeup()

    def close(self, release: bool = True) -> None:
        """End the session: ZooKeeper drops our leader and member znodes at once."""
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        self._armed = None
        if session is not None:
            session.close()
