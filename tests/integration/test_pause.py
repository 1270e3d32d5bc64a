"""Maintenance mode (pause) on a real 3-member cluster: the daemons neither restart a
crashed PostgreSQL nor fail over when the leader's daemon dies, and say so with the
`PAUSE:` prefix; a switchover to a named candidate still works; after resume the cluster
heals itself again (restart of a crashed primary, automatic failover)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster, wait_writable
from tests.harness.common import kill_postmaster, pid_alive, wait_for
from tests.harness.etcd import scope_key

pytestmark = pytest.mark.integration
SCOPE = "paused"
TTL = 10  # the harness' bootstrap.dcs ttl


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, SCOPE) as c:
        yield c


def leader_key(c: TestCluster) -> str | None:
    return scope_key(c.etcd, c.scope, "leader")  # type: ignore[attr-defined]


def postmaster_alive(m: Member) -> bool:
    try:
        pid = int((m.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_alive(pid)


def holds_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    """`check` stays true during the whole period (polled); fail at the first violation."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"violated while waiting: {what}"
        time.sleep(0.5)


def set_pause(c: TestCluster, via: Member, paused: bool) -> None:
    code, body = via.api("/config", method="PATCH", body={"pause": paused})
    assert code == 200, body
    wait_for(lambda: all(bool((m.status() or {}).get("pause")) is paused for m in c.members if m.running), 60,
             f"every member to report pause={paused}")


def primaries(c: TestCluster) -> list[str]:
    return [m.name for m in c.members if m.running and m.is_primary()]


def test_crashed_postgres_is_not_restarted_in_pause(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    set_pause(cluster, leader, True)
    mark = len(leader.log())
    kill_postmaster(leader.data_dir)
    wait_for(lambda: "PAUSE: postgres is not running" in leader.log()[mark:], 60, "the PAUSE: log line")
    # as Patroni: in maintenance mode a dead postmaster is "stopped", not "crashed"
    wait_for(lambda: leader.api("/patroni")[1].get("state") == "stopped", 30, "state stopped in GET /patroni")

    def nothing_happens() -> bool:
        return not postmaster_alive(leader) and primaries(cluster) == [] and leader_key(cluster) == leader.name
    holds_for(nothing_happens, TTL + 5, "no restart, no promotion, the leader keeps its lock")
    replicas = [m for m in cluster.members if m is not leader]
    assert all("PAUSE: no action. I am" in m.log() for m in replicas)
    # resume: the daemon restarts its primary again
    set_pause(cluster, leader, False)
    assert cluster.wait_leader(90).name == leader.name
    wait_writable(leader, 60)


def test_dead_leader_daemon_causes_no_failover_in_pause(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    set_pause(cluster, leader, True)
    leader.kill9(postmaster=False)  # the daemon only: its PostgreSQL keeps running as primary
    wait_for(lambda: leader_key(cluster) is None, TTL * 3, "the leader key to expire")
    replicas = [m for m in cluster.members if m is not leader]
    marks = {m.name: len(m.log()) for m in replicas}
    wait_for(lambda: all("PAUSE: no leader, automatic failover is disabled" in m.log()[marks[m.name]:]
                         for m in replicas), 60, "the replicas to notice the missing leader")
    holds_for(lambda: leader_key(cluster) is None and all(not m.is_primary() for m in replicas)
              and postmaster_alive(leader), TTL + 5, "no automatic failover")
    # the daemon comes back to its running primary and takes the lock again, still paused
    leader.start()
    wait_for(lambda: leader_key(cluster) == leader.name, 60, "the restarted daemon to take the lock")
    assert "PAUSE: acquired session lock as a leader" in leader.log()


def test_daemon_stopped_in_pause_leaves_postgres_running(cluster: TestCluster) -> None:
    """Patroni's Ha.shutdown: SIGTERM in maintenance mode neither stops PostgreSQL nor deletes
    the leader key (the daemon can be upgraded under a running primary)."""
    leader = cluster.wait_healthy()
    assert (leader.status() or {}).get("pause") is True
    leader.stop()
    assert "Leader key is not deleted and Postgresql is not stopped due paused state" in leader.log()
    assert postmaster_alive(leader) and leader.sql("select pg_is_in_recovery()") == [(False,)]
    assert leader_key(cluster) == leader.name  # not deleted: it expires after ttl, and nobody takes over
    leader.start()
    wait_for(lambda: leader_key(cluster) == leader.name and (leader.status() or {}).get("role") == "primary",
             60, "the restarted daemon to lead its running primary")
    assert postmaster_alive(leader)


def test_switchover_to_named_candidate_in_pause_then_resume(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    assert (leader.status() or {}).get("pause") is True
    candidate, other = [m for m in cluster.members if m is not leader]
    code, body = leader.api("/switchover", method="POST", body={"leader": leader.name, "candidate": candidate.name})
    assert code == 200, body
    assert cluster.wait_leader(90, exclude=(leader.name,)).name == candidate.name
    wait_writable(candidate, 60)
    # the former leader was demoted on request: it runs again, as a replica of the candidate
    wait_for(leader.is_streaming_replica, 120, "the former leader to stream from the candidate")
    set_pause(cluster, candidate, False)
    cluster.wait_healthy()
    # normal behaviour again: kill -9 of the leader is followed by an automatic failover
    candidate.kill9(postmaster=True)
    new = cluster.wait_leader(90, exclude=(candidate.name,))
    assert new.name in (leader.name, other.name)
    wait_writable(new, 60)
