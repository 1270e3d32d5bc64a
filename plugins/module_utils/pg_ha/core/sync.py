# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Synchronous replication, planned purely: which standbys should be synchronous,
what synchronous_standby_names says, and what the `sync` key may claim.

The invariant (Patroni's): every member the `sync` key names has every commit the
leader acknowledged, so it may be promoted. Hence a standby is added to PostgreSQL's
synchronous_standby_names first and to the key only once PostgreSQL reports it
synchronous; it is removed from the key first and from PostgreSQL afterwards.

"PostgreSQL reports it synchronous" is not enough on its own: pg_stat_replication says
`sync` for a listed standby as soon as it streams, caught up or not, while commits
acknowledged before the change (by the standby it replaces) may not be on it yet. As in
Patroni, a standby newly listed counts as confirmed only once its position (the column
synchronous_commit waits on) reached the primary's flush LSN of the moment the list
changed (the barrier, `ready_standbys`); one already in the sync key stays confirmed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Cluster, SyncState

BLOCK_ALL = ("*",)


@dataclass(frozen=True)
class SyncPlan:
    standby_names: tuple[str, ...]  # for synchronous_standby_names; ("*",) = block every commit
    key_standbys: tuple[str, ...]   # what the sync key should list now
    write_key: bool                 # the key must be (re)written
    message: str | None = None


def sync_key_value(leader: str, standbys: Sequence[str], quorum: int = 0) -> dict[str, Any]:
    """The `sync` key as Patroni writes it (quorum 0 outside quorum commit)."""
    return {"leader": leader, "quorum": quorum, "sync_standby": ",".join(sorted(standbys)) or None}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def standby_names_value(names: Sequence[str], count: int) -> str:
    """The synchronous_standby_names setting for these member names."""
    if not names:
        return ""
    if tuple(names) == BLOCK_ALL:
        return "*"
    listed = ",".join(quote_ident(n) for n in names)
    return f"FIRST {min(count, len(names))} ({listed})"


@dataclass(frozen=True)
class LagLimit:
    """maximum_lag_on_syncnode: a standby further behind than `max_lag` bytes (measured in
    `column`, after synchronous_commit) is not synchronous; compared with the most advanced
    standby, or with `leader_lsn` when there is only one (as Patroni)."""

    max_lag: int = -1
    column: str = "flush_lsn"
    leader_lsn: int = 0


def lsn_column(synchronous_commit: Any) -> str:
    """The pg_stat_replication position a commit waits for under this synchronous_commit."""
    return {"remote_apply": "replay_lsn", "remote_write": "write_lsn"}.get(str(synchronous_commit).lower(),
                                                                          "flush_lsn")


def _within_lag(streaming: dict[str, int], limit: LagLimit) -> dict[str, int]:
    if limit.max_lag <= 0 or not streaming:
        return streaming
    newest = max(streaming.values()) if len(streaming) > 1 else limit.leader_lsn
    return {n: lsn for n, lsn in streaming.items() if newest - lsn <= limit.max_lag}


def candidates(cluster: Cluster, me: str, replication: Sequence[Mapping[str, Any]],
               current: Sequence[str], count: int, limit: LagLimit = LagLimit()) -> tuple[str, ...]:
    """Streaming standbys that may be synchronous: members without `nosync` (nor sync_priority
    <= 0) that lag at most maximum_lag_on_syncnode; as Patroni, the higher sync_priority first,
    then current synchronous ones (no flapping), then the least lagging."""
    streaming: dict[str, int] = {}
    for row in replication:
        name = row.get("application_name")
        if row.get("state") == "streaming" and isinstance(name, str):
            streaming[name] = max(streaming.get(name, 0), int(row.get(limit.column) or 0))
    members = {m.name: m.sync_priority for m in cluster.members if m.name != me and not m.nosync}
    streaming = _within_lag({n: lsn for n, lsn in streaming.items() if n in members}, limit)
    eligible = [m.name for m in cluster.members if m.name in streaming]
    eligible.sort(key=lambda n: (-members[n], n not in current, -streaming[n], n))
    return tuple(eligible[:max(count, 0)])


def ready_standbys(replication: Sequence[Mapping[str, Any]], standby_names: Sequence[str], barrier_lsn: int,
                   column: str, in_key: Iterable[str], ready: Iterable[str]) -> frozenset[str]:
    """The listed standbys that passed the barrier: those in the sync key, those already
    ready (while they stay listed), and those reported `sync` at or past `barrier_lsn`."""
    listed = set(standby_names) - set(BLOCK_ALL)
    result = (set(ready) | set(in_key)) & listed
    for row in replication:
        name = row.get("application_name")
        if name in listed and row.get("sync_state") in ("sync", "quorum") \
                and int(row.get(column) or 0) >= barrier_lsn:
            result.add(str(name))
    return frozenset(result)


def unready_as_potential(replication: Sequence[Mapping[str, Any]], ready: Iterable[str]) -> list[Mapping[str, Any]]:
    """The rows as plan() should see them: a standby that has not passed the barrier is
    only `potential`, whatever PostgreSQL reports."""
    ok = set(ready)
    return [row if row.get("sync_state") not in ("sync", "quorum") or row.get("application_name") in ok
            else {**row, "sync_state": "potential"} for row in replication]


def plan(cluster: Cluster, me: str, replication: Sequence[Mapping[str, Any]], current_names: Sequence[str],
         count: int, strict: bool, limit: LagLimit = LagLimit()) -> SyncPlan:
    """One step of synchronous replication management on the leader."""
    sync: SyncState | None = cluster.sync
    in_key = tuple(sync.sync_standby) if sync is not None and sync.leader == me else ()
    wanted = candidates(cluster, me, replication, [n for n in current_names if n != "*"], count, limit)
    confirmed = {str(r.get("application_name")) for r in replication
                 if r.get("sync_state") in ("sync", "quorum")}
    # keep what stays wanted; add only what PostgreSQL already waits for and confirms
    key = tuple(n for n in in_key if n in wanted) + tuple(
        n for n in wanted if n not in in_key and n in current_names and n in confirmed)
    names = wanted if wanted else (BLOCK_ALL if strict else ())
    write = sync is None or sync.leader != me or set(key) != set(in_key)
    message = None
    if set(key) != set(in_key):
        message = (f"synchronous standbys in the sync key: {', '.join(key) or 'none'} "
                   f"(was {', '.join(in_key) or 'none'})")
    if not wanted and strict:
        message = message or ("synchronous_mode_strict: no synchronous standby available, "
                              "commits wait until one is")
    return SyncPlan(tuple(names), key, write, message)


def parse_standby_names(value: str | None) -> tuple[str, ...]:
    """Member names in a synchronous_standby_names value we wrote (or '*')."""
    if not value:
        return ()
    value = value.strip()
    if value == "*":
        return BLOCK_ALL
    if "(" in value and value.endswith(")"):
        value = value[value.index("(") + 1:-1]
    names = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith('"') and part.endswith('"'):
            part = part[1:-1].replace('""', '"')
        if part:
            names.append(part)
    return tuple(names)
