# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an HA cycle sees of its own member before deciding: PostgreSQL's state, the data
directory, the peers' REST answers when a race may be near, read into ha.py's LocalView
and the CycleFacts the cycle publishes. Also notices a replica stuck behind a newer
leader timeline (it may have replayed past the fork point)."""
from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from ..config.settings import Config
from ..core.ha import LocalView
from ..core.model import Cluster
from ..core.status import CycleFacts
from ..postgresql.bootstrap import methods_without_leader
from ..postgresql.query import LocalState
from ..watchdog import Watchdog
from .executor import Executor
from .peers import fetch_peers

logger = logging.getLogger("pg_ha")

STUCK_AFTER = 5.0  # seconds a replica may fail to stream from a newer-timeline leader before a check


class StuckCheck:
    """A replica pointed at the leader that has not streamed for STUCK_AFTER seconds while
    the leader is on a newer timeline. Remembers the newest timeline it streamed, since
    pg_control's timeline lags on a replica until a restartpoint."""

    def __init__(self) -> None:
        self._not_streaming_since: float | None = None
        self._streamed_tli = 0  # newest timeline we streamed

    def __call__(self, cluster: Cluster, state: Any, upstream: str | None) -> bool:
        leader = cluster.leader_member
        receiver = state.wal_receiver or {}
        if receiver.get("status") == "streaming" and isinstance(receiver.get("received_tli"), int):
            self._streamed_tli = max(self._streamed_tli, receiver["received_tli"])
        suspicious = (state.running and state.in_recovery and leader is not None and upstream == leader.name
                      and receiver.get("status") != "streaming"
                      and (leader.timeline or 0) > max(state.timeline or 0, self._streamed_tli))
        if not suspicious:
            self._not_streaming_since = None
            return False
        now = time.monotonic()
        if self._not_streaming_since is None:
            self._not_streaming_since = now
        return now - self._not_streaming_since >= STUCK_AFTER


class Observer:
    """One per daemon: reads the local member once per cycle."""

    def __init__(self, pg: Any, executor: Executor, watchdog: Watchdog) -> None:
        self._pg = pg
        self._executor = executor
        self._watchdog = watchdog
        self.stuck_following = StuckCheck()

    def gather(self, config: Config, cluster: Cluster, dcs_last_seen: int,
               scheduled_restart: dict[str, Any] | None,
               after_failsafe_outage: bool = False) -> tuple[LocalView, CycleFacts, LocalState]:
        """The view ha.decide() gets, the facts the cycle publishes, and the state read."""
        node = self._executor.state  # read-only: the Executor owns it
        busy = self._executor.busy
        empty = self._pg.data_dir_empty() if not busy else False
        incomplete = not empty and not busy and self._incomplete_data_dir(config)
        void = empty or incomplete
        state = self._pg.state()
        leader = cluster.leader.name if cluster.leader else None
        crashed_leader = leader == config.name and not state.running and config.dynamic.master_start_timeout == 0
        need_peers = not busy and not void and (
            leader is None or (leader == config.name and cluster.failover is not None) or crashed_leader)
        peers = fetch_peers(cluster, config.name, min(2.0, config.dynamic.retry_timeout),
                            config.restapi) if need_peers else None
        sysid = state.sysid or (None if void or busy else self._pg.sysid())
        wal = state.wal_lsn or 0
        view = LocalView(
            name=config.name, now=datetime.now(UTC), data_dir_empty=empty, sysid=sysid,
            running=state.running, in_recovery=state.in_recovery if state.running else True,
            timeline=state.timeline, wal_lsn=wal, upstream=node.upstream, busy=busy,
            unverified_primary_data=node.unverified_primary_data,
            primary_start_failed=node.primary_start_failed, nofailover=config.nofailover,
            failover_priority=config.failover_priority,
            replicatefrom=config.tags.get("replicatefrom") or None,
            stuck_following=self.stuck_following(cluster, state, node.upstream),
            bootstrap_backoff=self._executor.bootstrap_backoff(), incomplete_data_dir=incomplete,
            after_failsafe_outage=after_failsafe_outage,
            peers=peers, watchdog_usable=self._watchdog.usable(),
            clone_without_leader=bool(methods_without_leader(config.postgresql)))
        facts = CycleFacts(
            **server_facts(state), busy=busy,
            crashed=not state.running and not busy and not node.stopped_on_purpose and not void
            and not cluster.paused,  # in maintenance mode a dead postmaster is just stopped (Patroni)
            data_dir_empty=void, sysid=sysid, dcs_last_seen=dcs_last_seen,
            paused=cluster.paused, cluster_unlocked=cluster.leader is None,
            scheduled_restart=scheduled_restart,
            standby_leader=leader == config.name and config.dynamic.standby_cluster is not None)
        return view, facts, state

    def _incomplete_data_dir(self, config: Config) -> bool:
        """A data directory without global/pg_control (an interrupted pg_basebackup) can never
        start: core/ha.py has it removed so the member clones again."""
        data_dir = config.postgresql.data_dir
        return not os.path.exists(os.path.join(data_dir, "global", "pg_control")) and not self._pg.is_running()


def server_facts(state: LocalState) -> dict[str, Any]:
    """The CycleFacts fields read from the server itself (the rest come from the DCS and
    from this node's memory)."""
    receiver = state.wal_receiver or {}
    return {
        "running": state.running, "in_recovery": state.in_recovery if state.running else True,
        "timeline": state.timeline, "wal_lsn": state.wal_lsn or 0, "receive_lsn": state.receive_lsn,
        "replay_lsn": state.replay_lsn, "replayed_timestamp": state.replayed_timestamp,
        "replay_paused": bool(state.paused), "streaming": receiver.get("status") == "streaming",
        "restore_command": state.restore_command, "server_version": state.server_version,
        "postmaster_start_time": state.postmaster_start_time, "pending_restart": bool(state.pending_restart),
        "replication": tuple(state.replication or ()),
    }
