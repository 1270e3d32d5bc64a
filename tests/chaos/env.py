"""One test bed: a 3-member etcd cluster, a 3-member pg_ha cluster whose members know all
three etcd endpoints, and HAProxy in front. Everything started here is stopped by PID in
cleanup(), whatever state a fault left it in (paused processes are resumed first)."""
from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.cluster import Member, TestCluster, member_config
from tests.harness.common import free_port, pid_alive, wait_for

from .etcd_cluster import EtcdCluster
from .haproxy import HAProxy
from .netfault import etcd_address, pg_address, remove_leftovers
from .prober import PROBE_TABLE

MODES: dict[str, dict[str, Any]] = {
    "async": {},
    "sync_strict": {"synchronous_mode": True, "synchronous_mode_strict": True},
    "quorum": {"synchronous_mode": "quorum", "synchronous_node_count": 1},
    "async_watchdog": {},  # asynchronous, every member with watchdog mode required (testing driver)
}
WATCHDOG_MODES = {"async_watchdog": "required"}
TTL = 10
MAX_MEMBERS = 8


class ChaosEnv:
    def __init__(self, mode: str, scope: str, size: int = 3, log_dir: Path | None = None) -> None:
        self.mode = mode
        self.scope = scope
        self.log_dir = log_dir
        self.dynamic: dict[str, Any] = {"ttl": TTL, "loop_wait": 2, "retry_timeout": 3,
                                        "maximum_lag_on_failover": 1048576, **MODES[mode]}
        self.etcd = EtcdCluster(extra_hosts=[etcd_address(i) for i in range(MAX_MEMBERS)])
        self.cluster = TestCluster(self.etcd.hosts[0], scope=scope, size=size, dcs_kind="etcd3",
                                   dynamic=self.dynamic)
        self.index: dict[str, int] = {}
        for member in self.cluster.members:
            self._use_all_etcd(member)
        self.haproxy = HAProxy(self.cluster.root, self.servers())
        self.stopped_pids: set[int] = set()
        self.cleanups: list[Callable[[], None]] = []  # undo steps a fault registers (mounts...)

    # -- setup ----------------------------------------------------------------------
    def _use_all_etcd(self, member: Member) -> None:
        """All three etcd members, through this member's own etcd address; PostgreSQL also on
        its own address, published as connect_address (see netfault.py)."""
        index = self.index.setdefault(member.name, len(self.index))
        assert index < MAX_MEMBERS, "more members than loopback addresses"
        member.config["etcd3"]["hosts"] = self.etcd.hosts_via(etcd_address(index))
        pg = member.config["postgresql"]
        pg["listen"] = f"127.0.0.1,{pg_address(index)}:{member.pg_port}"
        pg["connect_address"] = f"{pg_address(index)}:{member.pg_port}"
        watchdog = WATCHDOG_MODES.get(self.mode) or os.environ.get("CHAOS_WATCHDOG")
        if watchdog:  # e.g. CHAOS_WATCHDOG=required: the testing driver fences (a process SIGKILLs the postmaster)
            # safety_margin 2: timeout 8 s >= loop_wait 2 + retry_timeout 3 + failsafe consent 3 (with 5,
            # etcd_sigstop_failsafe fenced the primary before the members' consent could keep it)
            member.config["watchdog"] = {"mode": watchdog, "driver": "testing", "safety_margin": 2}
        member.write_config()

    def servers(self) -> list[tuple[str, int, int]]:
        return [(m.name, m.pg_port, m.api_port) for m in self.cluster.members]

    def start(self, timeout: float = 180) -> None:
        self.etcd.start()
        self.cluster.start()
        leader = self.cluster.wait_healthy(timeout)
        wait_for(lambda: leader.sql(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE}(member text, ts timestamptz "
                                    "DEFAULT clock_timestamp())") is not None, 30, "probe table")
        self.haproxy.start()
        self.haproxy.wait_only_up(leader.name)

    @property
    def sync_path(self) -> str:
        """The health path of a member the sync key names: /quorum for quorum voters."""
        return "/quorum" if self.dynamic.get("synchronous_mode") == "quorum" else "/sync"

    def sync_standbys(self) -> list[str]:
        """Members whose REST API says they are the synchronous standby (the DCS sync key)."""
        names = []
        for m in self.running_members():
            try:
                if m.api(self.sync_path, timeout=2)[0] == 200:
                    names.append(m.name)
            except OSError:
                pass
        return names

    def sync_available(self, timeout: float = 40) -> bool:
        """Synchronous mode works if the leader names a synchronous standby in the sync key."""
        try:
            self.wait_healthy(timeout)
        except AssertionError:
            return False
        return True

    def add_member(self, name: str, extra_pg: dict[str, Any] | None = None) -> Member:
        workdir = self.cluster.root / name
        workdir.mkdir(mode=0o700)
        shutil.chown(workdir, "postgres", "postgres")
        config = member_config(self.scope, name, workdir, free_port(), free_port(), "etcd3", self.etcd.hosts[0],
                               dynamic=self.dynamic)
        config["postgresql"].update(extra_pg or {})
        member = Member(name, workdir, config)
        self._use_all_etcd(member)
        self.cluster.members.append(member)
        return member

    def remove_member(self, member: Member) -> None:
        member.cleanup()
        self.cluster.members.remove(member)

    # -- process control ------------------------------------------------------------
    def stop_pid(self, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        self.stopped_pids.add(pid)

    def cont_pid(self, pid: int) -> None:
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
        self.stopped_pids.discard(pid)

    def leader(self, timeout: float = 90, exclude: tuple[str, ...] = ()) -> Member:
        return self.cluster.wait_leader(timeout, exclude)

    def running_members(self) -> list[Member]:
        return [m for m in self.cluster.members if m.running]

    def wait_healthy(self, timeout: float = 180) -> Member:
        """One leader, every running member streaming; in synchronous mode also a synchronous
        standby named in the sync key (a fault before that leaves no promotable member)."""
        deadline = time.monotonic() + timeout
        leader = self.cluster.wait_healthy(timeout)
        if self.synchronous:
            wait_for(self.sync_standbys, max(1.0, deadline - time.monotonic()), "a synchronous standby in DCS")
        return leader

    @property
    def synchronous(self) -> bool:
        """A synchronous mode (strict or quorum): faults wait for a synchronous standby."""
        return bool(MODES[self.mode].get("synchronous_mode"))

    def save_logs(self, label: str) -> None:
        if self.log_dir is None:
            return
        target = self.log_dir / label
        target.mkdir(parents=True, exist_ok=True)
        for m in self.cluster.members:
            shutil.copy(m.log_path, target / f"{m.name}.log") if m.log_path.exists() else None
            pg_logs = sorted((m.data_dir / "log").glob("*.log")) if (m.data_dir / "log").is_dir() else []
            for pg_log in pg_logs:
                shutil.copy(pg_log, target / f"{m.name}.postgresql.{pg_log.name}")
        for s in self.etcd.servers:
            shutil.copy(s.log_path, target / f"{s.name}.log") if s.log_path.exists() else None
        if self.haproxy.log_path.exists():
            shutil.copy(self.haproxy.log_path, target / "haproxy.log")

    def cleanup(self) -> None:
        for pid in list(self.stopped_pids):
            try:
                self.cont_pid(pid)
            except OSError:
                pass
        self.etcd.resume_all()
        for step in (remove_leftovers, self.haproxy.stop, self.cluster.cleanup, self.etcd.cleanup,
                     *reversed(self.cleanups)):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean the rest anyway
                print(f"cleanup: {step.__qualname__} failed: {exc!r}")


def now() -> float:
    return time.time()
