"""Short-timeout client connections, and how to read a commit's outcome honestly."""
from __future__ import annotations

from typing import Any

import psycopg2

from tests.harness.cluster import SUPERUSER_PASSWORD

# PostgreSQL turns a cancelled wait for a synchronous standby into a WARNING and reports the
# COMMIT as done: the row is committed locally but maybe on no standby. Not an acknowledgement.
SYNC_CANCEL_MARKERS = ("canceled waiting for synchronous replication",
                       "might not have been replicated")


def connect(port: int, statement_timeout_ms: int, connect_timeout: int = 1) -> Any:
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=SUPERUSER_PASSWORD,
                            dbname="postgres", connect_timeout=connect_timeout,
                            keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
                            tcp_user_timeout=3000, application_name="chaos",
                            options=f"-c statement_timeout={statement_timeout_ms}")
    conn.autocommit = True
    return conn


def unreplicated_warning(conn: Any) -> str | None:
    """The sync-cancel warning since the last call, if any (clears the notices)."""
    notices = list(conn.notices)
    del conn.notices[:]
    for notice in notices:
        if any(marker in notice for marker in SYNC_CANCEL_MARKERS):
            return notice.strip()
    return None


def close_quietly(conn: Any) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass
