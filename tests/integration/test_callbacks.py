"""Callbacks (argv: action role scope, in order) and the pre_promote fencing veto."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import TestCluster, running_cluster
from tests.harness.common import kill_postmaster, wait_for

pytestmark = pytest.mark.integration
SCOPE = "hooks"


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    shutil.chown(path, "postgres", "postgres")
    return str(path)


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, SCOPE, start=False) as c:
        for m in c.members:
            record = script(m.workdir / "record.sh", f'echo "$@" >> {m.workdir}/events')
            m.config["postgresql"]["callbacks"] = {a: record for a in
                                                   ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")}
            m.write_config()
        yield c


def events(m) -> list[str]:
    path = m.workdir / "events"
    return path.read_text().splitlines() if path.exists() else []


def test_callbacks_follow_the_lifecycle(cluster: TestCluster) -> None:
    pg0, pg1, pg2 = cluster.members
    pg0.start()
    wait_for(lambda: cluster.leader() is pg0, 90, "pg0 to lead")
    wait_for(lambda: f"on_start primary {SCOPE}" in events(pg0), 30, "on_start on the bootstrapped leader")
    pg1.start()
    pg2.start()
    cluster.wait_streaming([pg1, pg2])
    wait_for(lambda: f"on_start replica {SCOPE}" in events(pg1), 30, "on_start on a replica")
    code, _ = pg1.api("/switchover", method="POST", body={"leader": pg0.name, "candidate": pg1.name}, timeout=90)
    assert code == 200
    wait_for(lambda: f"on_role_change primary {SCOPE}" in events(pg1), 30, "on_role_change primary on pg1")
    wait_for(lambda: f"on_role_change replica {SCOPE}" in events(pg0), 60, "on_role_change replica on pg0")
    assert f"on_stop primary {SCOPE}" in events(pg0)
    log = events(pg0)
    assert log.index(f"on_stop primary {SCOPE}") < log.index(f"on_role_change replica {SCOPE}"), "in order"
    assert pg2.api("/restart", method="POST", body={}, timeout=60)[0] == 200
    wait_for(lambda: f"on_restart replica {SCOPE}" in events(pg2), 30, "on_restart")
    assert pg2.api("/reload", method="POST", body={})[0] == 202
    wait_for(lambda: f"on_reload replica {SCOPE}" in events(pg2), 30, "on_reload")


def test_a_primary_that_cannot_start_again_is_demoted(cluster: TestCluster) -> None:
    """Patroni's post_recover: the leader's PostgreSQL crashed and does not start (a bad
    postgresql.auto.conf): it gives the lock up and tells on_role_change it is `demoted`."""
    leader = cluster.wait_healthy()
    auto = Path(leader.data_dir) / "postgresql.auto.conf"
    kept = auto.read_text()
    try:
        auto.write_text("foo=bar\n")  # an unknown parameter: the postmaster refuses to start
        kill_postmaster(leader.data_dir)
        cluster.wait_leader(timeout=90, exclude=(leader.name,))
        wait_for(lambda: f"on_role_change demoted {SCOPE}" in events(leader), 30, "on_role_change demoted")
    finally:
        auto.write_text(kept)
    wait_for(lambda: f"on_role_change replica {SCOPE}" in events(leader)[-3:], 120,
             "on_role_change replica once it starts as a replica")
    cluster.wait_healthy()


def test_pre_promote_veto_blocks_promotion(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    for m in cluster.members:
        if m is not leader:
            fence = script(m.workdir / "fence.sh", f"echo fence >> {m.workdir}/fenced; exit 1")
            m.config["postgresql"]["pre_promote"] = fence
            m.write_config()
            assert m.api("/reload", method="POST", body={})[0] == 202
    leader.kill9()
    replica = next(m for m in cluster.members if m is not leader)
    wait_for(lambda: (replica.workdir / "fenced").exists() or
             (next(m for m in cluster.members if m not in (leader, replica)).workdir / "fenced").exists(),
             60, "a replica to try to promote and run pre_promote")
    assert "pre_promote script returned 1: not promoting" in "".join(m.log() for m in cluster.members)
    assert cluster.leader() is None, "no member promoted after the veto"
    assert all(m.sql("SELECT pg_is_in_recovery()")[0][0] for m in cluster.members if m is not leader)
