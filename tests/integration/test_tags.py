"""Member tags on a real cluster: clonefrom, replicatefrom (cascading), nofailover,
noloadbalance."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.cluster import TestCluster, running_cluster, wait_writable
from tests.harness.common import wait_for

pytestmark = pytest.mark.integration
SCOPE = "tagged"


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    tags = {f"{SCOPE}-pg1": {"clonefrom": True},
            f"{SCOPE}-pg2": {"replicatefrom": f"{SCOPE}-pg1", "nofailover": True, "noloadbalance": True}}
    with running_cluster(etcd_server, SCOPE, tags=tags, start=False) as c:
        yield c


def sender_port(member) -> int | None:
    rows = member.sql("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return rows[0][0] if rows else None


def test_clonefrom_and_cascading_replication(cluster: TestCluster) -> None:
    pg0, pg1, pg2 = cluster.members
    pg0.start()
    assert cluster.wait_leader(90).name == pg0.name
    pg1.start()
    cluster.wait_streaming([pg1])
    pg2.start()
    wait_for(lambda: sender_port(pg2) == pg1.pg_port, 120, "pg2 to stream from pg1 (cascading)")
    assert f"trying to bootstrap from replica '{pg1.name}'" in pg2.log()
    # the decision line is logged once the reload it triggered is done: wait for it
    wait_for(lambda: f"replicating from {pg1.name}" in pg2.log(), 30, "pg2 to log its cascading upstream")
    pg0.sql("CREATE TABLE cascaded AS SELECT 42 AS x")
    written = pg0.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    wait_for(lambda: pg2.sql("SELECT to_regclass('cascaded') IS NOT NULL")[0][0], 30, "a write to reach pg2 via pg1")
    # Patroni 4 (member_slots_ttl > 0, PostgreSQL >= 11): the leader keeps a slot for every
    # streaming member, the cascading one too, so that pg2 finds it after pg1 fails; the
    # slot is idle and advanced to the position pg2 publishes
    slots = {r[0] for r in pg0.sql("SELECT slot_name FROM pg_replication_slots")}
    assert slots == {pg1.name.replace("-", "_"), pg2.name.replace("-", "_")}
    pg2_slot = pg2.name.replace("-", "_")
    wait_for(lambda: pg0.sql("SELECT NOT active AND restart_lsn >= %s::pg_lsn FROM pg_replication_slots"
                             " WHERE slot_name = %s", (written, pg2_slot))[0][0], 60,
             "the leader to advance the idle slot of the cascading member")


def test_noloadbalance_replica_answers_503(cluster: TestCluster) -> None:
    pg2 = cluster.members[2]
    assert pg2.api("/replica")[0] == 503
    assert pg2.api("/read-only")[0] == 503  # like /replica, plus the primary (Patroni)
    assert pg2.api("/health")[0] == 200
    assert cluster.members[1].api("/replica")[0] == 200


def test_nofailover_member_never_becomes_leader(cluster: TestCluster) -> None:
    pg0, pg1, pg2 = cluster.members
    pg0.kill9()
    new = cluster.wait_leader(60, exclude=(pg0.name,))
    assert new.name == pg1.name
    wait_writable(pg1, 30)
    wait_for(lambda: sender_port(pg2) == pg1.pg_port, 60, "pg2 to follow the new leader pg1")
    pg1.kill9()
    wait_for(lambda: "I am not allowed to promote (nofailover tag)" in pg2.log(), 60, "pg2 to refuse the race")
    assert not pg2.is_primary()
