# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rejoining a former primary: divergence check against the leader's history, pg_rewind."""
from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg2

from . import config
from .ctl import CLEAN_STATES, run
from .lsn import format_lsn, maybe_lsn, parse_history, timeline_from_walfile

if TYPE_CHECKING:
    from .instance import Instance as Postgresql

logger = logging.getLogger(__name__)

SINGLE_USER_TIMEOUT = 3600
REWIND_TIMEOUT = 3600
CHECKPOINT_WAIT = 30
PRESERVED_FILES = ("pg_hba.conf", "pg_ident.conf", config.BASE_CONF)
_AT_LSN = re.compile(r"\bat ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})")
_RECORD_LSN = re.compile(r"\blsn: ([0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8})")


def timeline_lsn_from_controldata(data: Mapping[str, str]) -> tuple[int, int, bool] | None:
    """(timeline, lsn, was_replica) of a cleanly stopped cluster, None if it is not one.

    A replica stopped in recovery reports its minimum recovery point; a stopped primary
    the location of its last (shutdown) checkpoint.
    """
    state = data.get("Database cluster state")
    try:
        if state in ("shut down in recovery", "in archive recovery"):
            lsn = maybe_lsn(data.get("Minimum recovery ending location"))
            tli = int(data.get("Min recovery ending loc's timeline", "0"))
            if lsn and tli:
                return tli, lsn, True
            state = "shut down"  # it was a primary when it stopped
        if state == "shut down":
            lsn = maybe_lsn(data.get("Latest checkpoint location"))
            tli = int(data.get("Latest checkpoint's TimeLineID", "0"))
            if lsn is not None and tli:
                return tli, lsn, False
    except ValueError:
        pass
    return None


def parse_waldump_end(stdout: str, stderr: str) -> int | None:
    """End of the first record pg_waldump printed: where the second one starts, or where
    reading the next record failed ("invalid record length at X/Y")."""
    records = _RECORD_LSN.findall(stdout)
    if len(records) >= 2:
        return maybe_lsn(records[1])
    for line in stderr.splitlines():
        found = _AT_LSN.findall(line)
        if len(found) >= 2:
            return maybe_lsn(found[1])
    return None


def checkpoint_end(pg: Postgresql, timeline: int, lsn: int) -> int | None:
    """Where the checkpoint record at `lsn` ends, read from our own WAL with pg_waldump."""
    argv = [pg.ctl.binary("pg_waldump"), "-p", os.path.join(pg.settings.data_dir, "pg_wal"),
            "-t", str(timeline), "-s", format_lsn(lsn), "-n", "2"]
    res = run(argv, 60, pg.ctl.env(c_locale=True))
    end = parse_waldump_end(res.stdout, res.stderr)
    if end is None:
        logger.warning("could not find the end of the checkpoint record at %s: %s", format_lsn(lsn),
                       (res.stderr or res.stdout).strip()[:500])
    return end


def leader_timeline_history(conninfo: Mapping[str, Any]) -> tuple[int, list[tuple[int, int]]]:
    """(current timeline, [(parent_tli, switch_lsn), ...]) of the leader, over a replication
    connection (IDENTIFY_SYSTEM, TIMELINE_HISTORY). Raises psycopg2.Error."""
    info = {k: v for k, v in conninfo.items() if k != "replication"}
    from psycopg2.extras import PhysicalReplicationConnection  # only here: keeps the daemon's RSS down
    conn = psycopg2.connect(config.conninfo_to_str(info), connection_factory=PhysicalReplicationConnection)
    try:
        with conn.cursor() as cur:
            cur.execute("IDENTIFY_SYSTEM")
            timeline = int(cur.fetchone()[1])
            history: list[tuple[int, int]] = []
            if timeline > 1:
                cur.execute(f"TIMELINE_HISTORY {timeline}")
                content = cur.fetchone()[1]
                if not isinstance(content, str):
                    content = bytes(content).decode("utf-8")
                history = parse_history(content)
            return timeline, history
    finally:
        conn.close()


def local_position(pg: Postgresql) -> tuple[int, int, bool] | None:
    """(timeline, lsn, in_recovery) of the local cluster, running or cleanly stopped."""
    if pg.is_running():
        st = pg.state()
        if not st.accepting or st.timeline is None or st.wal_lsn is None:
            return None
        lsn = st.replay_lsn if st.in_recovery and st.replay_lsn is not None else st.wal_lsn
        return st.timeline, lsn, bool(st.in_recovery)
    return timeline_lsn_from_controldata(pg.controldata())


