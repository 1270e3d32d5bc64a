"""The scenarios of issue 7, run against one daemon kind; every number goes into a Results."""
from __future__ import annotations

import contextlib
import json
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.common import wait_for

from . import probes, timeline
from .cluster import BenchCluster, BenchMember
from .dcs import BenchDcs
from .haproxy import HAProxy
from .kinds import Kind
from .registry import Registry
from .writer import Writer, insert_once

MAIN = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3}
DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}  # Patroni's defaults
FAST = {"ttl": 5, "loop_wait": 1, "retry_timeout": 2}  # pg_ha only: Patroni raises ttl below 20 to 20


@dataclass(frozen=True)
class Settings:
    runs: int
    quick: bool
    idle_window: float
    settle: float
    rest_requests: int
    rest_budget: float
    ctl_repeats: int
    logs_dir: Path
    steps: frozenset[str] = frozenset()  # empty: every scenario; else only these (bootstraps always run)
    dcs: str = "etcd"  # the one DCS server both daemons run on: etcd or zookeeper


@dataclass
class Results:
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: Kind, run: int, metric: str, value: float) -> None:
        self.samples.append({"kind": kind.key, "run": run, "metric": metric, "value": round(value, 4)})
        print(f"    {kind.key:<8} run {run}  {metric:<26} {value:10.3f}", flush=True)

    def detail(self, kind: Kind, run: int, what: str, data: Any) -> None:
        self.details.append({"kind": kind.key, "run": run, "what": what, "data": data})


def wall(mono: float) -> float:
    """Wall-clock time of a time.monotonic() reading (to line up with log timestamps)."""
    return time.time() - (time.monotonic() - mono)


