# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Standby cluster (dynamic config `standby_cluster: {host, port, primary_slot_name,
restore_command, create_replica_methods}`), Patroni's semantics: the member holding the
leader key is the "standby leader": it stays in recovery and streams from the remote
primary at host:port; the other members replicate from it. Removing standby_cluster from
the dynamic config makes core/ha.py promote the standby leader.

What the standby_cluster section asks of PostgreSQL: the remote primary's name and
connection, the slot and recovery settings, the clone of the remote. The Executor's
handlers for BOOTSTRAP_STANDBY, STANDBY_LEADER and ACQUIRE_STANDBY use these."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config.settings import Config, DynamicSettings, PostgresqlSettings
from ..postgresql import bootstrap as pg_bootstrap

ROLE = "standby_leader"  # the role name callbacks and the REST API use


def remote_name(dynamic: DynamicSettings) -> str | None:
    """'host:port' of the remote primary (None: not a standby cluster)."""
    section = dynamic.standby_cluster
    if section is None:
        return None
    if section.get("host"):
        return f"{section['host']}:{section.get('port') or 5432}"
    return "restore_command"


def remote_conninfo(config: Config, pg: Any) -> dict[str, Any]:
    """libpq parameters for the remote primary, as our replication user (password via pgpass)."""
    section = config.dynamic.standby_cluster or {}
    if not section.get("host"):
        return {}
    return pg.conninfo_for(f"postgres://{section['host']}:{section.get('port') or 5432}/postgres")


def slot(config: Config) -> str | None:
    return (config.dynamic.standby_cluster or {}).get("primary_slot_name") or None


def extra(config: Config) -> dict[str, Any]:
    """restore_command, archive_cleanup_command, recovery_min_apply_delay of standby_cluster."""
    section = config.dynamic.standby_cluster or {}
    return {k: section[k] for k in ("restore_command", "archive_cleanup_command", "recovery_min_apply_delay")
            if section.get(k) not in (None, "")}


class _WithSettings:
    """The Postgresql facade seen with other settings (the standby_cluster's replica methods)."""

    def __init__(self, pg: Any, settings: PostgresqlSettings) -> None:
        self._pg = pg
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pg, name)


def clone_remote(config: Config, pg: Any, conninfo: dict[str, Any]) -> bool:
    """Copy the remote primary with standby_cluster's create_replica_methods (else ours)."""
    methods = (config.dynamic.standby_cluster or {}).get("create_replica_methods")
    settings = pg.settings
    if methods:
        settings = replace(settings, create_replica_methods=tuple(methods))
    return pg_bootstrap.create_replica(_WithSettings(pg, settings), conninfo, pg.clone_timeout)


def start_as_standby(config: Config, pg: Any) -> bool:
    """Start PostgreSQL as a standby of the remote primary."""
    return pg.start("replica", remote_conninfo(config, pg) or None, slot(config), standby_extra=extra(config))


def follow_remote(config: Config, pg: Any) -> None:
    """Point a running standby at the remote primary; a running primary (a cluster demoted to
    a standby cluster) restarts as the standby leader, its shutdown checkpoint archived."""
    pg.follow(remote_conninfo(config, pg) or None, slot(config), standby_extra=extra(config), archive_shutdown=True)