def decide_diverged(local_tli: int, local_lsn: int, in_recovery: bool, leader_tli: int,
                    history: list[tuple[int, int]], ckpt_end: Any = None) -> bool:
    """The rewind decision (pure). `ckpt_end` is a callable giving the end of our last
    checkpoint record, used for a stopped former primary sitting right at the fork."""
    if local_tli > leader_tli:
        return True
    if local_tli == leader_tli:
        return False
    for parent_tli, switchpoint in history:
        if parent_tli == local_tli:
            if in_recovery:
                return local_lsn > switchpoint
            if local_lsn >= switchpoint:
                return True
            end = ckpt_end() if callable(ckpt_end) else ckpt_end
            return end != switchpoint
        if parent_tli > local_tli:
            return True
    return True


def check_diverged(pg: Postgresql, conninfo: Mapping[str, Any]) -> bool | None:
    """True if our WAL went past the leader's fork point (rewind needed), False if we can
    follow it as we are, None if it cannot be told (unclean shutdown, leader unreachable)."""
    local = local_position(pg)
    if local is None:
        logger.warning("cannot tell the local timeline and lsn (is the cluster shut down cleanly?)")
        return None
    local_tli, local_lsn, in_recovery = local
    logger.info("Local timeline=%s lsn=%s", local_tli, format_lsn(local_lsn))
    try:
        leader_tli, history = leader_timeline_history(conninfo)
    except Exception as exc:  # noqa: BLE001 - undetermined
        logger.error("could not read the timeline history of %s:%s: %s", conninfo.get("host"),
                     conninfo.get("port"), str(exc).strip())
        return None
    logger.info("primary_timeline=%s", leader_tli)
    if local_tli < leader_tli:
        logger.info("primary: history=%s", [(t, format_lsn(lsn)) for t, lsn in history])
    diverged = decide_diverged(local_tli, local_lsn, in_recovery, leader_tli, history,
                               lambda: checkpoint_end(pg, local_tli, local_lsn))
    logger.info("%s", "local WAL diverged from the leader: rewind needed" if diverged
                else "local WAL did not diverge from the leader: can follow it")
    return diverged


def ensure_clean_shutdown(pg: Postgresql) -> bool:
    """Bring a crashed, stopped cluster to 'shut down' with postgres --single, as Patroni does."""
    if pg.is_running():
        logger.error("ensure_clean_shutdown: PostgreSQL is running")
        return False
    state = pg.controldata().get("Database cluster state")
    if state is None:
        logger.error("ensure_clean_shutdown: no pg_control in %s", pg.settings.data_dir)
        return False
    if state in CLEAN_STATES:
        return True
    logger.info("cluster state is %r: running postgres --single for crash recovery", state)
    for name in (config.STANDBY_SIGNAL, config.RECOVERY_SIGNAL):
        config.set_signal(pg.settings.data_dir, name, False)
    res = pg.ctl.single_user({"archive_mode": "off"}, SINGLE_USER_TIMEOUT)
    state = pg.controldata().get("Database cluster state")
    if state in CLEAN_STATES:
        return True
    logger.error("single-user crash recovery failed (rc=%s, state %r): %s", res.rc, state,
                 (res.stderr or res.stdout).strip()[-2000:])
    return False


def _source_checkpointed(src: dict[str, str]) -> bool:
    """Make sure the source's pg_control carries its current timeline (a fresh primary
    may not have finished its first checkpoint yet, and pg_rewind reads pg_control)."""
    deadline = time.monotonic() + CHECKPOINT_WAIT
    conn = psycopg2.connect(config.conninfo_to_str(src))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            asked = False
            while True:
                cur.execute("SELECT pg_catalog.pg_is_in_recovery(), "
                            "(SELECT timeline_id FROM pg_catalog.pg_control_checkpoint())")
                in_recovery, ckpt_tli = cur.fetchone()
                if in_recovery:
                    return True  # a standby source: its control file follows replay
                cur.execute("SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())")
                current = timeline_from_walfile(cur.fetchone()[0])
                if current is None or ckpt_tli >= current:
                    return True
                if not asked:
                    asked = True
                    try:
                        cur.execute("CHECKPOINT")
                        continue
                    except psycopg2.Error as exc:
                        logger.warning("could not run CHECKPOINT on the source: %s", str(exc).strip())
                if time.monotonic() > deadline:
                    logger.error("the source has not checkpointed its timeline %s yet", current)
                    return False
                time.sleep(1)
    finally:
        conn.close()


