# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure builders: the member key JSON and the GET /patroni body from one cycle's facts."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..config.settings import Config


@dataclass(frozen=True)
class CycleFacts:
    """Everything a cycle learned about this node, for publishing."""

    running: bool = False
    in_recovery: bool = True
    is_leader: bool = False
    busy: str | None = None
    crashed: bool = False
    data_dir_empty: bool = False
    timeline: int | None = None
    wal_lsn: int = 0
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    replayed_timestamp: str | None = None
    replay_paused: bool = False
    streaming: bool = False
    restore_command: bool = False  # restore_command is set (read from the running server)
    server_version: int | None = None
    postmaster_start_time: str | None = None
    sysid: str | None = None
    pending_restart: bool = False
    replication: tuple[dict[str, Any], ...] = ()
    dcs_last_seen: int = 0
    paused: bool = False
    cluster_unlocked: bool = False
    scheduled_restart: dict[str, Any] | None = None
    standby_leader: bool = False  # we hold the lock of a standby cluster
    extra: dict[str, Any] = field(default_factory=dict)


def member_state(facts: CycleFacts) -> str:
    if facts.busy:
        return facts.busy
    if facts.running:
        return "running"
    if facts.data_dir_empty:
        return "uninitialized"
    return "crashed" if facts.crashed else "stopped"


def member_role(facts: CycleFacts) -> str:
    if facts.data_dir_empty and not facts.running:
        return "uninitialized"
    if facts.running and not facts.in_recovery:
        return "primary"
    if facts.running and facts.standby_leader:
        return "standby_leader"
    return "replica"


BOOLEAN_TAGS = ("clonefrom", "nofailover", "noloadbalance", "nosync", "nostream")


def published_tags(tags: dict[str, Any]) -> dict[str, Any]:
    """The tags as Patroni publishes them: its boolean tags only when set (nofailover also
    beside failover_priority, nosync beside sync_priority); custom tags always."""
    return {k: v for k, v in tags.items()
            if k not in BOOLEAN_TAGS or v or (k == "nofailover" and "failover_priority" in tags)
            or (k == "nosync" and "sync_priority" in tags)}


def replication_state(facts: CycleFacts) -> str | None:
    """Patroni's replication_state of a running replica: "streaming" while its WAL receiver
    streams, else "in archive recovery" when it has a restore_command (a nostream member, or
    one whose upstream is away), else none."""
    if not (facts.running and facts.in_recovery):
        return None
    if facts.streaming:
        return "streaming"
    return "in archive recovery" if facts.restore_command else None


def member_data(config: Config, facts: CycleFacts) -> dict[str, Any]:
    """Value of members/<name> (Patroni's fields)."""
    data: dict[str, Any] = {
        "conn_url": config.postgresql.conn_url,
        "api_url": config.restapi.api_url,
        "state": member_state(facts),
        "role": member_role(facts),
        "version": __version__,
    }
    if config.postgresql.proxy_url:  # postgresql.proxy_address, as Patroni publishes it
        data["proxy_url"] = config.postgresql.proxy_url
    if facts.running or facts.wal_lsn:
        data["xlog_location"] = facts.wal_lsn
    if facts.timeline is not None:
        data["timeline"] = facts.timeline
    if facts.running and facts.in_recovery:
        for key, lsn in (("replay_lsn", facts.replay_lsn), ("receive_lsn", facts.receive_lsn)):
            if lsn:  # as Patroni 4: patronictl shows them as Receive/Replay LSN and lag
                data[key] = lsn
        if replication_state(facts):
            data["replication_state"] = replication_state(facts)
    if facts.pending_restart:
        data["pending_restart"] = True
    if facts.scheduled_restart:
        data["scheduled_restart"] = facts.scheduled_restart
    tags = published_tags(config.tags)
    if tags:
        data["tags"] = tags
    return data


def patroni_status(config: Config, facts: CycleFacts) -> dict[str, Any]:
    """Body of GET /patroni."""
    body: dict[str, Any] = {
        "state": member_state(facts),
        "role": member_role(facts),
    }
    if facts.postmaster_start_time:
        body["postmaster_start_time"] = facts.postmaster_start_time
    if facts.server_version:
        body["server_version"] = facts.server_version
    if facts.running:
        if facts.in_recovery:
            body["xlog"] = {
                "received_location": facts.receive_lsn if facts.receive_lsn is not None else facts.wal_lsn,
                "replayed_location": facts.replay_lsn if facts.replay_lsn is not None else facts.wal_lsn,
                "replayed_timestamp": facts.replayed_timestamp,
                "paused": facts.replay_paused,
            }
            if replication_state(facts):
                body["replication_state"] = replication_state(facts)
        else:
            body["xlog"] = {"location": facts.wal_lsn}
    if facts.timeline is not None:
        body["timeline"] = facts.timeline
    if facts.replication:
        body["replication"] = list(facts.replication)
    body["dcs_last_seen"] = facts.dcs_last_seen or int(time.time())
    if facts.sysid:
        body["database_system_identifier"] = facts.sysid
    if facts.pending_restart:
        body["pending_restart"] = True
    if facts.scheduled_restart:
        body["scheduled_restart"] = facts.scheduled_restart
    body["patroni"] = {"version": __version__, "scope": config.scope, "name": config.name}
    tags = published_tags(config.tags)
    if tags:
        body["tags"] = tags
    if facts.paused:
        body["pause"] = True
    if facts.cluster_unlocked:
        body["cluster_unlocked"] = True
    return body
