# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Standby cluster (dynamic config `standby_cluster: {host, port, primary_slot_name,
restore_command, create_replica_methods}`), Patroni's semantics: the member holding the
leader key is the "standby leader": it stays in recovery and streams from the remote
primary at host:port; the other members replicate from it. Removing standby_cluster from
the dynamic config makes ha.py promote the standby leader.

The executor's steps for Action.BOOTSTRAP_STANDBY, STANDBY_LEADER and ACQUIRE_STANDBY."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config.settings import DynamicSettings, PostgresqlSettings
from ..core.model import Cluster

if TYPE_CHECKING:
    from .executor import Executor

logger = logging.getLogger(__name__)

ROLE = "standby_leader"  # the role name callbacks and the REST API use


def remote_name(dynamic: DynamicSettings) -> str | None:
    """'host:port' of the remote primary (None: not a standby cluster)."""
    section = dynamic.standby_cluster
    if section is None:
        return None
    if section.get("host"):
        return f"{section['host']}:{section.get('port') or 5432}"
    return "restore_command"


def remote_conninfo(ex: Executor) -> dict[str, Any]:
    """libpq parameters for the remote primary, as our replication user (password via pgpass)."""
    section = ex.config.dynamic.standby_cluster or {}
    if not section.get("host"):
        return {}
    return ex.pg.conninfo_for(f"postgres://{section['host']}:{section.get('port') or 5432}/postgres")


def _slot(ex: Executor) -> str | None:
    return (ex.config.dynamic.standby_cluster or {}).get("primary_slot_name") or None


def _extra(ex: Executor) -> dict[str, Any]:
    """restore_command, archive_cleanup_command, recovery_min_apply_delay of standby_cluster."""
    section = ex.config.dynamic.standby_cluster or {}
    return {k: section[k] for k in ("restore_command", "archive_cleanup_command", "recovery_min_apply_delay")
            if section.get(k) not in (None, "")}


class _WithSettings:
    """The Postgresql facade seen with other settings (the standby_cluster's replica methods)."""

    def __init__(self, pg: Any, settings: PostgresqlSettings) -> None:
        self._pg = pg
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pg, name)


def _clone_remote(ex: Executor, conninfo: dict[str, Any]) -> bool:
    from ..postgresql import bootstrap as pg_bootstrap

    methods = (ex.config.dynamic.standby_cluster or {}).get("create_replica_methods")
    settings = ex.pg.settings
    if methods:
        settings = replace(settings, create_replica_methods=tuple(methods))
    return pg_bootstrap.create_replica(_WithSettings(ex.pg, settings), conninfo, ex.pg.clone_timeout)


def bootstrap_standby(ex: Executor, cluster: Cluster) -> bool:
    """Take the initialize key, clone the remote primary, start as its standby, publish the
    system identifier and take the leader key. On failure: empty data dir, key released."""
    remote = remote_name(ex.config.dynamic)
    conninfo = remote_conninfo(ex)
    if not ex.dcs.initialize(create_new=True, sysid=""):
        return False

    def run() -> None:
        pg = ex.pg
        if not _clone_remote(ex, conninfo) or not pg.start("replica", conninfo or None, _slot(ex),
                                                           standby_extra=_extra(ex)):
            logger.error("failed to bootstrap the standby leader from the remote primary %s: removing the "
                         "data directory and the initialize key", remote)
            pg.stop("immediate")
            pg.remove_data_dir()
            ex.dcs.cancel_initialization()
            ex.memory.bootstrap_failed_at = time.monotonic()
            return
        ex.memory.upstream = remote
        ex.memory.unverified_primary_data = False
        ex.memory.stopped_on_purpose = False
        ex.callbacks.fire("on_start", ROLE)
        ex.dcs.initialize(create_new=False, sysid=pg.sysid() or "")
        if ex.dcs.attempt_to_acquire_leader():
            logger.info("initialized a standby cluster: standby leader replicating from %s", remote)
        if ex.dcs.get_cluster().config is None:
            ex.dcs.set_config_value(json.dumps(ex.config.bootstrap_dcs, separators=(",", ":")))

    return ex.run_async("bootstrapping standby leader", run)


def _follow_remote(ex: Executor) -> bool:
    remote = remote_name(ex.config.dynamic)
    conninfo = remote_conninfo(ex)
    ex.pg.follow(conninfo or None, _slot(ex), standby_extra=_extra(ex))
    ex.memory.upstream = remote
    ex.memory.unverified_primary_data = False
    return True


def standby_leader(ex: Executor, cluster: Cluster) -> bool:
    """We hold the lock: make PostgreSQL a standby of the remote primary (start it, re-point
    it, or restart a read-write one as a standby)."""
    pg = ex.pg
    if pg.is_running():
        if pg.state().in_recovery is not False:
            return _follow_remote(ex)
        ex.memory.stopped_on_purpose = True
        return ex.run_async("demoting to standby leader", lambda: _follow_remote(ex))

    def start() -> bool:
        remote = remote_name(ex.config.dynamic)
        if pg.start("replica", remote_conninfo(ex) or None, _slot(ex), standby_extra=_extra(ex)):
            ex.memory.upstream = remote
            ex.memory.stopped_on_purpose = False
            ex.memory.primary_start_failed = False
            ex.callbacks.fire("on_start", ROLE)
            return True
        logger.error("the standby leader's PostgreSQL did not start")
        ex.memory.primary_start_failed = True  # ha.py releases the lock next cycle
        return False

    return ex.run_async("starting", start)


def acquire_standby(ex: Executor, cluster: Cluster) -> bool:
    """Take the leader key and, holding it, stream from the remote primary at once."""
    if not ex.dcs.attempt_to_acquire_leader():
        return False
    if ex.pg.is_running() and ex.pg.state().in_recovery is not False:
        _follow_remote(ex)
    if cluster.failover is not None:  # a switchover to us is done
        ex.dcs.set_failover_value("", cluster.failover.version)
    return True
