# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication slots: the members' physical slots on the primary, the permanent slots, and
the copies of permanent logical slots a replica keeps (read, create, advance, drop, copy)."""
from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping

import psycopg2

from .lsn import format_lsn
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


def sync_replication_slots(db: Db, names: set[str], in_recovery_ok: bool = False,
                           keep: frozenset[str] = frozenset()) -> None:
    """Create the missing physical slots in `names`, drop inactive physical slots not in it
    (nor in `keep`: the slots ignore_slots matches).

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
        if name in wanted or name in keep:
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


# -- permanent slots: the full view, and what a replica needs to keep copies ----------------
SLOTS_QUERY = (
    "SELECT s.slot_name, s.slot_type, d.datname, s.plugin, s.active, "
    "COALESCE(pg_catalog.pg_wal_lsn_diff(CASE WHEN s.slot_type = 'logical' THEN s.confirmed_flush_lsn "
    "ELSE s.restart_lsn END, '0/0')::bigint, 0), "
    "s.xmin::text::bigint, s.catalog_xmin::text::bigint, s.wal_status "
    "FROM pg_catalog.pg_replication_slots s LEFT JOIN pg_catalog.pg_database d ON d.oid = s.datoid "
    "WHERE NOT s.temporary")
SLOT_FIELDS = ("name", "type", "database", "plugin", "active", "lsn", "xmin", "catalog_xmin", "wal_status")


def local_slots(db: Db) -> dict[str, dict[str, object]]:
    """Every non-temporary slot here: {name: {type, database, plugin, active, lsn (confirmed
    flush of a logical slot, restart_lsn of a physical one), xmin, catalog_xmin, wal_status}}.
    Raises psycopg2.Error."""
    return {row[0]: dict(zip(SLOT_FIELDS, row, strict=True)) for row in db.query(SLOTS_QUERY)}


def drop_slot(db: Db, name: str) -> bool:
    """Drop the slot if it is inactive (Patroni's query); True when it was dropped."""
    try:
        rows = db.query("WITH slots AS (SELECT slot_name, active FROM pg_catalog.pg_replication_slots "
                        "WHERE slot_name = %s), dropped AS (SELECT pg_catalog.pg_drop_replication_slot(slot_name), "
                        "true AS dropped FROM slots WHERE NOT active) "
                        "SELECT active, COALESCE(dropped, false) FROM slots FULL OUTER JOIN dropped ON true", (name,))
    except Exception as exc:  # noqa: BLE001 - logged, retried next cycle
        logger.error("could not drop replication slot %s: %s", name, exc)
        return False
    active, dropped = rows[0] if rows else (False, False)
    if dropped:
        logger.info("dropped replication slot %s", name)
    elif active:
        logger.warning("not dropping replication slot %s: it is active", name)
    return bool(dropped)


def create_physical_slot(db: Db, name: str) -> None:
    try:
        db.query("SELECT pg_catalog.pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
                 "(SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = %s)", (name, name))
        logger.info("created physical replication slot %s", name)
    except Exception as exc:  # noqa: BLE001
        logger.error("could not create physical replication slot %s: %s", name, exc)


def advance_physical_slot(db: Db, name: str, lsn: int) -> bool:
    """pg_replication_slot_advance (on a replica PostgreSQL stops at the replayed position);
    errors are logged (the next slot is still advanced). True when it was advanced."""
    try:
        db.query("SELECT pg_catalog.pg_replication_slot_advance(%s, %s)", (name, format_lsn(lsn)))
        return True
    except Exception as exc:  # noqa: BLE001
        logger.error("could not advance replication slot %s to %s: %s", name, format_lsn(lsn), exc)
        return False


COPY_GONE = ("58P01", "55000")  # WAL file removed, slot invalidated: copy it again (Patroni)


def advance_logical_slots(connect_kwargs: Mapping[str, object], database: str,
                          slots: Mapping[str, int]) -> list[str]:
    """pg_replication_slot_advance each slot of one database to its lsn, no statement
    timeout (decoding a long stretch of WAL takes its time). Returns the slots to copy
    again: their WAL is gone or they were invalidated."""
    recopy: list[str] = []
    conn = psycopg2.connect(**{**connect_kwargs, "dbname": database, "options": "-c statement_timeout=0"})
    try:
        conn.autocommit = True
        for name, lsn in sorted(slots.items()):
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_catalog.pg_replication_slot_advance(%s, %s)", (name, format_lsn(lsn)))
            except psycopg2.Error as exc:
                logger.error("could not advance logical replication slot %s: %s", name, exc)
                if exc.pgcode in COPY_GONE:
                    recopy.append(name)
    finally:
        conn.close()
    return recopy


def primary_slot_states(leader_kwargs: Mapping[str, object], names: list[str]) -> dict[str, dict[str, object]]:
    """From the primary (a superuser or the rewind user: pg_read_binary_file), the logical
    slots `names` with their on-disk state file, as Patroni's copy_logical_slots reads them:
    {name: {type, database, plugin, catalog_xmin, lsn, data}}. Raises psycopg2.Error."""
    conn = psycopg2.connect(**leader_kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT slot_name, slot_type, datname, plugin, catalog_xmin::text::bigint, "
                        "pg_catalog.pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, "
                        "pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name || '/state') "
                        "FROM pg_catalog.pg_get_replication_slots() JOIN pg_catalog.pg_database ON datoid = oid "
                        "WHERE NOT pg_catalog.pg_is_in_recovery() AND slot_name = ANY(%s)", (names,))
            return {r[0]: {"type": r[1], "database": r[2], "plugin": r[3], "catalog_xmin": r[4],
                           "lsn": r[5], "data": bytes(r[6])} for r in cur.fetchall()}
    finally:
        conn.close()


def primary_catalog_xmins(leader_kwargs: Mapping[str, object], names: list[str]) -> dict[str, int | None]:
    """catalog_xmin of the slots `names` on the primary (none when it is in recovery)."""
    conn = psycopg2.connect(**leader_kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT slot_name, catalog_xmin::text::bigint FROM pg_catalog.pg_get_replication_slots() "
                        "WHERE NOT pg_catalog.pg_is_in_recovery() AND slot_name = ANY(%s)", (names,))
            return {r[0]: r[1] for r in cur.fetchall()}
    finally:
        conn.close()


def write_slot_files(data_dir: str, states: Mapping[str, bytes]) -> None:
    """Put each slot's state file into pg_replslot/<name>/ while PostgreSQL is stopped
    (written to <name>.tmp, fsynced, renamed: Patroni's copy_logical_slots)."""
    replslot = os.path.join(data_dir, "pg_replslot")
    for name, data in sorted(states.items()):
        final = os.path.join(replslot, name)
        tmp = final + ".tmp"
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.makedirs(tmp, mode=0o700)
        path = os.path.join(tmp, "state")
        with open(path, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(final)
    _fsync_dir(replslot)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
