# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster model: the immutable snapshot the HA loop decides on (Cluster, Member,
Leader, ClusterConfig, Failover, SyncState, TimelineHistory) and the parsers of the
DCS values they come from. No I/O and no DCS code: every backend in dcs/ builds these.

Key layout (Patroni-compatible) under ``/<namespace>/<scope>/``:
``config``, ``initialize``, ``leader``, ``members/<name>``, ``optime/leader``,
``history``, ``sync``, ``failover``, ``status``, ``failsafe``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit


def parse_json(value: str | None) -> Any:
    """JSON value of a key, or None when absent or not JSON (hand-edited garbage)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, TypeError, RecursionError):
        return None


def valid_sysid(value: str | None) -> bool:
    """Whether an `initialize` value is a PostgreSQL system identifier (digits), not garbage."""
    return bool(value) and value.isascii() and value.isdigit()


def _text(value: Any) -> str | None:
    """A string field of a DCS value; anything else (hand-edited garbage) is absent."""
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except (ValueError, TypeError):
        return None


def _priority(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def failover_priority(tags: dict[str, Any]) -> int:
    """The ``failover_priority`` tag (Patroni 4): default 1, 0 = never promote (unless a
    ``nofailover: false`` tag says otherwise: see no_failover)."""
    value = _priority(tags.get("failover_priority"))
    return 1 if value is None else value


def no_failover(tags: dict[str, Any]) -> bool:
    """Patroni's ``_bool_tag``: a ``nofailover`` tag, when given, wins over failover_priority."""
    if tags.get("nofailover") is not None:
        return bool(tags["nofailover"])
    value = _priority(tags.get("failover_priority"))
    return value is not None and value <= 0


def no_sync(tags: dict[str, Any]) -> bool:
    """Patroni's ``nosync``: the tag, when given, wins over sync_priority; else sync_priority
    <= 0 means never synchronous."""
    if tags.get("nosync") is not None:
        return bool(tags["nosync"])
    value = _priority(tags.get("sync_priority"))
    return value is not None and value <= 0


def sync_priority(tags: dict[str, Any]) -> int:
    """The ``sync_priority`` tag (Patroni 4): higher values are chosen as synchronous standbys
    first; default 1; 0 with a true nosync tag."""
    if tags.get("nosync"):
        return 0
    value = _priority(tags.get("sync_priority"))
    return 1 if value is None else value


@dataclass(frozen=True)
class Member:
    name: str
    version: int  # mod_revision (etcd3) / modifiedIndex (etcd v2)
    data: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_value(name: str, version: int, value: str | None) -> Member:
        data = parse_json(value)
        return Member(name, version, data if isinstance(data, dict) else {})

    @property
    def conn_url(self) -> str | None:
        return _text(self.data.get("conn_url"))

    @property
    def api_url(self) -> str | None:
        return _text(self.data.get("api_url"))

    @property
    def state(self) -> str:
        return str(self.data.get("state", "unknown"))

    @property
    def role(self) -> str:
        return str(self.data.get("role", "unknown"))

    @property
    def lsn(self) -> int:
        value = _int(self.data.get("xlog_location"))
        return value if value is not None and value >= 0 else 0

    @property
    def timeline(self) -> int | None:
        return _int(self.data.get("timeline"))

    @property
    def tags(self) -> dict[str, Any]:
        tags = self.data.get("tags")
        return tags if isinstance(tags, dict) else {}

    @property
    def nofailover(self) -> bool:
        return no_failover(self.tags)

    @property
    def nosync(self) -> bool:
        return no_sync(self.tags)

    @property
    def sync_priority(self) -> int:
        return sync_priority(self.tags)

    @property
    def pending_restart(self) -> bool:
        return bool(self.data.get("pending_restart", False))


@dataclass(frozen=True)
class Leader:
    name: str
    version: int
    session: str | int | None = None  # lease id (etcd3) or ttl (etcd v2)


@dataclass(frozen=True)
class ClusterConfig:
    version: int
    data: dict[str, Any]
    raw: str = ""
    valid: bool = True  # False: the key holds no JSON object (hand-edited garbage)

    @staticmethod
    def from_value(version: int, value: str | None) -> ClusterConfig:
        data = parse_json(value)
        valid = isinstance(data, dict)
        return ClusterConfig(version, data if valid else {}, value or "", valid)

    @property
    def synchronous_mode(self) -> bool:
        return synchronous_mode_of(self.data)

    @property
    def quorum_commit(self) -> bool:
        return quorum_commit_of(self.data)


