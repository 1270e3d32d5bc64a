# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health-check decisions (Patroni's semantics) as pure functions of the published state.

Inputs are the /patroni status dict of the last HA cycle, the Cluster snapshot of that
cycle (None before the first one), the effective Config and whether the leader lease
deadline is still ahead (the status and snapshot have no expiry of their own). Nothing
here does I/O.

Deviation from Patroni, on purpose: a ``tag_KEY=VALUE`` filter on a tag this node does not
carry matches when VALUE is a false-y word (``false``, ``0``, ``no``, ``off``), so
``/replica?tag_nofailover=false`` selects untagged nodes too.
"""
from __future__ import annotations

from typing import Any

from ..config.settings import Config
from ..core.model import Cluster, quorum_commit_of, synchronous_mode_of
from .units import is_falsy_text, parse_size

PRIMARY_ROLES = ("primary", "master")
RUNNING = "running"
# A lock holder answers 200 on / and /leader while PostgreSQL runs or is being (re)started, as
# Patroni's lock-based answer does; its role comes from a query (the cycle's or live_status.py's).
SERVING_STATES = (RUNNING, "starting", "restarting")

PRIMARY_PATHS = ("/", "/primary", "/master", "/read-write")
STANDBY_LEADER_PATHS = ("/standby-leader", "/standby_leader")
SYNC_PATHS = ("/sync", "/synchronous")
ASYNC_PATHS = ("/async", "/asynchronous")
READ_ONLY_SYNC_PATHS = ("/read-only-sync", "/read-only-synchronous")
QUORUM_PATHS = ("/quorum",)
READ_ONLY_QUORUM_PATHS = ("/read-only-quorum",)
TAG_PREFIX = "tag_"


def effective_tags(status: dict[str, Any], config: Config) -> dict[str, Any]:
    tags = dict(config.tags)
    published = status.get("tags")
    if isinstance(published, dict):
        tags.update(published)
    return tags


def holds_lock(cluster: Cluster | None, name: str) -> bool:
    return cluster is not None and cluster.leader is not None and cluster.leader.name == name


def synchronous_mode(cluster: Cluster | None, config: Config) -> bool:
    data = cluster.config.data if cluster is not None and cluster.config is not None else config.dynamic.raw
    return synchronous_mode_of(data)


def quorum_mode(cluster: Cluster | None, config: Config) -> bool:
    data = cluster.config.data if cluster is not None and cluster.config is not None else config.dynamic.raw
    return quorum_commit_of(data)


def is_sync_standby(cluster: Cluster | None, config: Config, name: str) -> bool:
    """A synchronous standby of ``synchronous_mode: on`` (quorum voters are not: see
    is_quorum_standby)."""
    return (cluster is not None and cluster.sync is not None and name in cluster.sync.sync_standby
            and synchronous_mode(cluster, config) and not quorum_mode(cluster, config))


def is_quorum_standby(cluster: Cluster | None, config: Config, name: str) -> bool:
    """A voter of ``synchronous_mode: quorum`` (listed in the sync key)."""
    return (cluster is not None and cluster.sync is not None and name in cluster.sync.sync_standby
            and quorum_mode(cluster, config))


def _xlog_position(status: dict[str, Any], key: str) -> int:
    xlog = status.get("xlog")
    value = xlog.get(key) if isinstance(xlog, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def replica_lag(status: dict[str, Any], cluster: Cluster | None, mode: str = "apply") -> int:
    """Bytes this replica is behind the leader's last known position (optime/leader)."""
    leader_lsn = cluster.last_lsn if cluster is not None else 0
    replayed = _xlog_position(status, "replayed_location")
    received = _xlog_position(status, "received_location")
    position = received if mode == "write" else (replayed or received)
    return max(0, leader_lsn - position) if leader_lsn else 0


def tags_match(query: dict[str, str], tags: dict[str, Any]) -> bool:
    """Every ``tag_KEY=VALUE`` query parameter matches this node's tags."""
    for key, wanted in query.items():
        if not key.startswith(TAG_PREFIX):
            continue
        tag = key[len(TAG_PREFIX):]
        if tag not in tags or tags[tag] is None:
            if is_falsy_text(wanted):
                continue
            return False
        value = tags[tag]
        text = value if isinstance(value, str) else str(value).lower()
        if text != wanted:
            return False
    return True


def _codes(query: dict[str, str], status: dict[str, Any], cluster: Cluster | None,
           config: Config, lease_ahead: bool) -> dict[str, int]:
    name = config.name
    role = status.get("role")
    running = status.get("state") == RUNNING
    serving = status.get("state") in SERVING_STATES
    leader = holds_lock(cluster, name)
    writable = lease_ahead  # a primary past its lease deadline stops taking writes
    if cluster is None and status.get("pause"):
        # No DCS snapshot in maintenance mode: trust the local role, as Patroni does.
        leader = role in PRIMARY_ROLES or role == "standby_leader"
        writable = True

    max_lag = parse_size(query["lag"]) if "lag" in query else None
    lagging = max_lag is not None and replica_lag(status, cluster) > max_lag
    wanted_state = query.get("replication_state")
    state_ok = not wanted_state or status.get("replication_state") == wanted_state
    noloadbalance = bool(effective_tags(status, config).get("noloadbalance"))

    replica = (running and role == "replica" and not leader and not noloadbalance
               and not lagging and state_ok)
    return {
        "primary": 200 if leader and serving and role in PRIMARY_ROLES and writable else 503,
        "standby_leader": 200 if leader and serving and role == "standby_leader" else 503,
        "leader": 200 if leader and serving and (role in PRIMARY_ROLES and writable or role == "standby_leader")
        else 503,
        "replica": 200 if replica else 503,
    }


def health_status(path: str, query: dict[str, str], status: dict[str, Any], cluster: Cluster | None,
                  config: Config, *, lease_ahead: bool) -> tuple[int, dict[str, Any]]:
    """(HTTP code, body) of a health-check path; the body is the /patroni status.
    `lease_ahead`: the leader lease deadline (core/lease.py) is still in the future; a
    primary past it answers 503 on /, /primary, /read-write, /leader (and /read-only as
    primary), whatever the last published status says."""
    codes = _codes(query, status, cluster, config, lease_ahead)
    ignore_tags = False
    code = 503
    if path in PRIMARY_PATHS:
        code, ignore_tags = codes["primary"], True
    elif path == "/leader":
        code, ignore_tags = codes["leader"], True
    elif path in STANDBY_LEADER_PATHS:
        code, ignore_tags = codes["standby_leader"], True
    elif path == "/replica":
        code = codes["replica"]
    elif path == "/read-only":
        code = 200 if 200 in (codes["primary"], codes["standby_leader"]) else codes["replica"]
    elif path == "/health":
        code = 200 if status.get("state") == RUNNING else 503
    elif cluster is not None:
        sync = is_sync_standby(cluster, config, config.name)
        voter = is_quorum_standby(cluster, config, config.name)
        if path in SYNC_PATHS and sync or path in QUORUM_PATHS and voter \
                or path in ASYNC_PATHS and not sync and not voter:
            code = codes["replica"]
        elif path in READ_ONLY_SYNC_PATHS or path in READ_ONLY_QUORUM_PATHS:
            if 200 in (codes["primary"], codes["standby_leader"]):
                code = 200
            elif sync and path in READ_ONLY_SYNC_PATHS or voter and path in READ_ONLY_QUORUM_PATHS:
                code = codes["replica"]
    if code == 200 and not ignore_tags and not tags_match(query, effective_tags(status, config)):
        code = 503
    return code, status


def liveness_status(last_cycle_age: float, ttl: float, status: dict[str, Any]) -> int:
    """200 while the HA loop keeps cycling: within ttl on a primary, 2*ttl on a replica,
    always in maintenance mode (pause), else 503."""
    if status.get("pause"):
        return 200
    primary = status.get("role") in PRIMARY_ROLES and status.get("state") == RUNNING
    return 200 if last_cycle_age < ttl * (1 if primary else 2) else 503


def readiness_status(query: dict[str, str], status: dict[str, Any], cluster: Cluster | None,
                     config: Config) -> tuple[int, str]:
    """(200, '') when this node can take traffic: the running leader, or a running
    replica within maximum_lag_on_failover (or ``?lag=``); else (503, reason)."""
    role = status.get("role")
    running = status.get("state") == RUNNING
    if holds_lock(cluster, config.name):
        if running and (role in PRIMARY_ROLES or role == "standby_leader"):
            return 200, ""
        return 503, "leader is not running as primary"
    if not running:
        return 503, "PostgreSQL is not running"
    if role != "replica":
        return 503, f"PostgreSQL role is {role}, not replica"
    replication_state = status.get("replication_state")
    if replication_state is not None and replication_state != "streaming":
        return 503, "PostgreSQL replication state is not streaming"
    if cluster is None:
        return 503, "DCS is not accessible"
    mode = "write" if query.get("mode") == "write" else "apply"
    max_lag = parse_size(query["lag"]) if "lag" in query else None
    if max_lag is None:
        max_lag = config.dynamic.maximum_lag_on_failover
    lag = replica_lag(status, cluster, mode)
    if lag > max_lag:
        return 503, f"Replication {mode} lag {lag} exceeds maximum allowable {max_lag}"
    return 200, ""
