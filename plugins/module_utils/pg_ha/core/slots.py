# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Permanent replication slots, pure: the dynamic config's `slots` (with Patroni's
shorthand forms), `ignore_slots`, the slots the leader publishes in the `status` key,
and what a replica does with its copies (copy, advance, create, drop).

Behaviour follows Patroni 4.1 (patroni/dcs/__init__.py Cluster.is_physical_slot,
is_logical_slot, _merge_permanent_slots; patroni/postgresql/slots.py
_ensure_logical_slots_replica, _ensure_physical_slots, ignore_replication_slot,
_ready_logical_slots). No I/O here."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Cluster


@dataclass(frozen=True)
class SlotSpec:
    """One permanent slot of the dynamic config."""

    name: str
    type: str  # "physical" | "logical"
    database: str | None = None
    plugin: str | None = None
    cluster_type: str | None = None  # physical only: "primary" | "standby" | None (both)

    @property
    def logical(self) -> bool:
        return self.type == "logical"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.logical:
            out.update(database=self.database, plugin=self.plugin)
        elif self.cluster_type:
            out["cluster_type"] = self.cluster_type
        return out


@dataclass(frozen=True)
class LocalSlot:
    """A slot as pg_replication_slots shows it (lsn: confirmed_flush_lsn of a logical
    slot, restart_lsn of a physical one; 0 when NULL)."""

    name: str
    type: str
    database: str | None = None
    plugin: str | None = None
    active: bool = False
    lsn: int = 0
    xmin: int | None = None
    catalog_xmin: int | None = None
    wal_status: str | None = None


def specs_from(slots: Mapping[str, Mapping[str, Any]]) -> dict[str, SlotSpec]:
    """SlotSpecs from DynamicSettings.slots (normalised by config/slots.py)."""
    return {name: SlotSpec(name, str(v.get("type", "physical")), v.get("database"), v.get("plugin"),
                           v.get("cluster_type")) for name, v in slots.items()}


def ignored(matchers: Iterable[Mapping[str, str]], slot: LocalSlot) -> bool:
    """Patroni's ignore_replication_slot: a matcher matches when every attribute it
    names equals the slot's."""
    attrs = {"name": slot.name, "database": slot.database, "plugin": slot.plugin, "type": slot.type}
    return any(all(not v or attrs.get(k) == v for k, v in m.items()) for m in matchers)


def matches(spec: SlotSpec, slot: LocalSlot) -> bool:
    """Patroni's compare_slots: same type; a logical one also the same database and plugin."""
    return spec.type == slot.type and (not spec.logical or
                                        (spec.database == slot.database and spec.plugin == slot.plugin))


def wanted_permanent(specs: Mapping[str, SlotSpec], me_slot: str, *, standby_cluster: bool,
                     nofailover: bool, nostream: bool = False) -> dict[str, SlotSpec]:
    """The permanent slots this node keeps (Patroni's _get_permanent_slots): none with
    nofailover; physical only in a standby cluster or without streaming; never a physical
    slot named after this node; cluster_type limits a physical slot to one kind of cluster."""
    if nofailover:
        return {}
    out: dict[str, SlotSpec] = {}
    for name, spec in specs.items():
        if spec.logical:
            if not standby_cluster and not nostream:
                out[name] = spec
            continue
        if name == me_slot or spec.cluster_type == ("primary" if standby_cluster else "standby"):
            continue
        out[name] = spec
    return out


_INVALID = re.compile(r"[^a-z0-9_]")


def slot_name(member: str) -> str:
    """A member's slot name (the rule of postgresql/slots.slot_name_for, Patroni's
    slot_name_from_member_name)."""
    return _INVALID.sub("_", member.lower())[:63]


