# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keys of one scope as last seen, kept current by a watch of the whole prefix.

A range read loads the cache (:meth:`KVCache.reset`); watch events move it forward
(:meth:`KVCache.apply`). The cache is ``streaming`` only while a watch stream delivers
events into it: only then may a reader rely on it instead of reading etcd again, and only
then may a writer skip a write because the cache already holds the same value.

Also the pure rules that decide which writes a cycle can skip (table-tested)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .base import Node


@dataclass(frozen=True)
class Event:
    """One watch event, key relative to the scope; node None for a DELETE."""

    path: str
    revision: int
    node: Node | None


class KVCache:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._nodes: dict[str, Node] = {}
        self._revision = 0
        self._loaded = False
        self._streaming = False
        self._stamp = 0  # bumped on every change: lets readers reuse what they built from it

    # -- state ----------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def streaming(self) -> bool:
        return self._loaded and self._streaming

    def set_streaming(self, streaming: bool) -> None:
        with self._cond:
            self._streaming = streaming

    def invalidate(self) -> None:
        """Events may have been missed: nothing here is trusted until the next reset()."""
        with self._cond:
            self._loaded = False
            self._streaming = False
            self._stamp += 1

    # -- writers ----------------------------------------------------------------------
    def reset(self, nodes: Mapping[str, Node], revision: int) -> bool:
        """Load a full read made at `revision`. An older read than what the cache holds is
        ignored (False): events already applied are newer than it."""
        with self._cond:
            if self._loaded and revision < self._revision:
                return False
            self._nodes = dict(nodes)
            self._revision = revision
            self._loaded = True
            self._stamp += 1
            self._cond.notify_all()
            return True

    def apply(self, events: Iterable[Event]) -> int:
        """Apply the events of one watch response; those at or below the cache's revision
        (replayed after a reconnect, or already in the last full read) are skipped.
        Returns how many were applied."""
        applied = 0
        with self._cond:
            if not self._loaded:
                return 0
            floor = self._revision
            for event in events:
                if event.revision <= floor:
                    continue
                if event.node is None:
                    self._nodes.pop(event.path, None)
                else:
                    self._nodes[event.path] = event.node
                self._revision = max(self._revision, event.revision)
                applied += 1
            if applied:
                self._stamp += 1
                self._cond.notify_all()
        return applied

    # -- readers ----------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Node], int, int]:
        """(nodes, revision, stamp); the stamp changes whenever the content does."""
        with self._cond:
            return dict(self._nodes), self._revision, self._stamp

    @property
    def stamp(self) -> int:
        return self._stamp

    def node(self, path: str) -> Node | None:
        """The current node at `path` when the cache is streaming; None otherwise (unknown)."""
        with self._cond:
            return self._nodes.get(path) if self._loaded and self._streaming else None

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the cache holds everything up to `revision` (our own write came back
        through the watch); False when it did not within `timeout` or it stopped streaming."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if not (self._loaded and self._streaming):
                    return False
                if self._revision >= revision:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)


# -- which writes a cycle can skip ---------------------------------------------------------
def member_write_needed(cached: Node | None, value: str, lease: int) -> bool:
    """members/<name> must be written unless the (streaming) cache already holds exactly this
    value bound to our current lease: the lease keepalive keeps that key alive."""
    return cached is None or cached.value != value or cached.session != lease


@dataclass(frozen=True)
class LeaderRefresh:
    """What update_leader has to send: nothing (the keepalive did it all), or a txn that
    checks the lock is ours and re-attaches it / writes the optime."""

    txn: bool
    put_leader: bool
    put_optime: bool


def leader_refresh(leader: Node | None, optime: Node | None, name: str, lease: int,
                   last_lsn: int | None, cache_streaming: bool) -> LeaderRefresh:
    """The leader key holds our name on our (just refreshed) lease and optime/leader already
    says `last_lsn`: the keepalive was the refresh, no request needed. Anything else, or a
    cache we cannot rely on, goes through a compare-and-set on the leader key's value."""
    if not cache_streaming or leader is None or leader.value != name:
        return LeaderRefresh(True, True, last_lsn is not None)  # the compare decides
    put_leader = leader.session != lease
    put_optime = last_lsn is not None and (optime is None or optime.value != str(last_lsn))
    return LeaderRefresh(put_leader or put_optime, put_leader, put_optime)
