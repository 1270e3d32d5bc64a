# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical replication slots: on the primary one per member that replicates from it; on a
replica the members' slots are kept at the replayed position, never pinning WAL."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

import psycopg2

from .query import Db

logger = logging.getLogger(__name__)

_INVALID = re.compile(r"[^a-z0-9_]")
MAX_SLOT_NAME = 63


def slot_name_for(member_name: str) -> str:
    """The slot a member streams through: lowercase, other than [a-z0-9_] -> '_', 63 chars."""
    return _INVALID.sub("_", member_name.lower())[:MAX_SLOT_NAME]


def physical_slots(db: Db) -> dict[str, bool]:
    """{slot_name: active} of the physical slots on the local server."""
    rows = db.query("SELECT slot_name, active FROM pg_catalog.pg_replication_slots "
                    "WHERE slot_type = 'physical'")
    return {name: bool(active) for name, active in rows}


def sync_replication_slots(db: Db, names: set[str], in_recovery_ok: bool = False) -> None:
    """Create the missing physical slots in `names`, drop inactive physical slots not in it.

    Only acts on a primary (or, with in_recovery_ok, on a standby leader, whose replicas
    stream from it); slot names are normalised with slot_name_for. Errors are logged (the
    next HA cycle tries again), never raised.
    """
    wanted = {slot_name_for(n) for n in names}
    try:
        if not in_recovery_ok and db.query("SELECT pg_catalog.pg_is_in_recovery()")[0][0]:
            logger.debug("not syncing replication slots: in recovery")
            return
        existing = physical_slots(db)
    except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
        logger.error("could not read replication slots: %s", exc)
        return
    for name in sorted(wanted - existing.keys()):
        try:
            db.query("SELECT pg_catalog.pg_create_physical_replication_slot(%s, true)", (name,))
            logger.info("created physical replication slot %s", name)
        except Exception as exc:  # noqa: BLE001
            logger.error("could not create replication slot %s: %s", name, exc)
    for name, active in sorted(existing.items()):
        if name in wanted:
            continue
        if active:
            logger.debug("keeping active replication slot %s", name)
            continue
        try:
            db.query("SELECT pg_catalog.pg_drop_replication_slot(%s)", (name,))
            logger.info("dropped physical replication slot %s", name)
        except Exception as exc:  # noqa: BLE001
            logger.error("could not drop replication slot %s: %s", name, exc)


def ensure_logical_slots(db: Db, wanted: Mapping[str, tuple[str, str]]) -> None:
    """Create the permanent logical slots {name: (database, plugin)} missing on a primary.

    Logical slots are never dropped here: a slot a consumer still needs is not ours to
    lose. Errors are logged and retried next cycle."""
    if not wanted:
        return
    try:
        if db.query("SELECT pg_catalog.pg_is_in_recovery()")[0][0]:
            return
        existing = {r[0] for r in db.query("SELECT slot_name FROM pg_catalog.pg_replication_slots "
                                           "WHERE slot_type = 'logical'")}
    except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
        logger.error("could not read replication slots: %s", exc)
        return
    for name, (database, plugin) in sorted(wanted.items()):
        if name in existing:
            continue
        try:  # a logical slot belongs to a database: create it there
            conn = psycopg2.connect(**{**db.connect_kwargs(), "dbname": database})
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_catalog.pg_create_logical_replication_slot(%s, %s)", (name, plugin))
            finally:
                conn.close()
            logger.info("created logical replication slot %s (database %s, plugin %s)", name, database, plugin)
        except Exception as exc:  # noqa: BLE001
            logger.error("could not create logical replication slot %s: %s", name, exc)


def lagging_replica_slots(slots: Iterable[tuple[str, bool, int | None]], replay_lsn: int,
                          managed: set[str]) -> list[str]:
    """Of a replica's physical slots (name, active, restart_lsn), the inactive ones named in
    `managed` whose restart_lsn is behind `replay_lsn`: nobody streams through them, so the
    WAL they pin is retained for nothing."""
    return sorted(name for name, active, restart in slots
                  if name in managed and not active and restart is not None and restart < replay_lsn)


def advance_replica_slots(db: Db, managed: set[str]) -> list[str]:
    """On a replica, move each lagging slot of `managed` (see lagging_replica_slots) to the
    replayed position; the names advanced. The slots stay (after a promotion the members
    can stream through them at once), they only stop pinning WAL. Slots not in `managed`
    (an operator's own, a cascading replica's) are left alone. Errors are logged."""
    try:
        rows = db.query("SELECT pg_catalog.pg_is_in_recovery(), "
                        "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint")
        in_recovery, replay = rows[0]
        if not in_recovery or replay is None:
            return []
        slots = db.query("SELECT slot_name, active, pg_catalog.pg_wal_lsn_diff(restart_lsn, '0/0')::bigint "
                         "FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'")
    except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
        logger.error("could not read replication slots: %s", exc)
        return []
    advanced = []
    for name in lagging_replica_slots([(str(n), bool(a), None if r is None else int(r)) for n, a, r in slots],
                                      int(replay), {slot_name_for(n) for n in managed}):
        try:
            db.query("SELECT pg_catalog.pg_replication_slot_advance(%s, pg_catalog.pg_last_wal_replay_lsn())",
                     (name,))
            advanced.append(name)
        except Exception as exc:  # noqa: BLE001
            logger.error("could not advance replication slot %s: %s", name, exc)
    return advanced
