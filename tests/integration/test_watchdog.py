"""Watchdog on real etcd + PostgreSQL: a frozen leader daemon (SIGSTOP longer than the ttl) is
fenced by the testing driver's fencing process before any other member is promoted, and rejoins
as a replica once it runs again; in mode required a member without a usable watchdog never
becomes the leader."""
from __future__ import annotations

import base64
import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster
from tests.harness.common import pid_alive, wait_for
from tests.harness.etcd import EtcdServer, v3_post

pytestmark = pytest.mark.integration
TTL = 10
SAFETY_MARGIN = 5  # watchdog timeout: 5 s after the last keepalive, the lease lives 10 s
_scopes = itertools.count()  # each test its own scope: the shared etcd keeps `initialize` of the last one


def fence_pids(m: Member) -> list[int]:
    """The testing driver's fencing processes guarding this member's data directory."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"watchdog/fence.py") for a in argv) and str(m.data_dir).encode() in argv \
                and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def leader_key(etcd: EtcdServer, scope: str) -> str | None:
    key = base64.b64encode(f"/service/{scope}/leader".encode()).decode()
    kvs = v3_post(etcd, "/v3/kv/range", {"key": key}).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def postmaster_pid(m: Member) -> int:
    return int((m.data_dir / "postmaster.pid").read_text().splitlines()[0])


def in_recovery(m: Member) -> bool | None:
    try:
        conn = m.connect(timeout=1)
    except Exception:  # noqa: BLE001 - down or starting
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def with_watchdog(c: TestCluster, watchdog: dict[str, object], names: tuple[str, ...] | None = None) -> None:
    for m in c.members:
        if names is None or m.name in names:
            m.config["watchdog"] = watchdog
            m.write_config()


@pytest.fixture
def fenced_cluster(etcd_server: EtcdServer) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, f"wdfence{next(_scopes)}", start=False, log_tail=30000,
                         dynamic={"ttl": TTL, "loop_wait": 2, "retry_timeout": 3}) as c:
        with_watchdog(c, {"mode": "required", "driver": "testing", "safety_margin": SAFETY_MARGIN})
        try:
            yield c
        finally:
            for m in c.members:  # never leave a daemon stopped: its cleanup would hang
                if m.proc is not None and m.proc.poll() is None:
                    os.kill(m.proc.pid, signal.SIGCONT)
    # a fencing process outlives an unclean daemon exit by design (as a hardware watchdog
    # would): make sure none is left behind
    for m in c.members:
        for pid in fence_pids(m):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda m=m: not fence_pids(m), 10, f"no fencing process left for {m.name}")


def test_frozen_leader_is_fenced_before_another_member_is_promoted(fenced_cluster: TestCluster,
                                                                    etcd_server: EtcdServer) -> None:
    c = fenced_cluster
    c.start()
    old = c.wait_healthy()
    others = [m for m in c.members if m is not old]
    wait_for(lambda: "watchdog armed" in old.log(), 30, "the leader to arm its watchdog")
    wait_for(lambda: len(fence_pids(old)) == 1, 10, "one fencing process for the leader")
    assert all(not fence_pids(m) for m in others), "replicas run no watchdog"
    assert all("watchdog armed" not in m.log() for m in others)
    postmaster = postmaster_pid(old)
    assert pid_alive(postmaster)
    assert old.proc is not None

    os.kill(old.proc.pid, signal.SIGSTOP)  # the daemon only: PostgreSQL and the fencing process run on
    stopped_at = time.monotonic()
    fenced_at = new_key_at = promoted_at = None
    new_leader = None
    try:
        deadline = stopped_at + 90
        while time.monotonic() < deadline:
            now = time.monotonic()
            if fenced_at is None and not pid_alive(postmaster):
                fenced_at = now
            holder = leader_key(etcd_server, c.scope)
            if new_key_at is None and holder not in (None, old.name):
                new_key_at, new_leader = now, holder
            if promoted_at is None:
                for m in others:
                    if in_recovery(m) is False:
                        promoted_at = time.monotonic()
                        new_leader = new_leader or m.name
            # frozen for longer than the ttl, and a new primary exists (a fence after that is too late)
            if new_key_at is not None and promoted_at is not None and now - stopped_at > TTL + 2:
                break
            time.sleep(0.05)
        frozen_for = time.monotonic() - stopped_at
    finally:
        os.kill(old.proc.pid, signal.SIGCONT)

    def since(t: float | None) -> str:
        return "never" if t is None else f"{t - stopped_at:.2f} s"
    report = (f"fenced after {since(fenced_at)}, new leader key after {since(new_key_at)}, "
              f"promoted after {since(promoted_at)}, frozen for {frozen_for:.1f} s")
    print(report)
    assert fenced_at is not None, f"the frozen leader's PostgreSQL was not fenced: {report}"
    assert new_key_at is not None and promoted_at is not None, f"no failover: {report}"
    assert frozen_for > TTL, report
    assert fenced_at < new_key_at, f"another member took the leader key before the fence: {report}"
    assert fenced_at < promoted_at, f"another member was promoted before the fence: {report}"
    assert fenced_at - stopped_at <= TTL, f"fenced after the leader key could have expired: {report}"
    assert "no keepalive for 5 s: fencing: SIGKILL sent to postmaster" in old.log()

    # once running again, the old leader notices it was fenced and rejoins as a replica
    leader = c.member(new_leader)
    wait_for(lambda: "the watchdog fired while this daemon did not keep it alive" in old.log(), 30,
             "the old leader to notice the fence")
    wait_for(old.is_streaming_replica, 120, "the fenced leader to stream from the new leader")
    assert c.leader() is leader
    assert not fence_pids(old), "a replica runs no watchdog"
    wait_for(lambda: len(fence_pids(leader)) == 1, 30, "the new leader to arm its watchdog")
    assert old.sql("SELECT pg_is_in_recovery()")[0][0] is True


@pytest.fixture
def unusable_cluster(etcd_server: EtcdServer) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, f"wdreq{next(_scopes)}", size=2, start=False,
                         dynamic={"ttl": TTL, "loop_wait": 2, "retry_timeout": 3}) as c:
        with_watchdog(c, {"mode": "required", "device": str(c.root / "no-such-watchdog")}, names=(c.members[1].name,))
        yield c


def test_required_without_usable_device_never_becomes_leader(unusable_cluster: TestCluster,
                                                             etcd_server: EtcdServer) -> None:
    c = unusable_cluster
    pg0, pg1 = c.members
    refusal = "the watchdog is not usable and watchdog mode is required"
    # alone, pg1 does not even bootstrap a new cluster
    pg1.start()
    wait_for(lambda: pg1.log().count("waiting for leader to bootstrap (the watchdog is not usable") >= 2, 60,
             "pg1 to refuse to bootstrap")
    assert leader_key(etcd_server, c.scope) is None
    assert not (pg1.data_dir / "PG_VERSION").exists()
    # pg0 (no watchdog) bootstraps, pg1 clones and streams from it
    pg0.start()
    c.wait_healthy()
    assert c.leader() is pg0
    # the leader dies: pg1 is the only candidate, but may not promote
    pg0.kill9()
    wait_for(lambda: leader_key(etcd_server, c.scope) is None, 3 * TTL, "the leader key to expire")
    before = pg1.log().count(refusal)
    wait_for(lambda: pg1.log().count(refusal) >= before + 3, 60, "pg1 to refuse the leader race three times")
    assert leader_key(etcd_server, c.scope) is None
    assert in_recovery(pg1) is True
    assert "watchdog is not usable" in pg1.log() and str(c.root / "no-such-watchdog") in pg1.log()
    # a manual failover to pg1 is refused too
    pg1.api("/failover", method="POST", body={"candidate": pg1.name}, timeout=30)
    wait_for(lambda: "I am the candidate but the watchdog is not usable" in pg1.log(), 30,
             "pg1 to refuse the manual failover")
    assert leader_key(etcd_server, c.scope) is None
    assert in_recovery(pg1) is True


def test_watchdog_follows_pause_and_switchover(fenced_cluster: TestCluster) -> None:
    c = fenced_cluster
    c.start()
    leader = c.wait_healthy()
    wait_for(lambda: len(fence_pids(leader)) == 1, 30, "the leader to arm its watchdog")
    # pause: the daemon does not manage PostgreSQL, so nothing may fence it
    assert leader.api("/config", method="PATCH", body={"pause": True})[0] == 200
    wait_for(lambda: not fence_pids(leader), 30, "the watchdog to be disarmed in pause")
    assert "watchdog disarmed" in leader.log()
    assert "magic close: disarmed" in leader.log(), "a clean stop of the fencing process"
    assert leader.is_primary() and c.leader() is leader
    assert leader.api("/config", method="PATCH", body={"pause": False})[0] == 200
    wait_for(lambda: len(fence_pids(leader)) == 1, 30, "the watchdog to be armed again after pause")
    # switchover: the new leader arms before it promotes, the old one disarms when it steps down
    candidate = next(m for m in c.members if m is not leader)
    code, _ = leader.api("/switchover", method="POST", body={"leader": leader.name, "candidate": candidate.name},
                         timeout=90)
    assert code == 200
    wait_for(lambda: c.leader() is candidate, 60, f"{candidate.name} to lead")
    wait_for(lambda: len(fence_pids(candidate)) == 1, 30, "the new leader to arm its watchdog")
    wait_for(lambda: not fence_pids(leader), 30, "the old leader to disarm")
    wait_for(leader.is_streaming_replica, 120, "the old leader to stream from the new one")
    assert not fence_pids(leader)
    log = candidate.log()
    assert log.index("watchdog armed") < log.index("promoted self to leader"), "armed before promotion"
    assert "fencing: SIGKILL" not in "".join(m.log() for m in c.members), "nothing was fenced"
