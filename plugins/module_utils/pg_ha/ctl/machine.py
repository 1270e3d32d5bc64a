# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The member rows of ``list -f tsv|json|yaml`` with patronictl 4.1's columns and values.

Columns: Cluster, Member, Host, Role, State, TL, Receive LSN, Receive Lag, Replay LSN,
Replay Lag, then Pending restart, Pending restart reason, Scheduled restart and Tags when a
member has one (all four with -e). Members are sorted by name. The leader has no LSN/lag
values; a replica's LSN is 'unknown' when it published none (its lag is then empty); lags
are whole MB behind optime/leader. A member that publishes only xlog_location (no
receive_lsn/replay_lsn) gets it as its receive (streaming) or replay position, as
patronictl does for older members. In json/yaml an empty value drops the key."""
from __future__ import annotations

from typing import Any

from ..core.model import Cluster, Member
from .members import (
    DEFAULT_PG_PORT,
    host_port,
    is_quorum,
    is_standby_cluster,
    role_title,
    scheduled_text,
    sync_standbys,
)
from .output import mb

BASE = ["Cluster", "Member", "Host", "Role", "State", "TL", "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag"]
OPTIONAL = ["Pending restart", "Pending restart reason", "Scheduled restart", "Tags"]
OPTIONAL_KEYS = {"Pending restart": "pending_restart", "Pending restart reason": "pending_restart_reason",
                 "Scheduled restart": "scheduled_restart", "Tags": "tags"}


def format_lsn(lsn: int) -> str:
    """16777216 -> '0/1000000' (PostgreSQL's text form)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _lsn(value: Any) -> int | None:
    """A published WAL position: an int or a numeric string (as Patroni parses it)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _role(cluster: Cluster, member: Member) -> str:
    leader = cluster.leader.name if cluster.leader is not None else None
    if member.name == leader:
        return "standby_leader" if is_standby_cluster(cluster) else "leader"
    if member.name in sync_standbys(cluster):
        return "quorum_standby" if is_quorum(cluster) else "sync_standby"
    return "replica"


def positions(cluster: Cluster, member: Member) -> dict[str, Any]:
    """receive_lsn/receive_lag, replay_lsn/replay_lag and lsn/lag of a replica: LSN text
    ('unknown' when not published) and bytes behind the cluster's last LSN (never below 0)."""
    out: dict[str, Any] = {}
    for prefix, key in (("receive_", "receive_lsn"), ("replay_", "replay_lsn"), ("", "xlog_location")):
        lsn = _lsn(member.data.get(key))
        if not lsn:
            out[f"{prefix}lsn"] = out[f"{prefix}lag"] = "unknown"
        else:
            out[f"{prefix}lsn"] = format_lsn(lsn)
            out[f"{prefix}lag"] = max(0, cluster.last_lsn - lsn)
    return out


def _restart_reason(member: Member) -> str:
    reason = member.data.get("pending_restart_reason")
    if not isinstance(reason, dict):
        return ""
    lines = []
    for name, values in reason.items():
        values = values if isinstance(values, dict) else {}
        lines.append(f"{name}: {values.get('old_value', '')}->{values.get('new_value', '')}")
    return "\n".join(lines)


def _lag_mb(lag: Any) -> Any:
    if isinstance(lag, int):
        return mb(lag)
    return "" if lag == "unknown" else lag


def member_values(cluster: Cluster, member: Member) -> dict[str, Any]:
    """One member as patronictl 4.1 fills its row (before Host gets its port)."""
    role = _role(cluster, member)
    replication_state = member.data.get("replication_state") if role != "leader" else ""
    state = replication_state or member.data.get("state", "")
    values: dict[str, Any] = {"Cluster": "", "Member": member.name, "Role": role_title(role), "State": state,
                              "TL": member.data["timeline"] if "timeline" in member.data else ""}
    receive_lsn = receive_lag = replay_lsn = replay_lag = ""
    if cluster.leader is None or member.name != cluster.leader.name:
        pos = positions(cluster, member)
        receive_lsn, receive_lag = pos["receive_lsn"], pos["receive_lag"]
        replay_lsn, replay_lag = pos["replay_lsn"], pos["replay_lag"]
        if receive_lsn == "unknown" and replay_lsn == "unknown" and pos["lsn"] != "unknown":
            if state == "streaming":
                receive_lsn, receive_lag = pos["lsn"], pos["lag"]
            else:
                replay_lsn, replay_lag = pos["lsn"], pos["lag"]
    values.update({"Receive LSN": receive_lsn, "Receive Lag": _lag_mb(receive_lag),
                   "Replay LSN": replay_lsn, "Replay Lag": _lag_mb(replay_lag),
                   "Pending restart": "*" if member.data.get("pending_restart") else "",
                   "Pending restart reason": _restart_reason(member),
                   "Scheduled restart": scheduled_text(member.data.get("scheduled_restart")
                                                       if isinstance(member.data.get("scheduled_restart"), dict)
                                                       else None),
                   "Tags": member.data.get("tags", "")})
    return values


def machine_table(cluster: Cluster, scope: str, extended: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of ``list -f tsv|json|yaml`` (patronictl 4.1's)."""
    members = sorted(cluster.members, key=lambda m: m.name)
    columns = list(BASE)
    for column in OPTIONAL:
        if extended or any(m.data.get(OPTIONAL_KEYS[column]) for m in members):
            columns.append(column)
    addresses = [host_port(m.conn_url) for m in members]
    with_host = [(h, p) for h, p in addresses if h]
    append_port = any(p is not None and p != DEFAULT_PG_PORT for _, p in with_host) \
        or len({h for h, _ in with_host}) < len(with_host)
    rows = []
    for member, (host, port) in zip(members, addresses, strict=True):
        values = member_values(cluster, member)
        values["Cluster"] = scope
        values["Host"] = f"{host}:{port}" if append_port and host and port else host or ""
        rows.append([values[c] for c in columns])
    return columns, rows