def slot_name_on_primary(cluster: Cluster, me: str, tags: Mapping[str, Any]) -> str | None:
    """The physical slot on the primary our WAL comes through (Patroni's
    get_slot_name_on_primary): ours, or along replicatefrom that of the first member of
    the chain; None without streaming (nostream) or in a replicatefrom loop."""
    seen: set[str] = set()
    name = me
    while True:
        seen.add(name)
        if tags.get("nostream"):
            return None
        upstream = tags.get("replicatefrom")
        member = cluster.get_member(upstream) if isinstance(upstream, str) and upstream != name else None
        if member is None:
            return slot_name(name)
        if member.name in seen:
            return None
        name, tags = member.name, member.tags


def leader_member_names(cluster: Cluster, me: str, *, member_slots_ttl: int) -> set[str]:
    """The members the leader keeps a physical slot for (Patroni 4.1 _get_members_slots on a
    primary, PostgreSQL >= 11): every other member that streams (not nostream) while
    member_slots_ttl > 0, so that a cascading member finds its slot here after a failover of
    its upstream; with member_slots_ttl 0 only those that replicate from the leader (no
    replicatefrom, replicatefrom naming the leader or a member that is not there)."""
    members = [m for m in cluster.members if m.name != me and not m.tags.get("nostream")]
    if member_slots_ttl > 0:
        return {m.name for m in members}
    return {m.name for m in members
            if m.tags.get("replicatefrom") in (None, "", me) or cluster.get_member(m.tags["replicatefrom"]) is None}


def replica_member_slots(cluster: Cluster, me: str, *, nofailover: bool,
                         member_slots_ttl: int) -> tuple[dict[str, int], frozenset[str]]:
    """The physical slots a replica keeps for the other members, with the position to
    advance each to, and the ones expected to be active (Patroni 4.1 _get_members_slots
    on PostgreSQL >= 11). With member_slots_ttl > 0 every member (not nostream) has a slot
    on every node, so that a new leader has them at once; a nofailover node only those of
    members that replicate from it. The slots named in the status key's retain_slots are
    kept too (absent members, for member_slots_ttl). Positions come from the status key,
    or from the member itself when it cascades (the leader's copy of its slot is idle)."""
    published = status_slots(cluster.status)
    leader = cluster.leader.name if cluster.leader else None
    members = [m for m in cluster.members if m.name != me and not m.tags.get("nostream")]
    expected = frozenset(slot_name(m.name) for m in members
                         if m.tags.get("replicatefrom") == me and m.name != leader)
    if member_slots_ttl > 0:
        members = [m for m in members if not nofailover or m.tags.get("replicatefrom") == me]
    else:
        members = [m for m in members if slot_name(m.name) in expected]
    out: dict[str, int] = {}
    for m in members:
        name = slot_name(m.name)
        out[name] = max(m.lsn or 0, published.get(name, 0)) if m.tags.get("replicatefrom") \
            else published.get(name, 0)
    retain = (cluster.status or {}).get("retain_slots")
    if member_slots_ttl > 0 and not nofailover and isinstance(retain, list):
        out.update({n: published.get(n, 0) for n in retain
                    if isinstance(n, str) and n not in out and n != slot_name(me)})
    return out, expected


def published_slots(local: Mapping[str, LocalSlot], specs: Mapping[str, SlotSpec],
                    member_slots: Iterable[str], me_slot: str, wal_lsn: int | None) -> dict[str, int]:
    """The `slots` of the status key: {name: lsn} of the permanent slots that exist here
    as configured (confirmed_flush_lsn / restart_lsn) and of the member slots (restart_lsn),
    plus our own slot name at our WAL position (Patroni's Postgresql.slots(): a replica
    keeping a physical slot for us advances it to there)."""
    out: dict[str, int] = {}
    for name in sorted(set(specs) | set(member_slots)):
        slot = local.get(name)
        if slot is None or not slot.lsn:
            continue
        spec = specs.get(name)
        if spec is not None and not matches(spec, slot):
            continue
        if spec is None and slot.type != "physical":
            continue
        out[name] = slot.lsn
    if wal_lsn:
        out[me_slot] = wal_lsn
    return out


def status_slots(status: Mapping[str, Any] | None) -> dict[str, int]:
    """{name: lsn} from the status key; garbage entries are left out."""
    raw = (status or {}).get("slots")
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items()
            if isinstance(v, int) and not isinstance(v, bool) and v > 0}


