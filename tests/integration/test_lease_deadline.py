"""The leader lease deadline on real etcd + PostgreSQL 15 (harness: ttl 10, loop_wait 2,
retry_timeout 3, so the deadline is 7.5 s after the last renewal was sent, 2.5 s before the
lease can expire).

The member under test talks to etcd through a proxy that the test freezes (every DCS
request hangs); the test reads etcd directly and measures when the lease really expires
there (the leader key vanishes, `lease timetolive` says -1). Each path is blocked and the
primary must be read-only (stopped or in recovery) and /primary must answer 503 before that:
- a hung DCS call (the loop's own outage path or the guard, whichever comes first);
- a slow promotion (pg_ctl promote held by a wrapper bin_dir): the loop keeps renewing
  meanwhile; once the DCS hangs too, the guard stops the half-promoted server;
- a long restart (POST /restart whose `pg_ctl stop -m fast` is held): the loop keeps
  renewing; once the DCS hangs, the outage path does nothing while busy, the guard stops it.
Timings are printed (pytest -s) relative to the freeze."""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness.cluster import Member, TestCluster, running_cluster
from tests.harness.common import wait_for
from tests.harness.etcd import EtcdServer, v3_keys, v3_lease_ttl
from tests.harness.proxy import FreezableProxy

pytestmark = pytest.mark.integration
BIN = Path("/usr/lib/postgresql/15/bin")
TTL = 10
MARGIN = 2.5  # core/lease.py: min(5, ttl / 4)

PG_CTL = """#!/bin/sh
# pg_ctl held while the test's flag file exists (at most 120 s)
case "$1" in
  promote) f={flags}/slow_promote ;;
  stop) case " $* " in *" -m fast "*) f={flags}/slow_stop ;; *) f= ;; esac ;;
  *) f= ;;
esac
if [ -n "$f" ]; then
  i=0
  while [ -e "$f" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
fi
exec {real} "$@"
"""


@pytest.fixture
def proxy(own_etcd: EtcdServer) -> Iterator[FreezableProxy]:
    p = FreezableProxy(own_etcd.host_port)
    try:
        yield p
    finally:
        p.close()


def through_proxy(m: Member, proxy: FreezableProxy, slow_bin: bool = False) -> None:
    """`m` reaches etcd only through `proxy`; with slow_bin its pg_ctl is the wrapper."""
    m.config["etcd3"]["hosts"] = [proxy.host_port]
    if slow_bin:
        bindir = m.workdir / "bin"
        bindir.mkdir()
        for exe in BIN.iterdir():
            if exe.name != "pg_ctl":
                (bindir / exe.name).symlink_to(exe)
        wrapper = bindir / "pg_ctl"
        wrapper.write_text(PG_CTL.format(flags=m.workdir, real=BIN / "pg_ctl"))
        wrapper.chmod(0o755)
        shutil.chown(bindir, "postgres", "postgres")
        m.config["postgresql"]["bin_dir"] = str(bindir)
    m.write_config()


def flag(m: Member, name: str, on: bool) -> None:
    path = m.workdir / name
    if on:
        path.write_text("")
    elif path.exists():
        path.unlink()


def primary_code(m: Member) -> int | None:
    try:
        return m.api("/primary", timeout=1)[0]
    except OSError:
        return None


