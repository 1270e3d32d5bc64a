"""failsafe_mode on a real 3-member cluster with its own etcd, which the tests freeze
(SIGSTOP: requests time out) or kill (connection refused) for longer than the ttl.

With failsafe_mode on, a primary that reaches every member of the failsafe topology
over the REST API stays read-write through the outage and no replica promotes; if one
member's daemon is gone it demotes like without failsafe_mode. Without failsafe_mode,
the primary demotes as soon as it cannot reach etcd.

The tests share one cluster and run in file order; each starts from a healthy cluster."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster
from tests.harness.common import wait_for
from tests.harness.etcd import EtcdServer, v3_keys, v3_lease_ttl
from tests.harness.etcd import keys as etcd_keys
from tests.harness.zookeeper import ZooKeeperServer, znodes

pytestmark = pytest.mark.integration
SCOPE = "failsafe"
TTL = 10  # harness default dynamic config: ttl 10, loop_wait 2, retry_timeout 3
CONTINUE = "continue to run as a leader because failsafe mode is enabled and all members are accessible"
DEMOTE = "demoting self because DCS is not accessible and I was a leader"


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer(name="failsafe").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def cluster(etcd: EtcdServer) -> Iterator[TestCluster]:
    with running_cluster(etcd, SCOPE, dynamic={"failsafe_mode": True}, log_tail=30000) as c:
        yield c


# -- helpers ----------------------------------------------------------------------------------
def in_recovery(member: Member) -> bool | None:
    """pg_is_in_recovery() straight from PostgreSQL; None when it does not answer."""
    try:
        return bool(member.sql("SELECT pg_is_in_recovery()")[0][0])
    except Exception:  # noqa: BLE001 - stopped or restarting
        return None


def primaries(c: TestCluster) -> list[str]:
    return [m.name for m in c.members if in_recovery(m) is False]


def leader_key(etcd: EtcdServer) -> str | None:
    return etcd_keys(etcd, "etcd3", f"/service/{SCOPE}/").get(f"/service/{SCOPE}/leader")


def leader_lease(etcd: EtcdServer) -> tuple[str, int] | None:
    """(holder, lease id) of the leader key."""
    entry = v3_keys(etcd, f"/service/{SCOPE}/").get(f"/service/{SCOPE}/leader")
    return (entry["value"], entry["lease"]) if entry else None


def failsafe_key(etcd: EtcdServer) -> dict[str, str] | None:
    raw = etcd_keys(etcd, "etcd3", f"/service/{SCOPE}/").get(f"/service/{SCOPE}/failsafe")
    return json.loads(raw) if raw else None


def healthy(c: TestCluster, etcd: EtcdServer) -> Member:
    """A healthy cluster: every daemon running, one primary holding the leader key, the
    others streaming, and the failsafe key listing all three members."""
    for m in c.members:
        if not m.running:
            m.start()
    leader = c.wait_healthy(180)
    wait_for(lambda: leader_key(etcd) == leader.name and primaries(c) == [leader.name], 60,
             f"{leader.name} to hold the leader key as the only primary")
    return leader


def observe(c: TestCluster, seconds: float, each: Callable[[], None] | None = None) -> list[dict[str, bool | None]]:
    """Sample every member's pg_is_in_recovery() for `seconds` (plus `each()` per round)."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append({m.name: in_recovery(m) for m in c.members})
        if each is not None:
            each()
        time.sleep(0.3)
    return samples


def write(member: Member, value: str) -> None:
    member.sql("CREATE TABLE IF NOT EXISTS failsafe_probe(v text)")
    member.sql("INSERT INTO failsafe_probe VALUES (%s)", (value,))