def status_value(optime: int, slots: Mapping[str, int], retain_slots: Iterable[str]) -> dict[str, Any]:
    """The status key as Patroni writes it: absent fields rather than nulls."""
    value: dict[str, Any] = {"optime": optime}
    if slots:
        value["slots"] = dict(slots)
    retain = sorted(set(retain_slots))
    if retain:
        value["retain_slots"] = retain
    return value


@dataclass(frozen=True)
class PrimaryPlan:
    """What the primary does to its logical slots this cycle (physical ones, member slots
    included, are kept by postgresql/slots.sync_replication_slots)."""

    create_logical: tuple[SlotSpec, ...] = ()
    drop: tuple[str, ...] = ()  # unknown, mismatching or wal_status=lost logical slots


def primary_plan(wanted: Mapping[str, SlotSpec], local: Mapping[str, LocalSlot],
                 matchers: Iterable[Mapping[str, str]], paused: bool) -> PrimaryPlan:
    """Patroni's _drop_incorrect_slots + _ensure_logical_slots_primary: a logical slot
    that is not permanent is dropped unless ignore_slots matches it or the cluster is
    paused; a permanent one whose database or plugin changed, or whose WAL is lost, is
    dropped and created again."""
    matchers = tuple(matchers)
    drop: list[str] = []
    for name, slot in sorted(local.items()):
        if slot.type != "logical":
            continue
        spec = wanted.get(name)
        if spec is not None and matches(spec, slot) and slot.wal_status != "lost":
            continue
        if spec is None and (paused or ignored(matchers, slot)):
            continue
        drop.append(name)
    present = {n for n in local if n not in set(drop)}
    return PrimaryPlan(create_logical=tuple(s for n, s in sorted(wanted.items()) if s.logical and n not in present),
                       drop=tuple(drop))


@dataclass(frozen=True)
class ReplicaPlan:
    """What a replica does to its copies of the permanent slots this cycle."""

    copy: tuple[str, ...] = ()  # logical slots to copy from the primary (PostgreSQL stopped)
    advance: dict[str, dict[str, int]] = field(default_factory=dict)  # {database: {slot: lsn}}
    create_physical: tuple[str, ...] = ()
    advance_physical: dict[str, int] = field(default_factory=dict)
    drop: tuple[str, ...] = ()


def _cascading_slots(wanted: Mapping[str, SlotSpec], cluster: Cluster, me: str, local: Mapping[str, LocalSlot],
                     member_slots: Iterable[str]) -> dict[str, tuple[LocalSlot, int]]:
    """The physical slots here of members that cascade from another member (their member
    slot, or a permanent physical slot named after them): not expected to be active here.
    name -> (the slot, the member's position)."""
    cascading = {slot_name(m.name): m.lsn or 0 for m in cluster.members
                 if m.tags.get("replicatefrom") and m.name != me}
    physical = {n for n, spec in wanted.items() if not spec.logical} | set(member_slots)
    return {n: (slot, cascading[n]) for n in sorted(physical)
            if n in cascading and (slot := local.get(n)) is not None and slot.type == "physical"}


def leader_physical_advance(wanted: Mapping[str, SlotSpec], cluster: Cluster, me: str,
                            local: Mapping[str, LocalSlot], member_slots: Iterable[str] = ()) -> dict[str, int]:
    """On the primary (Patroni's _ensure_physical_slots): while the slot of a cascading
    member is idle without xmin it follows that member's position."""
    return {n: lsn for n, (slot, lsn) in _cascading_slots(wanted, cluster, me, local, member_slots).items()
            if not slot.active and not slot.xmin and slot.lsn and lsn > slot.lsn}


def leader_stale_xmin_slots(wanted: Mapping[str, SlotSpec], cluster: Cluster, me: str,
                            local: Mapping[str, LocalSlot], member_slots: Iterable[str] = ()) -> list[str]:
    """Idle slots of cascading members that hold an xmin (the member streamed here with
    hot_standby_feedback before it moved to its upstream): nothing will move that xmin, which
    holds back vacuum, and the slot cannot follow the member. Patroni drops them; they are
    created again at once, reserving WAL from now."""
    return [n for n, (slot, _) in _cascading_slots(wanted, cluster, me, local, member_slots).items()
            if not slot.active and slot.xmin]


