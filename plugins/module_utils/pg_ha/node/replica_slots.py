# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A replica's physical slots: kept at the replayed position so they never pin WAL.

Patroni (use_slots, member_slots_ttl) keeps a slot for every other member, and the
permanent physical slots, on its replicas too, and advances them each cycle. A data
directory taken over from Patroni still has them; nobody streams through them on a
replica, and a slot nobody advances keeps every WAL segment since its restart_lsn: the
replica's pg_wal would grow until the disk is full. So each cycle of a replica the slots
named after the other members (but not those of members cascading from this one, who
may need the WAL) and the permanent physical slots are moved to the replayed position."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..core.model import Cluster

logger = logging.getLogger("pg_ha")


def managed_slot_names(cluster: Cluster, me: str, permanent: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Member names (slot_name_for applies later) and permanent physical slot names."""
    names = {m.name for m in cluster.members if m.name != me and m.tags.get("replicatefrom") != me}
    names |= {n for n, spec in permanent.items() if spec.get("type", "physical") == "physical"}
    return names


class ReplicaSlots:
    """One per daemon; says once per slot that it is being advanced."""

    def __init__(self, pg: Any) -> None:
        self._pg = pg
        self._announced: set[str] = set()

    def run(self, cluster: Cluster, me: str, permanent: Mapping[str, Mapping[str, Any]]) -> None:
        for name in self._pg.advance_replica_slots(managed_slot_names(cluster, me, permanent)):
            if name not in self._announced:
                self._announced.add(name)
                logger.info("replication slot %s on this replica: kept at the replayed position from now on, "
                            "so it pins no WAL", name)