class Cycle:
    """One run of every scenario for one kind."""

    def __init__(self, kind: Kind, run: int, settings: Settings, dcs: BenchDcs, registry: Registry,
                 results: Results) -> None:
        self.kind = kind
        self.run = run
        self.settings = settings
        self.dcs = dcs
        self.registry = registry
        self.results = results
        self.logs = settings.logs_dir / f"{kind.key}-run{run}"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- plumbing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def cluster(self, tag: str, dynamic: dict[str, Any]) -> Iterator[tuple[BenchCluster, HAProxy]]:
        scope = f"{self.kind.key.replace('_', '')}{self.run}{tag}"
        cluster = BenchCluster(self.kind, scope, self.dcs.host_port, dynamic, self.registry,
                               dcs_section=self.dcs.section)
        proxy = HAProxy(cluster.members, cluster.root, self.registry)
        try:
            proxy.start()
            yield cluster, proxy
        finally:
            proxy.stop()
            keep = self.logs / scope
            keep.mkdir(parents=True, exist_ok=True)
            if proxy.log_path.exists():
                (keep / "haproxy.log").write_bytes(proxy.log_path.read_bytes())
            cluster.cleanup(keep_logs_in=keep)

    def wanted(self, *names: str) -> bool:
        """Whether --steps selected any of these scenarios (no --steps: all of them)."""
        return not self.settings.steps or any(n in self.settings.steps for n in names)

    def step(self, name: str, fn: Callable[[], None]) -> bool:
        """Run one scenario; a failure is recorded (with the log tails) and the cycle goes on.
        A scenario --steps did not select is skipped (and counts as done)."""
        if not name.startswith("bootstrap") and not self.wanted(name):
            return True
        print(f"  [{time.strftime('%H:%M:%S')}] {self.kind.key} run {self.run}: {name}", flush=True)
        try:
            fn()
            return True
        except Exception as exc:  # noqa: BLE001 - the bench reports, it does not stop
            self.results.errors.append({"kind": self.kind.key, "run": self.run, "step": name,
                                        "error": f"{type(exc).__name__}: {exc}"})
            (self.logs / f"error-{name}.txt").write_text(traceback.format_exc())
            print(f"    !! {name} failed: {type(exc).__name__}: {exc}", flush=True)
            return False

    def add(self, metric: str, value: float) -> None:
        self.results.add(self.kind, self.run, metric, value)

    def write_timeline(self, name: str, cluster: BenchCluster, proxy: HAProxy, action: float,
                       marks: dict[str, float], end: float) -> None:
        sources = {m.name: m.log_path for m in cluster.members}
        sources["haproxy"] = proxy.log_path
        events = timeline.collect(sources, wall(action) - 2, wall(end) + 1)
        text = timeline.render(f"{self.kind.title} run {self.run}: {name}", wall(action),
                               {k: wall(v) for k, v in marks.items()}, events)
        (self.logs / f"timeline-{name}.txt").write_text(text)
        self.results.detail(self.kind, self.run, f"timeline {name}", timeline.condensed(text))

    def wait_routed(self, proxy: HAProxy, leader: BenchMember, timeout: float = 30) -> None:
        wait_for(lambda: insert_once(proxy.port) == leader.pg_port, timeout,
                 f"HAProxy to route writes to {leader.name}", interval=0.2)

    def start_writer(self, proxy: HAProxy, leader: BenchMember) -> Writer:
        self.wait_routed(proxy, leader)
        writer = Writer(proxy.port).start()
        wait_for(lambda: len(writer.acks) >= 50, 20, "a steady write stream")
        return writer

    # -- the cycle ------------------------------------------------------------------------
    def run_all(self) -> None:
        with self.cluster("a", MAIN) as (cluster, proxy):
            if not self.step("bootstrap", lambda: self.bootstrap(cluster)):
                return
            self.step("idle", lambda: self.idle(cluster))
            self.step("rest", lambda: self.rest(cluster))
            self.step("ctl_list", lambda: self.ctl_list(cluster))
            self.step("switchover", lambda: self.switchover(cluster, proxy))
            killed: list[BenchMember] = []
            if self.step("failover", lambda: killed.append(self.failover(cluster, proxy, "failover_gap_10_s"))) \
                    and killed:
                self.step("rejoin", lambda: self.rejoin(cluster, killed[0]))
            self.record_peak_memory(cluster)
        if not self.wanted("failover_30", "failover_5"):
            return
        with self.cluster("b", DEFAULTS) as (cluster, proxy):
            if self.step("bootstrap_30", lambda: self.bootstrap(cluster, "")):
                self.step("failover_30", lambda: self.failover(cluster, proxy, "failover_gap_30_s"))
        if self.kind.key == "pg_ha" and self.wanted("failover_5"):
            with self.cluster("c", FAST) as (cluster, proxy):
                if self.step("bootstrap_5", lambda: self.bootstrap(cluster, "")):
                    self.step("failover_5", lambda: self.failover(cluster, proxy, "failover_gap_5_s"))

    def bootstrap(self, cluster: BenchCluster, metric: str = "bootstrap_s") -> None:
        start = time.monotonic()
        cluster.start_all()
        cluster.wait_healthy(240)
        if metric:
            self.add(metric, time.monotonic() - start)

    def idle(self, cluster: BenchCluster) -> None:
        time.sleep(self.settings.settle)
        pids = cluster.daemon_pids()
        before = {name: probes.proc_sample(pid) for name, pid in pids.items()}
        dcs_before = self.dcs.requests(cluster.scope)
        start = time.monotonic()
        time.sleep(self.settings.idle_window)
        after = {name: probes.proc_sample(pid) for name, pid in pids.items()}
        dcs_after = self.dcs.requests(cluster.scope)
        minutes = (time.monotonic() - start) / 60
        cpu = {n: (after[n].cpu_seconds - before[n].cpu_seconds) / minutes for n in pids}
        helpers = {n: (after[n].children_seconds - before[n].children_seconds) / minutes for n in pids}
        self.add("cpu_s_per_min", statistics.mean(cpu.values()))
        self.add("rss_mb", statistics.mean(s.rss_kb for s in after.values()) / 1024)
        delta = probes.counter_delta(dcs_before, dcs_after)
        self.add(self.dcs.load_metric, sum(delta.values()) / len(pids) / minutes)
        by = "etcd_requests_per_minute_by_method" if self.dcs.kind == "etcd" else "zk_packets_per_minute_by_session"
        self.results.detail(self.kind, self.run, "idle", {
            "window_s": round(minutes * 60, 2), "cpu_s_per_min": {n: round(v, 3) for n, v in cpu.items()},
            "of_which_helpers_s_per_min": {n: round(v, 3) for n, v in helpers.items()},
            "rss_kb": {n: s.rss_kb for n, s in after.items()},
            by: {k: round(v / minutes, 1) for k, v in sorted(delta.items())}})

    def rest(self, cluster: BenchCluster) -> None:
        leader = cluster.wait_healthy(60)
        for path, key in (("/primary", "primary"), ("/patroni", "patroni")):
            load = probes.rest_load(leader.api_port, path, self.settings.rest_requests, self.settings.rest_budget)
            self.add(f"rest_{key}_rps", load.rps)
            self.add(f"rest_{key}_p99_ms", load.p99_ms)
            self.results.detail(self.kind, self.run, f"rest {path}", {
                "requests": load.count, "p50_ms": round(load.p50_ms, 3), "statuses": load.statuses,
                "server_closed": load.reconnects})

    def ctl_list(self, cluster: BenchCluster) -> None:
        if not self.kind.ctl_available:
            self.results.detail(self.kind, self.run, "ctl list", {"note": self.kind.ctl_missing_note})
            return
        argv = self.kind.ctl_argv(cluster.members[0].config_path, "list")
        timed = probes.time_command(argv, self.kind.env, self.settings.ctl_repeats)
        self.results.detail(self.kind, self.run, "ctl list", {"seconds": [round(x, 3) for x in timed.seconds],
                                                              "cpu_seconds": [round(x, 3) for x in timed.cpu_seconds],
                                                              "failures": timed.failures})
        if not timed.seconds:
            raise RuntimeError(f"{' '.join(argv)} failed: {timed.failures[0]}")
        self.add("ctl_list_s", statistics.median(timed.seconds))
        self.add("ctl_list_cpu_s", statistics.median(timed.cpu_seconds))

    def switchover(self, cluster: BenchCluster, proxy: HAProxy) -> None:
        leader = cluster.wait_healthy(60)
        candidate = sorted(cluster.replicas(leader), key=lambda m: m.name)[0]
        writer = self.start_writer(proxy, leader)
        try:
            time.sleep(1)
            action = time.monotonic()
            code, body = leader.api("/switchover", "POST", {"leader": leader.name, "candidate": candidate.name},
                                    timeout=90)
            answered = time.monotonic()
            if code != 200:
                raise RuntimeError(f"POST /switchover answered {code}: {body}")
            resumed = wait_for(lambda: writer.first_ack_after(action, port=candidate.pg_port), 60,
                               f"writes on {candidate.name}")
            time.sleep(1.5)
        finally:
            writer.stop()
        gap = writer.longest_gap(action)
        self.add("switchover_gap_s", gap.seconds)
        self.add("switchover_api_s", answered - action)
        self.write_timeline("switchover", cluster, proxy, action,
                            {"POST /switchover sent": action, "POST /switchover answered": answered,
                             "last write ack before the gap": gap.start, "first write ack after the gap": gap.end,
                             f"first write ack on {candidate.name}": resumed}, max(gap.end, answered))
        cluster.wait_healthy(120)
        self.add("switchover_rejoin_s", time.monotonic() - action)

    def failover(self, cluster: BenchCluster, proxy: HAProxy, metric: str) -> BenchMember:
        leader = cluster.wait_healthy(120)
        ttl = float(cluster.dynamic["ttl"])
        writer = self.start_writer(proxy, leader)
        try:
            time.sleep(1)
            action = time.monotonic()
            cluster.kill9(leader)
            killed = time.monotonic()
            resumed = wait_for(lambda: writer.first_ack_after(action, not_port=leader.pg_port), 3 * ttl + 60,
                               "writes on a new leader")
            time.sleep(1.5)
        finally:
            writer.stop()
        gap = writer.longest_gap(action)
        self.add(metric, gap.seconds)
        self.write_timeline(metric.removesuffix("_s"), cluster, proxy, action,
                            {"kill -9 daemon + postmaster": action, "both dead": killed,
                             "last write ack before the gap": gap.start, "first write ack after the gap": gap.end,
                             "first write ack on another member": resumed}, gap.end)
        return leader

    def rejoin(self, cluster: BenchCluster, old: BenchMember) -> None:
        leader = wait_for(cluster.leader, 60, "the new leader")
        start = time.monotonic()
        cluster.start(old)
        wait_for(lambda: old.name in leader.streaming_names() and old.receiving(), 180,
                 f"{old.name} to stream from {leader.name}",
                 interval=0.1)
        self.add("rejoin_s", time.monotonic() - start)

    def record_peak_memory(self, cluster: BenchCluster) -> None:
        peaks = {}
        for name, pid in cluster.daemon_pids().items():
            with contextlib.suppress(OSError):
                peaks[name] = probes.proc_sample(pid).hwm_kb
        if peaks:
            self.add("hwm_mb", max(peaks.values()) / 1024)


def save(results: Results, path: Path, extra: dict[str, Any]) -> None:
    path.write_text(json.dumps({**extra, "samples": results.samples, "errors": results.errors,
                                "details": results.details}, indent=1))
