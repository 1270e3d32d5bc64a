"""failover_priority tag on a real 3-member cluster: with no writes in flight both replicas
stand at the same WAL position when the leader is killed, and the one with the higher
priority (pg2: 2 > default 1) takes over, every time."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster, wait_writable
from tests.harness.common import wait_for

pytestmark = pytest.mark.integration
SCOPE = "prio"


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, SCOPE, tags={f"{SCOPE}-pg2": {"failover_priority": 2}}, start=False) as c:
        yield c


def caught_up(leader: Member, replicas: list[Member]) -> bool:
    """Every replica received exactly the leader's current WAL position (nothing in flight)."""
    position = leader.sql("SELECT pg_current_wal_lsn()")[0][0]
    return all(r.sql("SELECT pg_last_wal_receive_lsn()")[0][0] == position for r in replicas)


def kill_leader_and_get_successor(cluster: TestCluster, leader: Member) -> Member:
    replicas = [m for m in cluster.members if m is not leader]
    cluster.wait_streaming(replicas)
    leader.sql("CHECKPOINT")  # no checkpoint of the old leader's own is left to write WAL under us
    wait_for(lambda: caught_up(leader, replicas), 60, "both replicas at the leader's WAL position")
    leader.kill9(postmaster=True)
    return cluster.wait_leader(90, exclude=(leader.name,))


def test_higher_priority_replica_wins_at_equal_wal_position(cluster: TestCluster) -> None:
    pg0, pg1, pg2 = cluster.members
    pg0.start()
    assert cluster.wait_leader(90).name == pg0.name
    pg1.start()
    pg2.start()
    assert kill_leader_and_get_successor(cluster, pg0).name == pg2.name
    wait_writable(pg2, 30)
    assert "promoted self to leader" in pg2.log()
    assert not pg1.is_primary()


def test_higher_priority_replica_wins_again(cluster: TestCluster) -> None:
    pg0, pg1, pg2 = cluster.members
    pg0.start()  # the killed former leader rejoins as a replica
    cluster.wait_streaming([pg0, pg1], 180)
    code, body = pg2.api("/switchover", method="POST", body={"leader": pg2.name, "candidate": pg0.name})
    assert code == 200, body
    assert cluster.wait_leader(90, exclude=(pg2.name,)).name == pg0.name
    assert kill_leader_and_get_successor(cluster, pg0).name == pg2.name
    assert not pg1.is_primary()
