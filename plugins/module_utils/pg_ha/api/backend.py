# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the REST API needs from the daemon. The daemon implements it; tests fake it.

Reads (status, cluster, config) return what the last HA cycle published and never
block on the HA loop. Only the POST/PATCH/PUT/DELETE handlers talk to the DCS.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from ..config.settings import Config
from ..core.model import Cluster
from ..dcs.base import AbstractDCS


class ApiBackend(Protocol):
    @property
    def config(self) -> Config:
        """The current effective config (local file + dynamic layer)."""

    @property
    def dcs(self) -> AbstractDCS:
        """For writes (config, failover keys) and fresh reads by unsafe handlers."""

    def status(self) -> dict[str, Any]:
        """Body of GET /patroni as of the last cycle: state, postmaster_start_time, role
        ('primary' | 'replica' | 'standby_leader' | 'uninitialized' | 'unknown'),
        server_version, xlog ({location} on a primary; {received_location,
        replayed_location, replayed_timestamp, paused} on a replica), timeline,
        replication (list), dcs_last_seen (epoch seconds), database_system_identifier,
        pending_restart (only when true), scheduled_restart (when any),
        patroni {version, scope, name}, tags (only when any), pause (only when true),
        cluster_unlocked (only when true)."""

    def fresh_status(self) -> dict[str, Any]:
        """status(), with the WAL positions and role read from the server now when it
        answers (GET /patroni: what peers compare in the leader race)."""

    def cluster(self) -> Cluster | None:
        """The DCS snapshot of the last cycle (None before the first one)."""

    def lease_deadline(self) -> float | None:
        """time.monotonic() until which this node may act as the primary: its last leader
        lease renewal (or failsafe consent) plus ttl minus a margin (core/lease.py); None
        when it holds no lease. /primary, /read-write and / answer 503 once it passed."""

    def last_cycle_age(self) -> float:
        """Seconds since the HA loop last completed a cycle (liveness)."""

    def wakeup(self) -> None:
        """Run the next HA cycle at once."""

    def restart(self, scheduled_at: datetime | None, postgres_version: str | None,
                role: str | None, restart_pending: bool, timeout: float | None) -> tuple[int, str]:
        """Restart PostgreSQL now (blocks until done) or schedule it; returns (HTTP code, text)."""

    def cancel_scheduled_restart(self) -> tuple[int, str]: ...

    def reload(self) -> tuple[int, str]:
        """Re-read the local config file and reload PostgreSQL."""

    def reinitialize(self, force: bool, from_leader: bool) -> tuple[int, str]:
        """Wipe and re-clone this replica (refused on the leader)."""

    def failsafe_call(self, body: Any) -> tuple[int, str]:
        """POST /failsafe from a primary that lost the DCS: (200, 'Accepted') unless we run
        as a primary ourselves (500) or failsafe_mode is off (502); 400 for a bad body."""

    def failsafe_topology(self) -> dict[str, Any] | None:
        """The failsafe key as last read; None when failsafe_mode is off or none is known."""
