# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leader's side of quorum commit: apply the steps quorum.plan() chose, in order,
DCS writes by compare-and-set; the first step that fails ends the cycle."""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core import quorum
from ..core.model import Cluster
from ..core.sync import BLOCK_ALL
from ..dcs.base import AbstractDCS

if TYPE_CHECKING:
    from .executor import Executor

logger = logging.getLogger("pg_ha")


def current_commit(executor: Executor, count: int) -> quorum.Commit:
    """What PostgreSQL waits for now. FIRST n (...) (synchronous_mode: on before a switch
    to quorum) is counted as ANY n of the same names: every FIRST-acknowledger set is one."""
    if executor.sync_commit is not None:
        return executor.sync_commit
    names = executor.sync_names or ()
    if names == BLOCK_ALL:
        return quorum.Commit(0, frozenset(), block_all=True)
    return quorum.Commit(min(max(count, 1), len(names)) if names else 0, frozenset(names))


def manage_quorum(dcs: AbstractDCS, executor: Executor, cluster: Cluster, me: str,
                  replication: Sequence[Mapping[str, Any]]) -> None:
    dyn = executor.config.dynamic
    plan = quorum.plan(cluster, me, replication, current_commit(executor, dyn.synchronous_node_count),
                       dyn.synchronous_node_count, dyn.synchronous_mode_strict)
    version = cluster.sync.version if cluster.sync is not None else None
    wrote_key = False
    for step in plan.steps:
        if step.target == "dcs" and step.vote is not None:
            if wrote_key:
                break  # the next compare-and-set needs the new version: next cycle
            value = json.dumps(quorum.sync_key_value(me, step.vote), separators=(",", ":"))
            if not dcs.set_sync_state_value(value, version):
                logger.warning("sync key changed concurrently: quorum commit unchanged this cycle")
                return
            wrote_key = True
            logger.info("quorum commit: sync key now lists the voters %s; the leader race needs %s",
                        ", ".join(sorted(step.vote.voters)) or "(none)", quorum.describe_vote(step.vote))
        elif step.commit is not None:
            executor.set_sync_commit(step.commit)
            logger.info("quorum commit: %s (synchronous_standby_names = '%s')",
                        quorum.describe(step.commit), quorum.standby_names_value(step.commit))
