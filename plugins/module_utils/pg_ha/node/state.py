# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the node remembers between HA cycles (fed back into core/ha.py's LocalView), and
the named transitions that change it.

NodeState is immutable; each transition returns the next state. The Executor
(executor.py) holds the only current value and is the only caller of these transitions,
so every change of the node's state is one named step of one owner."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class NodeState:
    upstream: str | None = None               # whom our primary_conninfo points at
    unverified_primary_data: bool = False     # we were primary: not yet checked against a leader
    primary_start_failed: bool = False        # the leader's PostgreSQL did not start: release the lock
    stopped_on_purpose: bool = False          # PostgreSQL is down because we stopped it (not a crash)
    fatal: str | None = None
    bootstrap_failed_at: float | None = None  # time.monotonic() of our last failed bootstrap

    # -- starting and stopping --------------------------------------------------------
    def started_replica(self, upstream: str | None) -> NodeState:
        return replace(self, upstream=upstream, stopped_on_purpose=False)

    def started_primary(self) -> NodeState:
        return replace(self, upstream=None, primary_start_failed=False, stopped_on_purpose=False)

    def started_standby_leader(self, remote: str | None) -> NodeState:
        return replace(self, upstream=remote, primary_start_failed=False, stopped_on_purpose=False)

    def primary_did_not_start(self) -> NodeState:
        """The leader's PostgreSQL did not start: core/ha.py releases the lock next cycle."""
        return replace(self, primary_start_failed=True, unverified_primary_data=True)

    def standby_leader_did_not_start(self) -> NodeState:
        return replace(self, primary_start_failed=True)

    def replica_did_not_start(self) -> NodeState:
        """E.g. 'requested timeline N is not a child of this server's history': check the
        data against the leader next (rewind or re-clone) instead of a blind retry."""
        return replace(self, unverified_primary_data=True)

    def stopping(self) -> NodeState:
        return replace(self, stopped_on_purpose=True)

    # -- roles ------------------------------------------------------------------------
    def promoted(self) -> NodeState:
        return replace(self, upstream=None, unverified_primary_data=False)

    def demoted(self) -> NodeState:
        """A primary stopped without the lock (demotion, switchover, DCS outage): its data
        may have gone past the new leader's fork point until checked."""
        return replace(self, upstream=None, unverified_primary_data=True, stopped_on_purpose=True)

    def lock_released(self) -> NodeState:
        return replace(self, primary_start_failed=False, unverified_primary_data=True)

    def following(self, upstream: str | None) -> NodeState:
        return replace(self, upstream=upstream)

    def following_remote(self, remote: str | None) -> NodeState:
        """The standby leader streams from (or restores) the remote primary's WAL."""
        return replace(self, upstream=remote, unverified_primary_data=False)

    def upstream_forgotten(self) -> NodeState:
        """standby_cluster changed: core/ha.py compares upstream with the new remote."""
        return replace(self, upstream=None)

    # -- the data directory -----------------------------------------------------------
    def data_verified(self) -> NodeState:
        """Fresh copy, rewound or removed: nothing of a former primary's past is left."""
        return replace(self, unverified_primary_data=False)

    def data_suspect(self) -> NodeState:
        """The data directory last ran as a primary (found at start)."""
        return replace(self, unverified_primary_data=True)

    def bootstrapped_standby(self, remote: str | None) -> NodeState:
        return replace(self, upstream=remote, unverified_primary_data=False, stopped_on_purpose=False)

    def bootstrap_failed(self, at: float) -> NodeState:
        return replace(self, bootstrap_failed_at=at)

    def fenced(self) -> NodeState:
        """The watchdog fired: PostgreSQL was stopped by it, its data is a former primary's."""
        return replace(self, unverified_primary_data=True, stopped_on_purpose=True)

    def refused(self, reason: str) -> NodeState:
        return replace(self, fatal=reason)