def assert_primary_survives_outage(c: TestCluster, etcd: EtcdServer, leader: Member,
                                   stop: Callable[[], None], resume: Callable[[], None], tag: str) -> None:
    replicas = [m for m in c.members if m is not leader]
    before = len(leader.log())
    stop()
    stopped_at = time.monotonic()
    try:
        # longer than the ttl: without failsafe_mode the primary would have demoted by now
        samples = observe(c, TTL + 5)
        wait_for(lambda: CONTINUE in leader.log()[before:], 30, "the leader to log that it continues (failsafe)")
        write(leader, f"{tag}: written during the outage")  # read-write while etcd is down
        outage = time.monotonic() - stopped_at
        assert outage > TTL
        for sample in samples:
            assert sample[leader.name] is False, f"the primary stopped being read-write during the outage: {sample}"
            for r in replicas:
                assert sample[r.name] is not False, f"{r.name} promoted during the outage: {sample}"
        for r in replicas:  # every replica vouched for the leader
            status = r.status() or {}
            assert status.get("failsafe_mode_is_active") is True, (r.name, status)
        assert (leader.status() or {}).get("failsafe_mode_is_active") is True
    finally:
        resume()
    # etcd back: the same member holds the key on a live lease (a frozen etcd lets the old
    # lease expire, the key is seen until etcd revokes it; a restarted etcd renews leases),
    # and it stays the only primary
    def holds_live_key() -> bool:
        now = leader_lease(etcd)
        return now is not None and now[0] == leader.name and v3_lease_ttl(etcd, now[1])[1] > 0
    wait_for(holds_live_key, 60, f"{leader.name} to hold the leader key on a live lease")
    for sample in observe(c, 2 * 2 + 3):  # a few loop_waits after the DCS came back
        assert [n for n, rec in sample.items() if rec is False] == [leader.name], sample
    assert primaries(c) == [leader.name]
    assert not any("promoted self to leader" in r.log()[before:] for r in replicas)
    for r in replicas:
        wait_for(lambda r=r: r.sql("SELECT count(*) FROM failsafe_probe WHERE v LIKE %s", (f"{tag}:%",))[0][0] == 1,
                 60, f"the write made during the outage to reach {r.name}")


# -- tests --------------------------------------------------------------------------------------
def test_leader_publishes_failsafe_topology(cluster: TestCluster, etcd: EtcdServer) -> None:
    leader = healthy(cluster, etcd)
    expected = {m.name: f"http://127.0.0.1:{m.api_port}/patroni" for m in cluster.members}
    wait_for(lambda: failsafe_key(etcd) == expected, 60, "the failsafe key to list every member")
    wait_for(lambda: all(m.api("/failsafe") == (200, expected) for m in cluster.members), 30,
             "GET /failsafe on every member to return the topology")
    # a primary never vouches for another primary
    code, body = leader.api("/failsafe", "POST", {"name": "intruder", "api_url": "http://127.0.0.1:1/patroni"})
    assert (code, body) == (500, "Running as a leader")


def test_etcd_frozen_primary_stays_read_write(cluster: TestCluster, etcd: EtcdServer) -> None:
    """(a) SIGSTOP of etcd (timeouts) for longer than the ttl."""
    leader = healthy(cluster, etcd)
    wait_for(lambda: failsafe_key(etcd) is not None and len(failsafe_key(etcd) or {}) == 3, 60, "failsafe key")
    assert_primary_survives_outage(cluster, etcd, leader, etcd.pause, etcd.resume, "frozen")


def test_etcd_killed_primary_stays_read_write(cluster: TestCluster, etcd: EtcdServer) -> None:
    """(b) etcd killed (connection refused) for longer than the ttl, then started again on
    the same data directory."""
    leader = healthy(cluster, etcd)
    wait_for(lambda: len(failsafe_key(etcd) or {}) == 3, 60, "failsafe key")
    assert_primary_survives_outage(cluster, etcd, leader, etcd.kill, etcd.start, "killed")


def test_etcd_frozen_and_a_member_unreachable_primary_demotes(cluster: TestCluster, etcd: EtcdServer) -> None:
    """(c) etcd frozen and one replica's pg_ha daemon killed: the primary cannot get every
    member's consent and demotes (read-only) within ttl + a few seconds."""
    leader = healthy(cluster, etcd)
    wait_for(lambda: len(failsafe_key(etcd) or {}) == 3, 60, "failsafe key")
    victim = next(m for m in cluster.members if m is not leader)
    before = len(leader.log())
    victim.kill9(postmaster=False)  # its PostgreSQL keeps running; its REST API is gone
    etcd.pause()
    stopped_at = time.monotonic()
    try:
        wait_for(lambda: in_recovery(leader) is not False, TTL + 5, f"{leader.name} to stop being read-write")
        demoted_after = time.monotonic() - stopped_at
        print(f"failsafe: primary demoted {demoted_after:.1f}s after etcd was frozen (one member unreachable)")
        assert f"{DEMOTE} (failsafe: no consent from {victim.name})" in leader.log()[before:]
        samples = observe(cluster, TTL)
        assert all(s[m.name] is not False for s in samples for m in cluster.members), "a primary during the outage"
    finally:
        etcd.resume()
    new_leader = healthy(cluster, etcd)
    assert primaries(cluster) == [new_leader.name]