def synchronous_mode_of(data: dict[str, Any]) -> bool:
    """As Patroni (is_synchronous_mode): synchronous_mode on (true, "on", quorum), and not a
    standby cluster, which runs no synchronous replication of its own."""
    value = data.get("synchronous_mode")
    on = value is True or (isinstance(value, str) and value.strip().lower() in ("on", "true", "yes", "quorum"))
    return on and not data.get("standby_cluster")


def quorum_commit_of(data: dict[str, Any]) -> bool:
    return synchronous_mode_of(data) and str(data.get("synchronous_mode")).strip().lower() == "quorum"


@dataclass(frozen=True)
class Failover:
    """A requested manual switchover (leader set) or failover (only candidate)."""

    version: int
    leader: str | None
    candidate: str | None
    scheduled_at: datetime | None = None

    @staticmethod
    def from_value(version: int, value: str | None) -> Failover | None:
        data = parse_json(value)
        if not isinstance(data, dict):
            return None
        scheduled = None
        if data.get("scheduled_at"):
            try:
                scheduled = datetime.fromisoformat(str(data["scheduled_at"]))
            except ValueError:
                scheduled = None
            if scheduled is not None and scheduled.tzinfo is None:
                scheduled = None  # refuse naive timestamps: ambiguous
        leader = _text(data.get("leader"))
        candidate = _text(data.get("member")) or _text(data.get("candidate"))
        if leader is None and candidate is None:
            return None
        return Failover(version, leader, candidate, scheduled)


@dataclass(frozen=True)
class SyncState:
    version: int
    leader: str | None
    sync_standby: tuple[str, ...] = ()
    quorum: int | None = None  # quorum commit: other voters a candidate must reach

    @staticmethod
    def from_value(version: int, value: str | None) -> SyncState | None:
        data = parse_json(value)
        if not isinstance(data, dict):
            return None
        sync = _text(data.get("sync_standby"))
        names = tuple(s.strip() for s in sync.split(",") if s.strip()) if sync else ()
        quorum = data.get("quorum")
        return SyncState(version, _text(data.get("leader")), names,
                         quorum if isinstance(quorum, int) and not isinstance(quorum, bool) else None)


@dataclass(frozen=True)
class TimelineHistory:
    version: int
    lines: tuple[tuple[Any, ...], ...]

    @staticmethod
    def from_value(version: int, value: str | None) -> TimelineHistory | None:
        data = parse_json(value)
        if not isinstance(data, list):
            return None
        return TimelineHistory(version, tuple(tuple(x) for x in data if isinstance(x, list)))


@dataclass(frozen=True)
class Cluster:
    initialize: str | None = None
    config: ClusterConfig | None = None
    leader: Leader | None = None
    last_lsn: int = 0  # optime/leader (or status.optime)
    members: tuple[Member, ...] = ()
    failover: Failover | None = None
    sync: SyncState | None = None
    history: TimelineHistory | None = None
    status: dict[str, Any] | None = None
    failsafe: dict[str, Any] | None = None

    @property
    def is_unlocked(self) -> bool:
        return self.leader is None

    def get_member(self, name: str) -> Member | None:
        for member in self.members:
            if member.name == name:
                return member
        return None

    @property
    def leader_member(self) -> Member | None:
        return self.get_member(self.leader.name) if self.leader else None

    @property
    def paused(self) -> bool:
        return bool(self.config and self.config.data.get("pause"))

    @property
    def timeline(self) -> int:
        """The cluster's current timeline as the history key tells it (last entry + 1); 0: unknown."""
        if self.history is None or not self.history.lines:
            return 0
        last = self.history.lines[-1][0] if self.history.lines[-1] else None
        return last + 1 if isinstance(last, int) and not isinstance(last, bool) else 0


def host_port(conn_url: str | None) -> tuple[str | None, int | None]:
    """Host and port of a member's conn_url ('postgres://h:5432/postgres')."""
    if not conn_url:
        return None, None
    try:
        parts = urlsplit(conn_url)
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def is_standby_cluster(cluster: Cluster) -> bool:
    """The dynamic config makes this cluster a standby cluster (standby_cluster: host/port/restore_command)."""
    data = cluster.config.data if cluster.config is not None else {}
    standby = data.get("standby_cluster")
    return isinstance(standby, dict) and bool(
        standby.get("host") or standby.get("port") or standby.get("restore_command"))
