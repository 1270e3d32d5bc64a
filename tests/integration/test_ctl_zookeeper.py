"""pg_hactl against a real 3-member pg_ha cluster on a real ZooKeeper (Debian's 3.8, standalone):
``-c`` with the daemon's own file (a ``zookeeper:`` section) and with a ctl file holding only
that section, ``--dcs-url zookeeper://HOST:PORT`` (as patronictl takes it), list and
switchover, and that pg_hactl ends its ZooKeeper session when it exits. pg_hactl runs as root
from the repository with Debian's python3 and python3-kazoo. In order on one cluster."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import TestCluster
from tests.harness.common import REPO, SYSTEM_PYTHON, free_port, wait_for
from tests.harness.zookeeper import ZooKeeperServer, znodes

pytestmark = pytest.mark.integration
SCOPE = "zkctl"
PREFIX = f"/service/{SCOPE}/"


@pytest.fixture(scope="module")
def zk() -> Iterator[ZooKeeperServer]:
    """A ZooKeeper of this module's own: the test counts the sessions connected to it."""
    server = ZooKeeperServer(name="zkctl").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def cluster(zk: ZooKeeperServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    c = TestCluster(zk.host_port, scope=SCOPE, dcs_kind="zookeeper")
    c.home = tmp_path_factory.mktemp("home")  # type: ignore[attr-defined]
    c.zk = zk  # type: ignore[attr-defined]
    try:
        c.start()
        c.wait_healthy(150)
        yield c
    finally:
        print(c.logs()[-15000:])
        c.cleanup()


def ctl(c: TestCluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(c.home), "LANG": "C.UTF-8"}  # type: ignore[attr-defined]
    return subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", *args], input="", capture_output=True, text=True,
                          timeout=timeout, env=env)


def ok(c: TestCluster, *args: str) -> str:
    result = ctl(c, *args)
    assert result.returncode == 0, \
        f"pg_hactl {' '.join(args)}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def with_config(c: TestCluster) -> tuple[str, ...]:
    return ("-c", str(c.members[0].config_path))


def with_url(c: TestCluster) -> tuple[str, ...]:
    return ("--dcs-url", f"zookeeper://{c.etcd_hostport}")


def listed(c: TestCluster, *how: str) -> dict[str, dict]:
    return {m["Member"]: m for m in json.loads(ok(c, *how, "list", SCOPE, "-f", "json"))}


def member_sessions(zk: ZooKeeperServer) -> set[int]:
    return {stat.ephemeralOwner for key, (_v, stat) in znodes(zk, PREFIX).items() if "/members/" in key}


def test_list_with_the_daemons_config(cluster: TestCluster) -> None:
    leader = cluster.wait_healthy()
    members = listed(cluster, *with_config(cluster))
    assert sorted(members) == sorted(m.name for m in cluster.members)
    assert members[leader.name]["Role"] == "Leader"
    for m in cluster.members:
        row = members[m.name]
        assert row["Host"] == f"127.0.0.1:{m.pg_port}" and row["Cluster"] == SCOPE
        if m is not leader:
            assert (row["Role"], row["State"]) == ("Replica", "streaming")
    table = ok(cluster, *with_config(cluster), "list")
    assert f"| {SCOPE} " in table and f"| {leader.name} " in table and "| Leader " in table


def test_list_with_dcs_url_and_with_a_ctl_file(cluster: TestCluster, tmp_path: Path) -> None:
    by_config = listed(cluster, *with_config(cluster))
    by_url = listed(cluster, *with_url(cluster))
    assert {k: v["Role"] for k, v in by_url.items()} == {k: v["Role"] for k, v in by_config.items()}
    ctl_file = tmp_path / "pg_hactl.yaml"  # only the DCS section, patronictl-style
    ctl_file.write_text(f"scope: {SCOPE}\nzookeeper:\n  hosts: ['{cluster.etcd_hostport}']\n")
    by_file = {m["Member"]: m["Role"] for m in json.loads(ok(cluster, "-c", str(ctl_file), "list", "-f", "json"))}
    assert by_file == {k: v["Role"] for k, v in by_config.items()}
    # no scheme but ZooKeeper's port 2181 would mean ZooKeeper; ours is another port: name the scheme
    namespaced = listed(cluster, "--dcs-url", f"zookeeper://{cluster.etcd_hostport}/service")
    assert sorted(namespaced) == sorted(by_config)


def test_pg_hactl_ends_its_session(cluster: TestCluster) -> None:
    zk = cluster_zk(cluster)
    members = member_sessions(zk)
    assert len(members) == 3
    ok(cluster, *with_url(cluster), "list", SCOPE)
    # the session ends when pg_hactl exits, not when its timeout runs out (30 s and more);
    # nothing but the three daemons uses this server now
    wait_for(lambda: set(zk.sessions()) == members, 5, "pg_hactl's ZooKeeper session to be closed")


def cluster_zk(c: TestCluster) -> ZooKeeperServer:
    return c.zk  # type: ignore[attr-defined, no-any-return]


def test_switchover_with_the_daemons_config(cluster: TestCluster) -> None:
    old = cluster.wait_healthy()
    candidate = next(m for m in cluster.members if m is not old)
    out = ok(cluster, *with_config(cluster), "switchover", SCOPE, "--leader", old.name,
             "--candidate", candidate.name, "--force")
    assert f'Successfully switched over to "{candidate.name}"' in out, out
    assert cluster.wait_leader(60).name == candidate.name
    wait_for(old.is_streaming_replica, 90, f"{old.name} to stream from {candidate.name}")
    assert PREFIX + "failover" not in znodes(cluster_zk(cluster), PREFIX)
    assert listed(cluster, *with_url(cluster))[candidate.name]["Role"] == "Leader"


def test_switchover_with_dcs_url(cluster: TestCluster) -> None:
    old = cluster.wait_healthy()
    started = time.monotonic()
    out = ok(cluster, *with_url(cluster), "switchover", SCOPE, "--primary", old.name, "--force")
    assert "Successfully switched over to" in out, out
    new = cluster.wait_leader(60, exclude=(old.name,))
    print(f"\nswitchover by pg_hactl --dcs-url zookeeper://: {time.monotonic() - started:.2f}s to a new leader")
    cluster.wait_healthy()
    assert listed(cluster, *with_config(cluster))[new.name]["Role"] == "Leader"


def test_unreachable_zookeeper_is_one_error_line(cluster: TestCluster) -> None:
    started = time.monotonic()
    result = ctl(cluster, "--dcs-url", f"zookeeper://127.0.0.1:{free_port()}", "list", SCOPE)
    elapsed = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "ZooKeeper" in lines[0], result.stderr
    assert elapsed < 30, f"pg_hactl took {elapsed:.1f}s (its DCS calls are bounded by ctl.retry_timeout, 5 s)"
