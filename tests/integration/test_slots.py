"""Permanent replication slots (physical and logical) live on the leader and are
created again on a new leader after a failover."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.cluster import TestCluster, running_cluster
from tests.harness.common import wait_for

pytestmark = pytest.mark.integration
SLOTS = {"archiver": {"type": "physical"},
         "cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "slots", size=2,
                         dynamic={"slots": SLOTS, "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                                                 "parameters": {"wal_level": "logical"}}}) as c:
        yield c


def slots(m) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in m.sql("SELECT slot_name, slot_type FROM pg_replication_slots")}


def test_permanent_slots_on_the_leader_and_after_failover(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    wanted = {("archiver", "physical"), ("cdc", "logical")}
    wait_for(lambda: wanted <= slots(leader), 30, "permanent slots on the leader")
    leader.sql("CREATE TABLE decoded(x int); INSERT INTO decoded VALUES (1)")
    changes = leader.sql("SELECT data FROM pg_logical_slot_peek_changes('cdc', NULL, NULL)")
    assert any("decoded" in r[0] for r in changes), "the logical slot decodes changes"
    leader.kill9()
    new = cluster.wait_leader(60, exclude=(leader.name,))
    wait_for(lambda: wanted <= slots(new), 30, "permanent slots re-created on the new leader")
