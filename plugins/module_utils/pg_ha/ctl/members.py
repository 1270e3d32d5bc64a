# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The member table of ``list``/``topology`` (and of every command that shows the cluster)
built from one DCS snapshot: roles, states, lag, optional columns, topology order, footer."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..core.model import Cluster, Member, host_port, is_standby_cluster
from .output import dump_yaml, mb

BASE_COLUMNS = ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
OPTIONAL_COLUMNS = ["Pending restart", "Scheduled restart", "Tags"]
RIGHT = ("TL", "Lag in MB")
DEFAULT_PG_PORT = 5432


@dataclass(frozen=True)
class MemberInfo:
    name: str
    role: str  # leader | standby_leader | sync_standby | quorum_standby | replica
    state: str
    host: str | None
    port: int | None
    timeline: int | None
    lag: int | str | None  # bytes behind optime/leader; "unknown"; None for the leader
    pending_restart: bool
    scheduled_restart: dict[str, Any] | None
    tags: dict[str, Any]




def sync_standbys(cluster: Cluster) -> tuple[str, ...]:
    if cluster.config is None or not cluster.config.synchronous_mode or cluster.sync is None:
        return ()
    return cluster.sync.sync_standby


def is_quorum(cluster: Cluster) -> bool:
    return cluster.config is not None and cluster.config.quorum_commit


def member_info(cluster: Cluster, member: Member) -> MemberInfo:
    leader = cluster.leader.name if cluster.leader is not None else None
    if member.name == leader:
        role = "standby_leader" if is_standby_cluster(cluster) else "leader"
    elif member.name in sync_standbys(cluster):
        role = "quorum_standby" if is_quorum(cluster) else "sync_standby"
    else:
        role = "replica"
    state = str(member.data.get("state", ""))
    if role not in ("leader", "standby_leader") and member.data.get("replication_state") == "streaming":
        state = "streaming"
    lag: int | str | None = None
    if role not in ("leader", "standby_leader"):
        lag = max(0, cluster.last_lsn - member.lsn) if member.lsn else "unknown"
    host, port = host_port(member.conn_url)
    scheduled = member.data.get("scheduled_restart")
    return MemberInfo(member.name, role, state, host, port, member.timeline, lag, member.pending_restart,
                      scheduled if isinstance(scheduled, dict) else None, member.tags)


def role_title(role: str) -> str:
    """leader -> Leader, sync_standby -> Sync Standby (patronictl's spelling)."""
    return role.replace("_", " ").title()


def topology_order(infos: list[MemberInfo]) -> Iterator[tuple[int, MemberInfo]]:
    """(depth, member): the leader, then its replicas; a replica tagged ``replicatefrom``
    another replica is listed under it, one level deeper."""
    leader = next((m for m in infos if m.role.endswith("leader")), None)
    replicas = {m.name for m in infos if not m.role.endswith("leader")}
    children: dict[str | None, list[MemberInfo]] = {}
    for m in infos:
        if m.role.endswith("leader"):
            continue
        parent = m.tags.get("replicatefrom")
        if not (parent and parent != m.name and parent in replicas):
            parent = leader.name if leader is not None else None
        children.setdefault(parent, []).append(m)

    def walk(name: str | None, depth: int) -> Iterator[tuple[int, MemberInfo]]:
        for child in children.get(name, []):
            yield depth, child
            yield from walk(child.name, depth + 1)

    if leader is not None:
        yield 0, leader
        yield from walk(leader.name, 1)
    else:
        yield from walk(None, 0)


def scheduled_text(scheduled: dict[str, Any] | None) -> str:
    if not scheduled:
        return ""
    text = str(scheduled.get("schedule", ""))
    if scheduled.get("postgres_version"):
        text += f" if version < {scheduled['postgres_version']}"
    return text


def member_table(cluster: Cluster, scope: str, extended: bool = False, topology: bool = False,
                 fmt: str = "pretty") -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the member table."""
    infos = [member_info(cluster, m) for m in cluster.members]
    columns = list(BASE_COLUMNS)
    if extended or any(i.pending_restart for i in infos):
        columns.append("Pending restart")
    if extended or any(i.scheduled_restart for i in infos):
        columns.append("Scheduled restart")
    if extended:
        columns.append("Tags")
    with_host = [i for i in infos if i.host]
    append_port = any(i.port not in (None, DEFAULT_PG_PORT) for i in with_host) \
        or len({i.host for i in with_host}) < len(with_host)
    ordered = topology_order(infos) if topology else ((0, i) for i in infos)
    rows = []
    for depth, info in ordered:
        name = info.name if depth == 0 else "  " * (depth - 1) + "+ " + info.name
        host = info.host or ""
        if append_port and info.host and info.port:
            host = f"{info.host}:{info.port}"
        lag: Any = 0 if info.lag is None else (mb(info.lag) if isinstance(info.lag, int) else info.lag)
        values: dict[str, Any] = {
            "Cluster": scope, "Member": name, "Host": host, "Role": role_title(info.role), "State": info.state,
            "TL": "" if info.timeline is None else info.timeline, "Lag in MB": lag,
            "Pending restart": "*" if info.pending_restart else "",
            "Scheduled restart": scheduled_text(info.scheduled_restart),
        }
        if extended:
            values["Tags"] = "" if not info.tags else info.tags if fmt not in ("pretty", "tsv") \
                else dump_yaml(info.tags, flow=fmt == "tsv").strip()
        rows.append([values[c] for c in columns])
    return columns, rows


def service_info(cluster: Cluster) -> list[str]:
    """Footer lines: maintenance mode and a scheduled switchover."""
    lines = []
    if cluster.paused:
        lines.append("Maintenance mode: on")
    failover = cluster.failover
    if failover is not None and failover.scheduled_at is not None:
        text = f"Switchover scheduled at: {failover.scheduled_at.isoformat()}"
        for label, value in (("from", failover.leader), ("to", failover.candidate)):
            if value:
                text += f"\n{label:>24}: {value}"
        lines.append(text)
    return lines


def cluster_is_empty(cluster: Cluster) -> bool:
    """Nothing of the scope exists in the DCS: no such cluster."""
    return (cluster.initialize is None and cluster.config is None and cluster.leader is None
            and not cluster.members and cluster.history is None and cluster.failover is None)
