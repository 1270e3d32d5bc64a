"""Measurements that do not depend on the daemon kind: /proc, etcd's /metrics, REST load, CLI time."""
from __future__ import annotations

import http.client
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # utime + stime + cutime + cstime: the daemon and the helpers it waited for
    children_seconds: float  # cutime + cstime alone
    rss_kb: int
    hwm_kb: int


def proc_sample(pid: int) -> ProcSample:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    children = int(fields[13]) + int(fields[14])  # cutime, cstime: fields 16 and 17
    status = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    return ProcSample((own + children) / CLK_TCK, children / CLK_TCK, _kb(status.get("VmRSS")),
                      _kb(status.get("VmHWM")))


def _kb(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


METRIC_LINE = re.compile(r"^(grpc_server_msg_received_total|etcd_http_received_total)(\{[^}]*\})?\s+(\S+)$")
METHOD = re.compile(r'(?:grpc_)?method="([^"]+)"')


def etcd_requests(client_url: str) -> dict[str, float]:
    """Client requests etcd received so far, per method: every gRPC message (unary calls, watch
    creates, lease keep-alives; the v3 JSON gateway goes through gRPC) plus every v2 HTTP request."""
    with urllib.request.urlopen(f"{client_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if not match:
            continue
        method = METHOD.search(match.group(2) or "")
        api = "v3" if match.group(1).startswith("grpc") else "v2"
        key = f"{api} {method.group(1) if method else '?'}"
        counts[key] = counts.get(key, 0.0) + float(match.group(3))
    return counts


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after if after.get(k, 0.0) != before.get(k, 0.0)}


@dataclass(frozen=True)
class RestLoad:
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    count: int
    reconnects: int  # responses after which the server closed the connection


def rest_load(port: int, path: str, requests: int, budget: float, warmup: int = 50) -> RestLoad:
    """`requests` sequential GETs on one keep-alive connection, or as many as fit in `budget`
    seconds (http.client reconnects by itself if the server closes it; those closes are counted)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    closes = 0
    deadline = time.monotonic() + budget
    try:
        for i in range(warmup + requests):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - start
            if resp.will_close:
                closes += 1
            if i >= warmup:
                latencies.append(elapsed)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
    finally:
        conn.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * len(latencies))) - 1)]
    return RestLoad(rps=len(latencies) / sum(latencies), p50_ms=statistics.median(latencies) * 1000,
                    p99_ms=p99 * 1000, statuses=statuses, count=len(latencies), reconnects=closes)


@dataclass(frozen=True)
class Timed:
    seconds: list[float]
    cpu_seconds: list[float]  # user + system time of the command (less sensitive to machine load)
    failures: list[str]


def run_timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s, exit code, output) of one run, CPU from wait4's rusage."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return elapsed, usage.ru_utime + usage.ru_stime, proc.returncode, text


def time_command(argv: list[str], env: dict[str, str], repeats: int, warmup: int = 1) -> Timed:
    """Wall and CPU time of `argv` run `repeats` times after `warmup` uncounted runs."""
    seconds: list[float] = []
    cpu: list[float] = []
    failures: list[str] = []
    for i in range(warmup + repeats):
        elapsed, used, code, output = run_timed(argv, env)
        if code != 0:
            failures.append(f"rc={code}: {output.strip()[-300:]}")
        elif i >= warmup:
            seconds.append(elapsed)
            cpu.append(used)
    return Timed(seconds, cpu, failures)


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)
