"""Quorum commit (synchronous_mode: quorum, synchronous_node_count 1) on a real 3-member
cluster: the leader waits for ANY 1 of both replicas and publishes them as voters with
quorum 1 in the `sync` key; with one replica stopped commits still succeed and the key
shrinks; after kill -9 of the leader under a write load a replica that reached the other
voter promotes and has every acknowledged write."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.harness.cluster import TestCluster, running_cluster
from tests.harness.common import REPO, SYSTEM_PYTHON, kill_group, wait_for
from tests.harness.etcd import scope_key
from tests.harness.writes import AckedWriter

pytestmark = pytest.mark.integration
SCOPE = "quorum"


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, SCOPE, dynamic={"synchronous_mode": "quorum", "synchronous_node_count": 1}) as c:
        yield c


def sync_key(c: TestCluster) -> dict | None:
    raw = scope_key(c.etcd, c.scope, "sync")  # type: ignore[attr-defined]
    return json.loads(raw) if raw else None


def quorum_state(c: TestCluster, voters: list[str], quorum: int) -> bool:
    """The leader's sync key lists exactly these voters with this quorum, and its
    synchronous_standby_names waits for ANY 1 of them."""
    leader = c.leader()
    key = sync_key(c)
    if leader is None or not key or key.get("leader") != leader.name:
        return False
    listed = sorted(n for n in str(key.get("sync_standby") or "").split(",") if n)
    if listed != sorted(voters) or key.get("quorum") != quorum:
        return False
    expected = "ANY 1 (" + ",".join(f'"{n}"' for n in sorted(voters)) + ")"
    return leader.sql("SHOW synchronous_standby_names")[0][0] == expected


def pg_hactl_list(c: TestCluster) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(c.root), "LANG": "C.UTF-8"}
    result = subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", "-c", str(c.members[0].config_path), "list"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_leader_waits_for_any_one_of_both_replicas(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    replicas = [m for m in cluster.members if m is not leader]
    names = [m.name for m in replicas]
    wait_for(lambda: quorum_state(cluster, names, 1), 90, "ANY 1 of both replicas and a sync key with quorum 1")
    rows = leader.sql("SELECT application_name, sync_state FROM pg_stat_replication")
    assert sorted(rows) == sorted((n, "quorum") for n in names)
    # every member's health answers come from its last cycle: wait for them to see the key
    wait_for(lambda: all(m.api("/quorum")[0] == 200 for m in replicas), 30, "/quorum 200 on both replicas")
    for m in replicas:
        assert m.api("/sync")[0] == 503 and m.api("/async")[0] == 503
        assert m.api("/read-only-quorum")[0] == 200
    assert leader.api("/quorum")[0] == 503 and leader.api("/read-only-quorum")[0] == 200
    wanted = {leader.name: "leader", **{n: "quorum_standby" for n in names}}
    wait_for(lambda: {m["name"]: m["role"] for m in leader.api("/cluster")[1]["members"]} == wanted, 30,
             "GET /cluster to show both quorum standbys")
    table = pg_hactl_list(cluster)
    assert table.count("Quorum Standby") == 2, table


def test_writes_commit_with_one_replica_stopped(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    stopped, remaining = [m for m in cluster.members if m is not leader]
    stopped.stop()
    done = threading.Event()

    def insert() -> None:
        leader.sql("CREATE TABLE IF NOT EXISTS quorum_probe(x int); INSERT INTO quorum_probe VALUES (1)")
        done.set()

    threading.Thread(target=insert, daemon=True).start()
    wait_for(done.is_set, 30, "a commit acknowledged by the remaining replica")
    # the stopped member leaves the quorum: PostgreSQL first, then the key (quorum 0 of 1 voter)
    wait_for(lambda: quorum_state(cluster, [remaining.name], 0), 90, "ANY 1 of the remaining replica, quorum 0")
    assert remaining.sql("SELECT count(*) FROM quorum_probe")[0][0] == 1
    stopped.start()
    wait_for(lambda: quorum_state(cluster, [stopped.name, remaining.name], 1), 120,
             "the restarted replica back in the quorum")


def test_kill9_leader_under_load_loses_no_acknowledged_write(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    voters = [m.name for m in cluster.members if m is not leader]
    wait_for(lambda: quorum_state(cluster, voters, 1), 90, "both replicas are voters")
    with AckedWriter(leader, "acked") as writer:
        wait_for(lambda: len(writer.acked) > 100, 60, "acknowledged writes before the crash")
        leader.kill9(postmaster=True)
        new = cluster.wait_leader(timeout=90, exclude=(leader.name,))
    assert new.name in voters
    missing = writer.missing_on(new)
    print(f"\nacknowledged {len(writer.acked)} writes, missing after failover to {new.name}: {len(missing)}")
    assert missing == []
    other = next(n for n in voters if n != new.name)
    wait_for(lambda: quorum_state(cluster, [other], 0), 120, "the new leader waits for the other replica")


def test_lone_voter_does_not_promote_until_it_reaches_the_quorum(cluster: TestCluster) -> None:
    """ANY 1 of two voters: a replica that cannot reach the other voter cannot know it has
    every acknowledged commit, so it must not take over; once the other voter answers,
    the one with the higher WAL position does."""
    for m in cluster.members:
        if not m.running:
            m.start()  # the former leader killed by the previous test rejoins
    leader = cluster.wait_healthy()
    lone, frozen = [m for m in cluster.members if m is not leader]
    wait_for(lambda: quorum_state(cluster, [lone.name, frozen.name], 1), 120, "both replicas are voters")
    leader.sql("CREATE TABLE IF NOT EXISTS lone(x int); INSERT INTO lone VALUES (1)")
    mark = len(lone.log())
    pids = frozen.pause_daemon()
    try:
        leader.kill9(postmaster=True)
        refusal = f"quorum commit: reached 1 of the voters {', '.join(sorted([lone.name, frozen.name]))}, 2 needed"
        # several HA cycles after the leader key expired, the lone voter still refuses
        wait_for(lambda: lone.log()[mark:].count(refusal) >= 3, 90, "the lone voter to refuse the race three times")
        assert not lone.is_primary()
        assert cluster.leader() is None
    finally:
        for pid in pids:
            kill_group(pid, signal.SIGCONT)
    new = cluster.wait_leader(90, exclude=(leader.name,))
    assert new.name in (lone.name, frozen.name)
    assert new.sql("SELECT count(*) FROM lone")[0][0] == 1
