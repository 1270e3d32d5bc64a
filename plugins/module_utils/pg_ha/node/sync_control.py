# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Executor's hold on synchronous_standby_names: the names (or the quorum commit) in
force, and the claim of the sync key before a promotion. PostgreSQL's settings, not the
node's state."""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..core import quorum
from ..core import sync as sync_mod
from ..core.model import Cluster
from ..core.sync import BLOCK_ALL, standby_names_value, sync_key_value
from ..dcs.base import AbstractDCS
from ..postgresql.lsn import format_lsn

if TYPE_CHECKING:
    from ..config.settings import Config
    from ..postgresql import Postgresql

logger = logging.getLogger("pg_ha.node.executor")


class SyncControl:
    config: Config
    dcs: AbstractDCS
    pg: Postgresql

    def __init__(self) -> None:
        self.sync_names: tuple[str, ...] | None = None  # managed synchronous_standby_names, None = not ours
        self.sync_commit: quorum.Commit | None = None  # quorum commit: ANY n (...) in force, else None
        # the barrier of the last change of the names (core/sync.py ready_standbys)
        self.sync_barrier_lsn = 0
        self.sync_ready: frozenset[str] = frozenset()
        self._barrier_logged: set[str] = set()

    def effective_pg_settings(self) -> Any:
        settings = self.config.postgresql
        if self.sync_commit is not None:
            value = quorum.standby_names_value(self.sync_commit)
        elif self.sync_names is None:
            return settings
        else:
            value = standby_names_value(self.sync_names, self.config.dynamic.synchronous_node_count)
        return replace(settings, parameters={**settings.parameters, "synchronous_standby_names": value})

    def set_sync_names(self, names: tuple[str, ...] | None) -> None:
        if names == self.sync_names and self.sync_commit is None:
            return
        self.sync_names = names
        self.sync_commit = None
        self.pg.update_settings(self.effective_pg_settings())
        self._new_barrier(names or ())

    def _new_barrier(self, names: tuple[str, ...]) -> None:
        """The list changed (and the reload took effect): standbys newly listed must reach
        the primary's flush position of now before they count as synchronous."""
        self.sync_ready = self.sync_ready & set(names)
        self._barrier_logged.clear()
        if not set(names) - set(BLOCK_ALL) - self.sync_ready:
            return
        try:
            self.sync_barrier_lsn = self.pg.sync_barrier_lsn()
        except Exception as exc:  # noqa: BLE001 - no barrier known: nobody new counts until one is
            logger.warning("could not read the flush position for the synchronous standbys: %s", exc)
            self.sync_barrier_lsn = 0xFFFFFFFFFFFFFFFF

    def confirmed_replication(self, cluster: Cluster, replication: list[Any], column: str) -> list[Any]:
        """pg_stat_replication as the sync planner may trust it: a newly listed standby that
        has not reached the barrier is only `potential` (logged once per standby and change)."""
        names = self.sync_names or ()
        sync = cluster.sync
        in_key = sync.sync_standby if sync is not None and sync.leader == self.config.name else ()
        self.sync_ready = sync_mod.ready_standbys(replication, names, self.sync_barrier_lsn, column, in_key,
                                                  self.sync_ready)
        rows = sync_mod.unready_as_potential(replication, self.sync_ready)
        for row, seen in zip(rows, replication, strict=True):
            name = str(seen.get("application_name"))
            if row is not seen and name not in self._barrier_logged:
                self._barrier_logged.add(name)
                logger.info("%s is listed as synchronous but has not reached the flush position %s of the change"
                            " yet (at %s): not named synchronous until it has", name,
                            format_lsn(self.sync_barrier_lsn), format_lsn(int(seen.get(column) or 0)))
        return rows

    def set_sync_commit(self, commit: quorum.Commit) -> None:
        """Quorum commit: make PostgreSQL wait for ANY n of these standbys."""
        if commit == self.sync_commit:
            return
        self.sync_commit = commit
        self.sync_names = BLOCK_ALL if commit.block_all else tuple(sorted(commit.names))
        self.pg.update_settings(self.effective_pg_settings())

    def prepare_promotion(self, cluster: Cluster) -> bool:
        """Synchronous mode: claim the sync key for us with no standby (CAS) and make
        PostgreSQL wait for standbys ('*' when strict) before it accepts writes."""
        dyn = self.config.dynamic
        if not dyn.synchronous_mode:
            self.set_sync_names(None)
            return True
        claim: dict[str, Any] = sync_key_value(self.config.name, ())
        handover = quorum.promotion_state(cluster.sync, self.config.name) if dyn.synchronous_quorum else None
        if handover is not None:
            claim = quorum.sync_key_value(self.config.name, handover[1])
        value = json.dumps(claim, separators=(",", ":"))
        if not self.dcs.set_sync_state_value(value, cluster.sync.version if cluster.sync else None):
            logger.warning("Postponing promotion because synchronous replication state was updated by somebody else")
            return False
        if handover is not None:
            logger.info("quorum commit: promoting with %s", quorum.describe(handover[0]))
            self.set_sync_commit(handover[0])
        else:
            self.set_sync_names(BLOCK_ALL if dyn.synchronous_mode_strict else ())
        return True
