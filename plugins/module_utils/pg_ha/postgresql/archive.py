# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""archive_command run by pg_ha itself, for the one WAL file PostgreSQL does not archive.

When a primary shuts down with archiving on, PostgreSQL archives the WAL up to the shutdown
checkpoint, but the checkpoint record goes to the next file, which stays unarchived. A cluster
demoted to a standby cluster that replicates from an archive must give that record to the
archive too: the other cluster, promoted later, forks its timeline after it, and this one can
then follow from the archive without pg_rewind (Patroni: archive_shutdown_checkpoint_wal)."""
from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("pg_ha")
ARCHIVE_TIMEOUT = 300.0  # a stuck archive_command must not hold the demotion forever


def archive_command(parameters: Mapping[str, Any]) -> str | None:
    """archive_command when archive_mode is on or always, else None."""
    mode = str(parameters.get("archive_mode", "off")).strip().lower()
    command = str(parameters.get("archive_command") or "").strip()
    return command if mode in ("on", "always", "true") and command else None


def expand(template: str, wal_dir: str, wal_file: str) -> str:
    """The command PostgreSQL would run: %p the file's path, %f its name, %r (restore
    commands only) the earliest file, %% a percent sign; any other %x stays as written."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            nxt = template[i + 1]
            value = {"p": os.path.join(wal_dir, wal_file), "f": wal_file, "r": "000000010000000000000001",
                     "%": "%"}.get(nxt)
            if value is not None:
                out.append(value)
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def archive_shutdown_checkpoint_wal(data_dir: str, controldata: Mapping[str, str], command: str) -> bool:
    """Run archive_command for the file holding the latest (shutdown) checkpoint's redo record,
    from the data directory as PostgreSQL runs it; True when it exited 0."""
    wal_file = controldata.get("Latest checkpoint's REDO WAL file", "")
    if not wal_file:
        logger.error("cannot archive the shutdown checkpoint: pg_controldata names no REDO WAL file")
        return False
    cmd = expand(command, os.path.join(data_dir, "pg_wal"), wal_file)
    logger.info("archiving %s, which holds the shutdown checkpoint: %s", wal_file, cmd)
    try:
        done = subprocess.run(cmd, shell=True, cwd=data_dir, timeout=ARCHIVE_TIMEOUT,  # noqa: S602 - the user's archive_command
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.error("failed to archive the WAL file with the shutdown checkpoint: %s", exc)
        return False
    if done.returncode != 0:
        logger.error("failed to archive the WAL file with the shutdown checkpoint: exit code %s: %s",
                     done.returncode, (done.stderr or done.stdout).strip()[-300:])
        return False
    return True
