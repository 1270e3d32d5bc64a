"""Recovery paths of the daemon core on a real 3-member cluster (etcd v3): a crashed
postmaster on the leader, a primary that cannot start again, a failed pg_rewind, a
member from another cluster, and the REST operations restart/reinitialize/reload."""
from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.harness.cluster import Member, TestCluster, member_config, running_cluster, wait_writable
from tests.harness.common import PG_BIN, free_port, kill_postmaster, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "recovery", healthy=150) as c:
        yield c


def postmaster_start(m: Member) -> str:
    return m.sql("SELECT pg_postmaster_start_time()::text")[0][0]


def test_crashed_postmaster_on_leader_is_restarted(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    before = postmaster_start(leader)
    kill_postmaster(leader.data_dir)
    wait_for(lambda: postmaster_start(leader) != before, 60, "the leader's PostgreSQL to be started again")
    assert cluster.wait_leader(timeout=30).name == leader.name, "the lock stayed with the leader"
    wait_writable(leader, 30)
    assert "starting primary after failure" in leader.log()


def test_primary_that_cannot_start_releases_the_lock(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        kill_postmaster(leader.data_dir)
        blocker.bind(("127.0.0.1", leader.pg_port))  # its port is taken: PostgreSQL cannot start
        blocker.listen(1)
        new = cluster.wait_leader(timeout=90, exclude=(leader.name,))
        assert "removed leader key after trying and failing to start postgres" in leader.log()
        wait_writable(new, 30)
    finally:
        blocker.close()
    wait_for(leader.is_streaming_replica, 120, f"{leader.name} to rejoin once its port is free")


def test_failed_rewind_falls_back_to_a_fresh_basebackup(cluster: TestCluster) -> None:
    old = cluster.wait_healthy()
    old.kill9(postmaster=False)
    new = cluster.wait_leader(timeout=60, exclude=(old.name,))
    old.sql("CREATE TABLE diverged_write()")
    # pg_rewind will fail: its user cannot log in
    old.config["postgresql"]["authentication"]["rewind"] = {"username": "no_such_rewinder", "password": "x"}
    old.config["postgresql"]["remove_data_directory_on_rewind_failure"] = True  # off by default, as in Patroni
    old.write_config()
    old.start()
    wait_for(old.is_streaming_replica, 180, f"{old.name} to be re-cloned and stream from {new.name}")
    log = old.log()
    assert "rewind needed" in log
    assert "cannot connect to the rewind source" in log
    assert "removing the data directory to take a fresh copy from the leader" in log
    assert "trying to bootstrap from leader" in log
    assert old.sql("SELECT to_regclass('diverged_write') IS NULL")[0][0]


def test_member_of_another_cluster_refuses_to_join(cluster: TestCluster) -> None:
    workdir = cluster.root / "stranger"
    workdir.mkdir(mode=0o700)
    shutil.chown(workdir, "postgres", "postgres")
    config = member_config(cluster.scope, "stranger", workdir, free_port(), free_port(), "etcd3",
                           cluster.etcd_hostport)
    subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/initdb", "-D", str(workdir / "data"),
                    "-A", "trust"], check=True, capture_output=True, timeout=120)
    stranger = Member("stranger", workdir, config)
    cluster.members.append(stranger)  # cleaned up with the cluster
    stranger.start()
    assert stranger.proc is not None
    code = stranger.proc.wait(60)
    assert code == 1
    assert "system ID mismatch, node stranger belongs to a different cluster" in stranger.log()
    cluster.members.remove(stranger)
    stranger.cleanup()


def test_rest_restart_reinitialize_reload(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    replica = next(m for m in cluster.members if m is not leader)
    before = postmaster_start(replica)
    code, body = replica.api("/restart", method="POST", body={}, timeout=90)
    assert code == 200, body
    assert postmaster_start(replica) != before
    wait_for(replica.is_streaming_replica, 60, "streaming after restart")

    code, body = replica.api("/restart", method="POST", body={"role": "primary"}, timeout=30)
    assert code == 503 and "restart conditions are not satisfied" in str(body)

    code, body = leader.api("/reinitialize", method="POST", body={})
    assert code == 503, "the leader refuses to reinitialize"
    sysid_file = replica.data_dir / "PG_VERSION"
    inode = sysid_file.stat().st_ino
    code, body = replica.api("/reinitialize", method="POST", body={"force": True})
    assert code == 200, body
    wait_for(lambda: sysid_file.exists() and sysid_file.stat().st_ino != inode and replica.is_streaming_replica(),
             120, "the replica to be re-cloned and streaming")

    code, _ = replica.api("/reload", method="POST", body={})
    assert code == 202