def in_recovery(m: Member) -> bool | None:
    """pg_is_in_recovery(); None when PostgreSQL does not answer (stopped)."""
    try:
        conn = m.connect(timeout=1)
    except Exception:  # noqa: BLE001 - stopped
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            return bool(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 - shutting down
        return None
    finally:
        conn.close()


def leader(etcd: EtcdServer, scope: str) -> dict[str, Any] | None:
    return v3_keys(etcd, f"/service/{scope}/").get(f"/service/{scope}/leader")


class Timeline:
    """Samples a frozen member until its lease expired in etcd; times relative to the freeze."""

    def __init__(self, m: Member, etcd: EtcdServer, scope: str, lease: int) -> None:
        self.m, self.etcd, self.scope, self.lease = m, etcd, scope, lease
        self.t0 = time.monotonic()
        self.first: dict[str, float] = {}
        self.primary_seen: list[float] = []  # pg_is_in_recovery() false
        self.code_200: list[float] = []
        _, remaining = v3_lease_ttl(etcd, lease)
        self.expiry_estimate = time.monotonic() - self.t0 + remaining  # timetolive right after the freeze

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> bool:
        """One round; True once the lease expired in etcd."""
        code = primary_code(self.m)
        t = self.now()
        if code == 200:
            self.code_200.append(t)
        else:
            self.first.setdefault("primary_503", t)
        rec = in_recovery(self.m)
        t = self.now()
        if rec is False:
            self.primary_seen.append(t)
        else:
            self.first.setdefault("read_only", t)
        if rec is None:
            self.first.setdefault("stopped", t)
        _, remaining = v3_lease_ttl(self.etcd, self.lease)
        key = leader(self.etcd, self.scope)
        t = self.now()
        if remaining < 0 or key is None or key["lease"] != self.lease:
            self.first.setdefault("lease_expired", t)
            return True
        return False

    def run(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.sample():
            assert time.monotonic() < deadline, "the lease did not expire in etcd"
            time.sleep(0.05)

    def report(self, what: str) -> str:
        f = self.first
        return (f"{what}: freeze at 0.0 s; /primary 503 at {f.get('primary_503', float('nan')):.1f} s; "
                f"read-only at {f.get('read_only', float('nan')):.1f} s; PostgreSQL stopped at "
                f"{f.get('stopped', float('nan')):.1f} s; lease expired in etcd at "
                f"{f['lease_expired']:.1f} s (timetolive right after the freeze: {self.expiry_estimate:.0f} s); "
                f"last writable sample {max(self.primary_seen, default=float('nan')):.1f} s")

    def check(self) -> None:
        expired = self.first["lease_expired"]
        assert "read_only" in self.first and self.first["read_only"] < expired
        assert "primary_503" in self.first and self.first["primary_503"] < expired
        assert all(t < self.first["read_only"] for t in self.primary_seen)
        assert all(t < self.first["primary_503"] for t in self.code_200)


@contextmanager
def single_member(etcd: EtcdServer, proxy: FreezableProxy, scope: str, slow_bin: bool) -> Iterator[TestCluster]:
    with running_cluster(etcd, scope, size=1, start=False) as c:
        m = c.members[0]
        through_proxy(m, proxy, slow_bin)
        m.start()
        wait_for(lambda: m.is_primary() and in_recovery(m) is False, 120, f"{m.name} primary")
        yield c


def test_hung_dcs_call(own_etcd: EtcdServer, proxy: FreezableProxy) -> None:
    scope = "lease-hung"
    with single_member(own_etcd, proxy, scope, slow_bin=False) as c:
        m = c.members[0]
        key = wait_for(lambda: leader(own_etcd, scope), 30, "leader key")
        proxy.freeze()
        tl = Timeline(m, own_etcd, scope, key["lease"])
        tl.run()
        print(tl.report("hung DCS call"))
        tl.check()
        proxy.thaw()


def test_slow_promotion(own_etcd: EtcdServer, proxy: FreezableProxy) -> None:
    scope = "lease-promote"
    with running_cluster(own_etcd, scope, size=2, start=False) as c:
        first, second = c.members
        through_proxy(second, proxy, slow_bin=True)
        first.start()
        wait_for(lambda: first.is_primary(), 120, f"{first.name} primary")
        second.start()
        c.wait_streaming([second], 120)
        flag(second, "slow_promote", True)
        first.stop()  # clean shutdown: the key is released at once, the second takes it
        key = wait_for(lambda: (k := leader(own_etcd, scope)) and k["value"] == second.name and k, 60,
                       "the second member to take the leader key")
        started = time.monotonic()
        # the promotion hangs in pg_ctl promote for longer than the ttl; the loop keeps renewing
        while time.monotonic() - started < TTL + 2:
            _, remaining = v3_lease_ttl(own_etcd, key["lease"])
            assert remaining > 0 and (leader(own_etcd, scope) or {}).get("lease") == key["lease"], \
                "the lease was not renewed during the promotion"
            assert in_recovery(second) is True and primary_code(second) != 200
            time.sleep(0.5)
        print(f"slow promotion: lease renewed for {time.monotonic() - started:.1f} s while pg_ctl promote hung")
        assert "promoting" in second.log()
        proxy.freeze()
        tl = Timeline(second, own_etcd, scope, key["lease"])
        tl.run()
        flag(second, "slow_promote", False)  # pg_ctl promote goes on now: the server must stay down
        wait_for(lambda: "pg_ctl promote failed" in second.log() or "cannot promote" in second.log()
                 or "not promoting self" in second.log(), 30, "the held promotion to fail")
        for _ in range(10):
            tl.sample()
            time.sleep(0.2)
        print(tl.report("slow promotion + hung DCS"))
        tl.check()
        assert not tl.primary_seen, "the member left recovery"
        assert tl.first["stopped"] < tl.first["lease_expired"], "the half-promoted server was not stopped in time"
        assert "leader lease was not renewed before its deadline" in second.log()
        proxy.thaw()


def test_long_restart(own_etcd: EtcdServer, proxy: FreezableProxy) -> None:
    scope = "lease-restart"
    with single_member(own_etcd, proxy, scope, slow_bin=True) as c:
        m = c.members[0]
        key = wait_for(lambda: leader(own_etcd, scope), 30, "leader key")
        flag(m, "slow_stop", True)
        answer: list[Any] = []
        restart = threading.Thread(target=lambda: answer.append(m.api("/restart", "POST", {}, timeout=150)),
                                   daemon=True)
        restart.start()
        wait_for(lambda: "stopping PostgreSQL (mode fast)" in m.log(), 30, "the restart to stop PostgreSQL")
        started = time.monotonic()
        while time.monotonic() - started < TTL + 2:  # the restart hangs; the loop keeps renewing
            _, remaining = v3_lease_ttl(own_etcd, key["lease"])
            assert remaining > 0, "the lease was not renewed during the restart"
            time.sleep(0.5)
        assert in_recovery(m) is False  # still the primary, held in its fast shutdown
        print(f"long restart: lease renewed for {time.monotonic() - started:.1f} s while pg_ctl stop hung")
        proxy.freeze()
        tl = Timeline(m, own_etcd, scope, key["lease"])
        tl.run()
        print(tl.report("long restart + hung DCS"))
        tl.check()
        assert "leader lease was not renewed before its deadline" in m.log()
        flag(m, "slow_stop", False)
        restart.join(150)
        proxy.thaw()