def test_failsafe_off_etcd_frozen_primary_demotes(cluster: TestCluster, etcd: EtcdServer) -> None:
    """(d) failsafe_mode switched off through PATCH /config: the primary demotes as soon as
    it cannot reach etcd (the dynamic setting takes effect without a restart)."""
    leader = healthy(cluster, etcd)
    assert leader.api("/config", "PATCH", {"failsafe_mode": False})[0] == 200
    wait_for(lambda: all(m.api("/failsafe")[0] == 502 for m in cluster.members), 30,
             "every member to apply failsafe_mode: false")
    before = len(leader.log())
    etcd.pause()
    stopped_at = time.monotonic()
    try:
        wait_for(lambda: in_recovery(leader) is not False, TTL + 5, f"{leader.name} to stop being read-write")
        print(f"failsafe off: primary demoted {time.monotonic() - stopped_at:.1f}s after etcd was frozen")
        assert DEMOTE in leader.log()[before:]
        assert CONTINUE not in leader.log()[before:]
        assert "(failsafe:" not in leader.log()[before:]
    finally:
        etcd.resume()
    healthy(cluster, etcd)
    assert cluster.members[0].api("/config", "PATCH", {"failsafe_mode": True})[0] == 200


def assert_frozen_dcs_outage_survived(c: TestCluster, leader: Member, pause: Callable[[], None],
                                      resume: Callable[[], None], key_holder: Callable[[], str | None],
                                      tag: str) -> None:
    """The other backends' run of (a): the DCS frozen past the ttl; the primary stays
    read-write and no replica promotes; afterwards the same member holds the leader key and
    stays the only primary, and the outage's write reaches the replicas."""
    replicas = [m for m in c.members if m is not leader]
    before = len(leader.log())
    pause()
    try:
        samples = observe(c, TTL + 5)
        write(leader, f"{tag}: written during the outage")
    finally:
        resume()
    assert CONTINUE in leader.log()[before:]
    for sample in samples:
        assert sample[leader.name] is False and all(sample[r.name] is not False for r in replicas), sample
    wait_for(lambda: key_holder() == leader.name, 60, f"the leader key ({tag}) held by the same member")
    for sample in observe(c, 7):
        assert [n for n, rec in sample.items() if rec is False] == [leader.name], sample
    assert not any("promoted self to leader" in r.log()[before:] for r in replicas)
    for r in replicas:
        wait_for(lambda r=r: r.sql("SELECT count(*) FROM failsafe_probe WHERE v LIKE %s", (f"{tag}:%",))[0][0] == 1,
                 60, f"the write made during the outage to reach {r.name}")


def test_etcd_v2_backend_frozen_primary_stays_read_write() -> None:
    """(a) once more on the etcd v2 API (python-etcd backend): same outcome."""
    with (EtcdServer(name="failsafe-v2") as etcd2,
          running_cluster(etcd2, SCOPE, dcs_kind="etcd", dynamic={"failsafe_mode": True}) as c):
        leader = c.wait_healthy(180)
        wait_for(lambda: len(json.loads(etcd_keys(etcd2, "etcd", f"/service/{SCOPE}/")
                                        .get(f"/service/{SCOPE}/failsafe") or "{}")) == 3,
                 60, "the failsafe key (v2)")
        assert_frozen_dcs_outage_survived(
            c, leader, etcd2.pause, etcd2.resume,
            lambda: etcd_keys(etcd2, "etcd", f"/service/{SCOPE}/").get(f"/service/{SCOPE}/leader"), "v2")


def test_zookeeper_frozen_primary_stays_read_write() -> None:
    """(a) once more on ZooKeeper (kazoo backend): the leader's session cannot be kept while
    ZooKeeper is frozen past the ttl; once ZooKeeper answers again (and expires the old
    session) the same member holds the leader znode."""
    def leader_znode() -> str | None:
        entry = znodes(zk, f"/service/{SCOPE}/").get(f"/service/{SCOPE}/leader")
        return entry[0] if entry else None

    with (ZooKeeperServer(name="failsafe-zk") as zk,
          running_cluster(zk, SCOPE, dcs_kind="zookeeper", dynamic={"failsafe_mode": True}) as c):  # type: ignore[arg-type]
        leader = c.wait_healthy(180)
        wait_for(lambda: len(json.loads((znodes(zk, f"/service/{SCOPE}/").get(f"/service/{SCOPE}/failsafe")
                                         or ("{}",))[0])) == 3, 60, "the failsafe znode")
        assert_frozen_dcs_outage_survived(c, leader, zk.pause, zk.resume, leader_znode, "zk")
