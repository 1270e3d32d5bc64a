# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leader's housekeeping, once per cycle while we hold the lock and PostgreSQL runs:
the initial cluster config, replication slots (with member_slots_ttl), the timeline
history key, synchronous standbys (the sync key) and the failsafe key."""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..config.settings import Config
from ..core import slots as rules
from ..core import sync as sync_mod
from ..core.model import Cluster
from ..core.slots import LocalSlot
from ..dcs.base import AbstractDCS, DCSError
from ..postgresql.query import LocalState
from . import permanent_slots
from .executor import Executor
from .failsafe_keeper import FailsafeKeeper
from .quorum_steps import manage_quorum

logger = logging.getLogger("pg_ha")


class LeaderHousekeeping:
    """One per daemon; remembers when each member was last seen (for member_slots_ttl)."""

    def __init__(self, dcs: AbstractDCS, pg: Any, executor: Executor, failsafe: FailsafeKeeper) -> None:
        self._dcs = dcs
        self._pg = pg
        self._executor = executor
        self._failsafe = failsafe
        self.slot_seen: dict[str, float] = {}  # member -> when last seen (monotonic seconds)
        self.retained: dict[str, float] = {}  # slot -> since: the previous leader's retain_slots

    def took_over(self, cluster: Cluster) -> None:
        """We just became the leader: keep the slots the previous leader retained (its own
        among them) for member_slots_ttl, as Patroni does on acquiring the lock, so the
        members whose keys expired with it find their slots when they come back."""
        retain = (cluster.status or {}).get("retain_slots")
        now = time.monotonic()
        self.retained = {n: now for n in retain if isinstance(n, str)} if isinstance(retain, list) else {}

    def run(self, config: Config, cluster: Cluster, state_after: Callable[[], LocalState]) -> None:
        """`state_after` gives PostgreSQL's state after this cycle's action (one read for
        the history and the sync steps). A DCS error ends the housekeeping with a warning."""
        try:
            # lost, never written or emptied: what this member runs with, as Patroni
            if cluster.config is None or (cluster.config.valid and not cluster.config.data):
                self._dcs.set_config_value(json.dumps(config.dynamic.raw, separators=(",", ":")))
            local = self._local_slots()
            member_slots: set[str] = set()
            if config.postgresql.use_slots:
                member_slots = self._sync_slots(config, cluster, local)
                if local is not None and not member_slots <= set(local):
                    # a slot made this cycle is in the status key at once, with its position
                    local = self._local_slots() or local
            state = state_after()
            permanent_slots.publish_status(self._dcs, config, cluster, local or {}, member_slots, state.wal_lsn)
            update_history(self._dcs, config, cluster, state)
            self._manage_sync(config, cluster, state)
            self._failsafe.publish(self._dcs, cluster, config)
        except DCSError as exc:
            logger.warning("leader housekeeping failed: %s", exc)

    def _local_slots(self) -> dict[str, LocalSlot] | None:
        try:
            return permanent_slots.to_local(self._pg.local_slots())
        except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
            logger.error("could not read replication slots: %s", exc)
            return None

    def _sync_slots(self, config: Config, cluster: Cluster, local: dict[str, LocalSlot] | None) -> set[str]:
        """Member slots and permanent slots; returns the member slots kept."""
        me = config.name
        now = time.monotonic()
        ttl = config.dynamic.member_slots_ttl
        slotted = rules.leader_member_names(cluster, me, member_slots_ttl=ttl)
        for name in slotted:
            self.slot_seen[name] = now
        # a member that vanished (killed, being rebuilt) keeps its slot for member_slots_ttl,
        # so it can stream the moment it is back and the WAL it needs is still there
        self.slot_seen = {n: t for n, t in self.slot_seen.items()
                          if now - t <= ttl and (cluster.get_member(n) is None or n in slotted)}
        members = {self._pg.slot_name_for(n) for n in self.slot_seen if n != me}
        self.retained = {n: t for n, t in self.retained.items() if now - t <= ttl and n not in members}
        members |= set(self.retained) - {self._pg.slot_name_for(me)}
        names = members | {n for n, s in permanent_slots.wanted_here(config).items() if not s.logical}
        if local is None:
            return members
        keep = frozenset(local) if cluster.paused else permanent_slots.ignored_names(config, local)
        self._pg.sync_replication_slots(names, in_recovery_ok=config.dynamic.standby_cluster is not None,
                                        keep=keep)
        permanent_slots.leader_permanent_slots(self._pg, config, cluster, local, members)
        return members

    def _manage_sync(self, config: Config, cluster: Cluster, state: Any) -> None:
        dyn, me = config.dynamic, config.name
        if not dyn.synchronous_mode or dyn.standby_cluster is not None:  # no sync in a standby cluster
            if cluster.sync is not None and cluster.sync.leader == me:
                self._dcs.delete_sync_state(cluster.sync.version)
            self._executor.set_sync_names(None)
            return
        if dyn.synchronous_quorum:
            manage_quorum(self._dcs, self._executor, cluster, me, state.replication or [])
            return
        limit = sync_mod.LagLimit(dyn.maximum_lag_on_syncnode,
                                  sync_mod.lsn_column(config.postgresql.parameters.get("synchronous_commit")),
                                  state.wal_lsn or 0)
        rows = self._executor.confirmed_replication(cluster, list(state.replication or []), limit.column)
        step = sync_mod.plan(cluster, me, rows, self._executor.sync_names or (),
                             dyn.synchronous_node_count, dyn.synchronous_mode_strict, limit)
        if step.write_key:  # names sorted, as Patroni writes them
            value = json.dumps(sync_mod.sync_key_value(me, step.key_standbys), separators=(",", ":"))
            if not self._dcs.set_sync_state_value(value, cluster.sync.version if cluster.sync else None):
                logger.warning("sync key changed concurrently: synchronous standbys unchanged this cycle")
                return
        if step.message:
            logger.info("%s", step.message)
        self._executor.set_sync_names(step.standby_names)


def update_history(dcs: AbstractDCS, config: Config, cluster: Cluster, state: Any) -> None:
    """Publish pg_wal/<timeline>.history as the history key when the key lags behind."""
    timeline = state.timeline or 1
    known = max((int(line[0]) for line in cluster.history.lines), default=0) if cluster.history else 0
    if timeline <= 1 or known >= timeline - 1:
        return
    path = os.path.join(config.postgresql.data_dir, "pg_wal", f"{timeline:08X}.history")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return
    from ..postgresql import parse_lsn
    lines: list[list[Any]] = []
    for raw in text.splitlines():
        parts = raw.strip().split("\t")
        if len(parts) >= 2 and parts[0].isdigit():
            lines.append([int(parts[0]), parse_lsn(parts[1]), parts[2] if len(parts) > 2 else "",
                          datetime.now(UTC).isoformat(timespec="seconds"), config.name])
    if cluster.history:  # keep what older entries already said (time, who)
        old = {int(line[0]): list(line) for line in cluster.history.lines}
        lines = [old.get(line[0], line) for line in lines]
    dcs.set_history_value(json.dumps(lines, separators=(",", ":")))
