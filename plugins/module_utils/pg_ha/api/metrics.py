# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GET /metrics: Prometheus text exposition with Patroni's metric names and labels."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import __version__
from ..config.settings import Config
from ..core.model import Cluster
from .health import PRIMARY_ROLES, RUNNING, is_quorum_standby, is_sync_standby

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def padded_version(version: str) -> str:
    """'3.0.2' -> '030002' (Patroni's patroni_version value)."""
    parts = version.split(".")[:3]
    parts += ["0"] * (3 - len(parts))
    return "".join(("".join(ch for ch in part if ch.isdigit()) or "0").zfill(2) for part in parts)


def epoch_seconds(value: Any) -> float:
    """Epoch seconds of an ISO timestamp (or a number); 0 when absent or unparsable."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, int):
        return str(value)
    return "0"


def metrics_text(status: dict[str, Any], cluster: Cluster | None, config: Config) -> str:
    labels = f'{{scope="{_label(config.scope)}",name="{_label(config.name)}"}}'
    xlog = status.get("xlog") if isinstance(status.get("xlog"), dict) else {}
    role = status.get("role")
    server_version = status.get("server_version") if isinstance(status.get("server_version"), int) else 0
    rows: list[tuple[str, str, str, Any]] = [
        ("patroni_version", "gauge", "pg_ha semver without periods.", padded_version(__version__)),
        ("patroni_postgres_running", "gauge", "Value is 1 if Postgres is running, 0 otherwise.",
         status.get("state") == RUNNING),
        ("patroni_postmaster_start_time", "gauge", "Epoch seconds since Postgres started.",
         epoch_seconds(status.get("postmaster_start_time"))),
        ("patroni_primary", "gauge", "Value is 1 if this node is the leader, 0 otherwise.",
         role in PRIMARY_ROLES),
        ("patroni_xlog_location", "counter",
         "Current location of the Postgres transaction log, 0 if this node is not the leader.",
         xlog.get("location", 0)),
        ("patroni_standby_leader", "gauge", "Value is 1 if this node is the standby_leader, 0 otherwise.",
         role == "standby_leader"),
        ("patroni_replica", "gauge", "Value is 1 if this node is a replica, 0 otherwise.", role == "replica"),
        ("patroni_sync_standby", "gauge", "Value is 1 if this node is a sync standby, 0 otherwise.",
         role == "replica" and is_sync_standby(cluster, config, config.name)),
        ("patroni_quorum_standby", "gauge", "Value is 1 if this node is a quorum standby, 0 otherwise.",
         role == "replica" and is_quorum_standby(cluster, config, config.name)),
        ("patroni_xlog_received_location", "counter",
         "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
         xlog.get("received_location", 0)),
        ("patroni_xlog_replayed_location", "counter",
         "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
         xlog.get("replayed_location", 0)),
        ("patroni_xlog_replayed_timestamp", "gauge",
         "Current timestamp of the replayed Postgres transaction log, 0 if null.",
         epoch_seconds(xlog.get("replayed_timestamp"))),
        ("patroni_xlog_paused", "gauge", "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
         xlog.get("paused") is True),
    ]
    if server_version >= 90600:
        rows += [
            ("patroni_postgres_streaming", "gauge", "Value is 1 if Postgres is streaming, 0 otherwise.",
             status.get("replication_state") == "streaming"),
            ("patroni_postgres_in_archive_recovery", "gauge",
             "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
             status.get("replication_state") == "in archive recovery"),
        ]
    rows += [
        ("patroni_postgres_server_version", "gauge", "Version of Postgres (if running), 0 otherwise.",
         server_version),
        ("patroni_cluster_unlocked", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked.",
         bool(status.get("cluster_unlocked"))),
        ("patroni_failsafe_mode_is_active", "gauge",
         "Value is 1 if failsafe mode is active, 0 if inactive.", bool(status.get("failsafe_mode_is_active"))),
        ("patroni_postgres_timeline", "counter", "Postgres timeline of this node (if running), 0 otherwise.",
         status.get("timeline") or 0),
        ("patroni_dcs_last_seen", "gauge", "Epoch timestamp when DCS was last contacted successfully.",
         status.get("dcs_last_seen") or 0),
        ("patroni_pending_restart", "gauge", "Value is 1 if the node needs a restart, 0 otherwise.",
         bool(status.get("pending_restart"))),
        ("patroni_is_paused", "gauge", "Value is 1 if auto failover is disabled, 0 otherwise.",
         bool(status.get("pause"))),
    ]
    lines: list[str] = []
    for name, kind, help_text, value in rows:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        rendered = value if isinstance(value, str) else _number(value)
        lines.append(f"{name}{labels} {rendered}")
    return "\n".join(lines) + "\n"