def replica_plan(wanted: Mapping[str, SlotSpec], local: Mapping[str, LocalSlot], published: Mapping[str, int],
                 replay_lsn: int, matchers: Iterable[Mapping[str, str]], paused: bool,
                 expected_active: frozenset[str] = frozenset()) -> ReplicaPlan:
    """Patroni's sync_replication_slots on a replica (PostgreSQL >= 11):

    - a logical slot missing here is copied from the primary, but only once the primary
      published its position (a slot without feedback in the DCS is not copied);
    - a logical slot here is advanced to the published position, never past replay_lsn;
    - a physical slot (permanent or a member's) is created here and, while not expected
      to be active and without xmin, advanced to the published position; one that is not
      expected to be active but holds an xmin (old hot_standby_feedback) is dropped, so
      it does not hold back the xmin horizon, and created again;
    - such an idle physical slot with no published position (the leader has no such slot,
      or never reported it: e.g. slots Patroni left in a data directory taken over) follows
      replay_lsn instead, so that no slot pins WAL on a replica for nothing (beyond Patroni,
      which leaves it where it is; PostgreSQL never moves a slot past replay);
    - slots that are not permanent and not ignored are dropped (inactive ones only, by the
      caller); so is a copy whose database/plugin no longer matches or whose WAL is lost.
    """
    matchers = tuple(matchers)
    drop: list[str] = []
    for name, slot in sorted(local.items()):
        spec = wanted.get(name)
        if spec is not None and matches(spec, slot) and slot.wal_status != "lost" and \
                (spec.logical or name in expected_active or (not slot.xmin and slot.lsn)):
            continue  # (an idle physical slot without restart_lsn was made elsewhere: made again)
        if spec is None and (paused or ignored(matchers, slot)):
            continue
        drop.append(name)
    gone = set(drop)
    copy: list[str] = []
    advance: dict[str, dict[str, int]] = {}
    create_physical: list[str] = []
    advance_physical: dict[str, int] = {}
    for name, spec in sorted(wanted.items()):
        lsn = published.get(name, 0)
        slot = local.get(name) if name not in gone else None
        if spec.logical:
            if slot is None:
                if lsn:
                    copy.append(name)
                continue
            target = min(lsn, replay_lsn)
            if lsn and slot.lsn < target:
                advance.setdefault(str(spec.database), {})[name] = target
            continue
        if slot is None:
            create_physical.append(name)
        elif name not in expected_active and not slot.active and slot.lsn and (lsn or replay_lsn) > slot.lsn:
            advance_physical[name] = lsn or replay_lsn
    return ReplicaPlan(tuple(copy), advance, tuple(create_physical), advance_physical, tuple(drop))


def copy_is_safe(primary_logical_catalog_xmin: int, primary_physical_catalog_xmin: int | None,
                 standby_catalog_xmin: int | None) -> bool:
    """Patroni's _ready_logical_slots: a copied logical slot is safe to use after a
    promotion once the catalog_xmin of our physical slot on the primary (hot_standby_feedback)
    overtook the primary's logical slot's, and does not exceed our copy's."""
    return (primary_physical_catalog_xmin is not None and standby_catalog_xmin is not None
            and primary_logical_catalog_xmin <= primary_physical_catalog_xmin <= standby_catalog_xmin)


def needs_hot_standby_feedback(specs: Mapping[str, SlotSpec], *, use_slots: bool, standby_cluster: bool,
                               nofailover: bool) -> bool:
    """Patroni enforces hot_standby_feedback=on on a node that keeps permanent logical
    slots (should_enforce_hot_standby_feedback): they need the primary to keep the catalog
    rows their decoding reads."""
    return use_slots and not standby_cluster and not nofailover and any(s.logical for s in specs.values())
