# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The REST view of a PostgreSQL that came up since the HA cycle last published.

The HA cycle publishes the node's status once a cycle, from what it read at the cycle's
start. When the postmaster starts between two cycles (a primary restarted after a crash, a
restart, a rejoin), the published view still says "crashed" or "stopped" while clients can
already connect, until the next cycle ends. Patroni's API answers from a query of its own;
so does this, only in that window (published state not "running", postmaster alive) and on
the API's own connection (Postgresql.probe_state), so a health check never waits on a query
of the HA loop. In steady state nothing is queried: the published status is the answer.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from ..config.settings import Config
from ..core.status import CycleFacts, patroni_status
from .observe import server_facts

RUNNING = "running"


class LiveStatus:
    """status() for the REST API: the published status, or a fresher one in the window."""

    def __init__(self, pg: Any) -> None:
        self._pg = pg
        self._lock = threading.Lock()  # one probe at a time on the one connection
        self._probing = False

    def view(self, config: Config, published: dict[str, Any], facts: CycleFacts, busy: str | None) -> dict[str, Any]:
        if busy and published.get("state") != busy:
            # a step began since the cycle published (POST /reinitialize, a restart): the
            # step is the state at once, as Patroni sets it before the step's first action;
            # a "running" of before must not tell `reinit --wait` that the re-clone is over
            published = {**published, "state": busy}
        alive = self._pg.is_running()
        if published.get("state") == RUNNING:
            if self._probing:
                self._probing = False
                self._pg.close_probe()
            # a postmaster that died since then is no longer "running" (Patroni's query fails: "unknown")
            return published if alive else {**published, "state": "unknown"}
        if not alive:
            return published
        self._probing = True
        return self._probed(config, published, facts, busy) or published

    def fresh(self, config: Config, published: dict[str, Any], facts: CycleFacts, busy: str | None) -> dict[str, Any]:
        """GET /patroni: the server's positions of now, as Patroni's API answers it (one
        query on the API's own connection). Peers compare these WAL positions in the leader
        race; the last cycle's could be up to loop_wait old, and a replica that received the
        shutdown checkpoint of the old primary since then would look behind."""
        if not self._pg.is_running():
            return self.view(config, published, facts, busy)
        return self._probed(config, published, facts, busy) or self.view(config, published, facts, busy)

    def _probed(self, config: Config, published: dict[str, Any], facts: CycleFacts,
                busy: str | None) -> dict[str, Any] | None:
        if not self._lock.acquire(timeout=2):
            return None
        try:
            state = self._pg.probe_state()
        finally:
            self._lock.release()
        if not state.running or state.error:
            return None  # not accepting connections (yet): the published state stands
        live = replace(facts, **server_facts(state), busy=busy, crashed=False, data_dir_empty=False)
        fresh = patroni_status(config, live)
        for key in ("failsafe_mode_is_active", "dcs_last_seen"):
            if key in published:
                fresh[key] = published[key]
        return fresh
