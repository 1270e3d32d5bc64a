# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON views of a Cluster snapshot: GET /cluster and GET /history (Patroni's shapes)."""
from __future__ import annotations

from typing import Any

from ..config.settings import Config
from ..core.model import Cluster, Member, host_port, is_standby_cluster
from .health import is_quorum_standby, is_sync_standby

OPTIONAL_MEMBER_KEYS = ("timeline", "pending_restart", "pending_restart_reason", "scheduled_restart", "tags")


def format_lsn(lsn: int) -> str:
    """4294967296 -> '1/0' (PostgreSQL's text form of a WAL position)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"




def member_role(cluster: Cluster, member: Member, config: Config) -> str:
    if cluster.leader is not None and member.name == cluster.leader.name:
        return "standby_leader" if is_standby_cluster(cluster) else "leader"
    if is_sync_standby(cluster, config, member.name):
        return "sync_standby"
    if is_quorum_standby(cluster, config, member.name):
        return "quorum_standby"
    return "replica"


def member_as_json(cluster: Cluster, member: Member, config: Config) -> dict[str, Any]:
    role = member_role(cluster, member, config)
    state = member.data.get("state", "")
    if role not in ("leader", "standby_leader"):
        state = member.data.get("replication_state") or state
    result: dict[str, Any] = {"name": member.name, "role": role, "state": state, "api_url": member.api_url}
    host, port = host_port(member.conn_url)
    if host:
        result["host"] = host
        if port:
            result["port"] = port
    result.update({key: member.data[key] for key in OPTIONAL_MEMBER_KEYS if key in member.data})
    if role not in ("leader", "standby_leader"):
        lsn = member.lsn
        if not lsn:
            result["lsn"] = result["lag"] = "unknown"
        else:
            result["lsn"] = format_lsn(lsn)
            result["lag"] = max(0, cluster.last_lsn - lsn)
    return result


def cluster_as_json(cluster: Cluster, config: Config) -> dict[str, Any]:
    """Body of GET /cluster: members sorted by name, pause, scheduled_switchover, scope."""
    members = [member_as_json(cluster, member, config) for member in cluster.members]
    members.sort(key=lambda item: item["name"])
    result: dict[str, Any] = {"members": members, "scope": config.scope}
    if cluster.paused:
        result["pause"] = True
    failover = cluster.failover
    if failover is not None and failover.scheduled_at is not None:
        scheduled: dict[str, Any] = {"at": failover.scheduled_at.isoformat()}
        if failover.leader:
            scheduled["from"] = failover.leader
        if failover.candidate:
            scheduled["to"] = failover.candidate
        result["scheduled_switchover"] = scheduled
    return result


def history_as_json(cluster: Cluster | None) -> list[list[Any]]:
    """Body of GET /history: [timeline, lsn, reason, timestamp, new_leader] per switch."""
    if cluster is None or cluster.history is None:
        return []
    return [list(line) for line in cluster.history.lines]