def _move_log_aside(pg: Postgresql) -> str | None:
    """pg_rewind makes the data dir a copy of the source's, log/ included: keep our
    postmaster log next to the data dir meanwhile (when that is possible)."""
    log = os.path.abspath(pg.ctl.log_path)
    data_dir = os.path.abspath(pg.settings.data_dir)
    if not log.startswith(data_dir + os.sep) or not os.path.exists(log):
        return None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(data_dir), prefix=".pg_ha_log.")
        os.close(fd)
        os.replace(log, tmp)
        return tmp
    except OSError as exc:
        logger.debug("cannot keep the postmaster log across pg_rewind: %s", exc)
        return None


def _restore_log(pg: Postgresql, kept: str | None) -> None:
    if kept is None:
        return
    try:
        os.makedirs(os.path.dirname(pg.ctl.log_path), mode=0o700, exist_ok=True)
        os.replace(kept, pg.ctl.log_path)
    except OSError as exc:
        logger.warning("could not restore the postmaster log from %s: %s", kept, exc)


def rewind(pg: Postgresql, conninfo: Mapping[str, Any]) -> bool:
    """pg_rewind the stopped local cluster from the leader; on success write the replica
    config (standby.signal, primary_conninfo). On failure the caller may remove_data_dir()."""
    s = pg.settings
    if pg.is_running():
        logger.error("cannot rewind: PostgreSQL is running")
        return False
    if not ensure_clean_shutdown(pg):
        return False
    config.write_pgpass(s)
    src = config.rewind_conninfo(s, conninfo)
    try:
        if not _source_checkpointed(src):
            return False
    except psycopg2.Error as exc:
        logger.error("cannot connect to the rewind source: %s", str(exc).strip())
        return False
    saved: dict[str, str] = {}
    for name in PRESERVED_FILES:
        try:
            with open(os.path.join(s.data_dir, name), encoding="utf-8") as fh:
                saved[name] = fh.read()
        except OSError:
            pass
    logger.info("running pg_rewind from %s:%s", src.get("host"), src.get("port"))
    argv = [pg.ctl.binary("pg_rewind"), f"--target-pgdata={s.data_dir}",
            f"--source-server={config.conninfo_to_str(src)}"]
    kept_log = _move_log_aside(pg)
    try:
        res = run(argv, REWIND_TIMEOUT, pg.ctl.env())
    finally:
        _restore_log(pg, kept_log)
    for line in (res.stdout + res.stderr).strip().splitlines():
        logger.info("pg_rewind: %s", line)
    if not res.ok:
        logger.error("pg_rewind failed (rc=%s)", res.rc)
        return False
    for name, text in saved.items():
        config.write_file(os.path.join(s.data_dir, name), text, 0o600)
    slot = pg.slot_name_for(s.name) if s.use_slots else None
    pg.write_config("replica", conninfo, slot)
    logger.info("pg_rewind succeeded")
    _write_wal_past_the_rewind(src)
    return True


def _write_wal_past_the_rewind(src: dict[str, str]) -> None:
    """pg_rewind sets the rewound cluster's minRecoveryPoint to the source's WAL insert
    position, which is the MAXALIGNed end of its last record; replay ends a record at its
    unaligned end, so on an idle source the rewound member stays "not yet accepting
    connections" until the source writes its next record (up to 15 s later, the standby
    snapshot; measured 20.5 s from start to consistent). One commit on the source (an xid,
    which any user may take) ends past that point. Not needed for safety; a failure is logged."""
    try:
        conn = psycopg2.connect(config.conninfo_to_str(src))
    except psycopg2.Error as exc:
        logger.info("could not reach the rewind source again: %s", str(exc).strip())
        return
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_is_in_recovery()")
            if not cur.fetchone()[0]:
                cur.execute("SELECT pg_catalog.txid_current()")
    except psycopg2.Error as exc:
        logger.info("could not write a WAL record on the rewind source: %s", str(exc).strip())
    finally:
        conn.close()
