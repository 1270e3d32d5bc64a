# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Permanent replication slots, the I/O side (core/slots.py decides):

- on the leader: drop unknown logical slots (ignore_slots spares them), create the
  permanent logical ones, publish {name: lsn} of the slots in the `status` key;
- on a replica (Patroni 4.1 on PostgreSQL >= 11): copy a missing permanent logical slot's
  state file from the primary (pg_read_binary_file, written while PostgreSQL is stopped:
  the Executor does the stop and start), advance the copies to the published position
  with pg_replication_slot_advance (in a thread, never past replay_lsn), keep permanent
  physical slots and the other members' slots (not those of members cascading from here:
  they stream through them) at the published position, or at replay_lsn when none is
  published, so that no idle slot pins WAL here (a data directory taken over from
  Patroni has such slots), and watch whether each copy is safe to use after a promotion
  (hot_standby_feedback and our physical slot's catalog_xmin on the primary)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..config.settings import Config
from ..core import slots as rules
from ..core.model import Cluster
from ..dcs.base import AbstractDCS
from ..postgresql.slots import slot_name_for
from .executor import Executor

logger = logging.getLogger("pg_ha")


def to_local(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, rules.LocalSlot]:
    return {name: rules.LocalSlot(name=name, type=str(r["type"]), database=r.get("database"),
                                  plugin=r.get("plugin"), active=bool(r.get("active")), lsn=int(r.get("lsn") or 0),
                                  xmin=r.get("xmin"), catalog_xmin=r.get("catalog_xmin"),
                                  wal_status=r.get("wal_status"))
            for name, r in rows.items()}


def wanted_here(config: Config, cluster: Cluster | None = None) -> dict[str, rules.SlotSpec]:
    """The permanent slots this node keeps. Given the cluster (on a replica), no logical
    slot when the WAL does not stream here from the primary: this node is nostream, or
    one of the members it cascades from is (Patroni's get_slot_name_on_primary is None),
    as no feedback reaches the primary and a copy would be unsafe to use."""
    dyn = config.dynamic
    if not config.postgresql.use_slots:
        return {}
    streamed = rules.slot_name_on_primary(cluster, config.name, config.tags) is not None if cluster is not None \
        else not config.tags.get("nostream")
    return rules.wanted_permanent(rules.specs_from(dyn.slots), slot_name_for(config.name),
                                  standby_cluster=dyn.standby_cluster is not None, nofailover=config.nofailover,
                                  nostream=not streamed)


def ignored_names(config: Config, local: Mapping[str, rules.LocalSlot]) -> frozenset[str]:
    return frozenset(n for n, s in local.items() if rules.ignored(config.dynamic.ignore_slots, s))


# -- the leader -------------------------------------------------------------------------------
def leader_permanent_slots(pg: Any, config: Config, cluster: Cluster, local: Mapping[str, rules.LocalSlot],
                           member_slots: Iterable[str] = ()) -> None:
    """Advance the idle slots of cascading members (member slots and permanent physical
    ones); drop unknown or mismatching logical slots, create the missing permanent ones."""
    wanted = wanted_here(config)
    advance_cascading_slots(pg, wanted, cluster, config.name, local, member_slots)
    # a standby cluster has no logical slots (Patroni): `wanted` holds none there, so a logical
    # slot the data directory brought along (a former member of the source cluster) is dropped
    plan = rules.primary_plan(wanted, local, config.dynamic.ignore_slots, cluster.paused)
    for name in plan.drop:
        logger.info("dropping logical replication slot %s: not a permanent slot (or changed)", name)
        pg.drop_slot(name)
    if plan.create_logical:
        pg.ensure_logical_slots({s.name: (str(s.database), str(s.plugin)) for s in plan.create_logical})


def advance_cascading_slots(pg: Any, wanted: Mapping[str, rules.SlotSpec], cluster: Cluster, me: str,
                            local: Mapping[str, rules.LocalSlot], member_slots: Iterable[str]) -> None:
    """The primary's slots of cascading members: made again when they hold an xmin (reserving
    WAL from now), otherwise advanced to the member's position."""
    for name in rules.leader_stale_xmin_slots(wanted, cluster, me, local, member_slots):
        logger.warning("dropping physical replication slot %s: a member that streams from another "
                       "member does not use it, and its xmin holds back vacuum", name)
        if pg.drop_slot(name):
            pg.create_physical_slot(name)
    for name, lsn in rules.leader_physical_advance(wanted, cluster, me, local, member_slots).items():
        pg.advance_physical_slot(name, lsn)


def publish_status(dcs: AbstractDCS, config: Config, cluster: Cluster, local: Mapping[str, rules.LocalSlot],
                   member_slots: set[str], wal_lsn: int | None) -> None:
    """The status key as Patroni's leader writes it: optime, slots, retain_slots."""
    if not wal_lsn:
        return
    me = slot_name_for(config.name)
    slots = rules.published_slots(local, wanted_here(config), member_slots, me, wal_lsn) \
        if config.postgresql.use_slots else {}
    permanent = {n for n, s in wanted_here(config).items() if not s.logical}
    retain = {n for n in member_slots | {me} if n in slots and n not in permanent} \
        if config.dynamic.member_slots_ttl > 0 else set()
    value = rules.status_value(wal_lsn, slots, retain)
    if cluster.status != value:
        dcs.write_status(value)


# -- a replica --------------------------------------------------------------------------------
class SlotAdvancer:
    """Patroni's SlotsAdvanceThread: pg_replication_slot_advance off the HA loop; the
    latest schedule wins, and slots whose WAL is gone come back as 'copy again'."""

    def __init__(self, pg: Any) -> None:
        self._pg = pg
        self._cond = threading.Condition()
        self._scheduled: dict[str, dict[str, int]] = {}
        self._recopy: set[str] = set()
        self._thread: threading.Thread | None = None

    def schedule(self, advance: Mapping[str, Mapping[str, int]]) -> set[str]:
        """Queue the advances; returns the slots an earlier advance found beyond repair."""
        with self._cond:
            for database, slots in advance.items():
                self._scheduled.setdefault(database, {}).update(
                    {n: lsn for n, lsn in slots.items() if n not in self._recopy})
            recopy, self._recopy = self._recopy, set()
            if self._scheduled and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="slot-advance", daemon=True)
                self._thread.start()
            return recopy

    def clear(self) -> None:
        with self._cond:
            self._scheduled.clear()
            self._recopy.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._scheduled:
                    self._thread = None
                    return
                database, slots = self._scheduled.popitem()
            try:
                recopy = self._pg.advance_logical_slots(database, slots)
            except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
                logger.error("could not advance replication slots in database %s: %s", database, exc)
                recopy = []
            with self._cond:
                self._recopy.update(recopy)


class ReplicaSlots:
    """A replica's copies of the permanent slots; one per daemon."""

    def __init__(self, pg: Any, executor: Executor) -> None:
        self._pg = pg
        self._executor = executor
        self.advancer = SlotAdvancer(pg)
        self.pending: dict[str, int | None] = {}  # copies not yet known safe: primary's catalog_xmin
        self._announced: set[str] = set()  # physical slots said once to be advanced

    def run(self, config: Config, cluster: Cluster, replay_lsn: int | None, copy: bool = True) -> None:
        """One cycle on a running replica that follows the leader of this cluster; without
        `copy` (a DCS outage) missing logical slots are not copied from the primary."""
        leader = cluster.leader_member
        if not config.postgresql.use_slots or leader is None or leader.name == config.name or self._executor.busy:
            return  # (in a standby cluster wanted_here holds physical slots only: nothing is copied)
        members, expected = rules.replica_member_slots(cluster, config.name, nofailover=config.nofailover,
                                                        member_slots_ttl=config.dynamic.member_slots_ttl)
        permanent = wanted_here(config, cluster)
        wanted = {**{n: s for n, s in permanent.items() if n not in members},
                  **{n: rules.SlotSpec(n, "physical") for n in members}}
        positions = {**rules.status_slots(cluster.status), **members}
        try:
            local = to_local(self._pg.local_slots())
        except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
            logger.error("could not read replication slots: %s", exc)
            return
        plan = rules.replica_plan(wanted, local, positions, replay_lsn or 0, config.dynamic.ignore_slots,
                                  cluster.paused, expected)
        for name in plan.drop:
            logger.info("dropping replication slot %s on the replica: unknown, changed or holding an xmin", name)
            if self._pg.drop_slot(name):
                self.pending.pop(name, None)
        for name in plan.create_physical:
            self._pg.create_physical_slot(name)
        for name, lsn in sorted(plan.advance_physical.items()):
            if self._pg.advance_physical_slot(name, lsn) and name not in self._announced:
                self._announced.add(name)
                logger.info("replication slot %s on this replica: advanced with the cluster from now on, "
                            "so it pins no WAL for nothing", name)
        recopy = self.advancer.schedule(plan.advance)
        if copy and any(s.logical for s in wanted.values()) and leader.conn_url:
            self._check_ready(config, cluster, leader.conn_url, local)
            copy = sorted(set(plan.copy) | recopy)
            if copy:
                self._copy(config, cluster, leader.conn_url, copy, wanted)

    def promoted(self) -> None:
        """Patroni's on_promote: stop advancing; name the copies that may be unsafe."""
        self.advancer.clear()
        if self.pending:
            logger.warning("logical replication slots that might be unsafe to use after promote: %s",
                           ", ".join(sorted(self.pending)))
            self.pending.clear()

    def _copy(self, config: Config, cluster: Cluster, leader_url: str, names: list[str],
              wanted: Mapping[str, rules.SlotSpec]) -> None:
        try:
            states = self._pg.primary_slot_states(self._pg.leader_admin_conninfo(leader_url), names)
        except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
            logger.error("could not read logical slots %s on the primary: %s", ", ".join(names), exc)
            return
        files: dict[str, bytes] = {}
        for name, st in sorted(states.items()):
            spec = wanted.get(name)
            slot = rules.LocalSlot(name, str(st["type"]), st.get("database"), st.get("plugin"))
            if spec is None or not rules.matches(spec, slot):
                logger.warning("not copying logical slot %s: the primary's (%s/%s) does not match the "
                               "configuration", name, slot.database, slot.plugin)
                continue
            files[name] = st["data"]
        if files and self._executor.copy_logical_slots(cluster, files):
            self.advancer.clear()
            self.pending.update({n: None for n in files})
            logger.info("copying logical slots %s from the primary", ", ".join(sorted(files)))

    def _check_ready(self, config: Config, cluster: Cluster, leader_url: str,
                     local: Mapping[str, rules.LocalSlot]) -> None:
        """Patroni's check_logical_slots_readiness."""
        todo = [n for n in self.pending if n in local]
        if not todo:
            return
        mine = rules.slot_name_on_primary(cluster, config.name, config.tags)
        if mine is None:
            return
        try:
            xmins = self._pg.primary_catalog_xmins(self._pg.leader_admin_conninfo(leader_url),
                                                   [n for n in todo if self.pending[n] is None] + [mine])
        except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
            logger.error("could not check the physical slot %s on the primary: %s", mine, exc)
            return
        if mine not in xmins:
            logger.warning("physical slot %s does not exist on the primary", mine)
            return
        physical = xmins.pop(mine)
        if physical is None:
            self._check_feedback()
            return
        for name, xmin in xmins.items():
            if self.pending.get(name) is None and xmin is not None:
                self.pending[name] = xmin
        for name in todo:
            primary_xmin = self.pending.get(name)
            if primary_xmin is not None and rules.copy_is_safe(primary_xmin, physical, local[name].catalog_xmin):
                del self.pending[name]
                logger.info("logical slot %s is safe to be used after a failover", name)

    def _check_feedback(self) -> None:
        try:
            on = self._pg.query("SELECT pg_catalog.current_setting('hot_standby_feedback')::boolean")[0][0]
        except Exception as exc:  # noqa: BLE001
            logger.error("could not check the hot_standby_feedback setting: %s", exc)
            return
        if not on:
            logger.error('logical slot failover requires "hot_standby_feedback": check postgresql.auto.conf')
