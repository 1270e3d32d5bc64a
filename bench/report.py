"""docs/BENCHMARKS.md from a results document (what bench/__main__.py saves as results.json)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from .haproxy import CHECK


@dataclass(frozen=True)
class Target:
    op: str  # "<=", "<", ">=" on pg_ha's median, or "ratio<=", "ratio>=" on pg_ha/Patroni
    value: float
    text: str

    def met(self, pg_ha: float | None, patroni: float | None) -> bool | None:
        if pg_ha is None:
            return None
        if self.op.startswith("ratio"):
            if not patroni:
                return None
            measured, op = pg_ha / patroni, self.op[5:]
        else:
            measured, op = pg_ha, self.op
        return {"<=": measured <= self.value, "<": measured < self.value, ">=": measured >= self.value}[op]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    digits: int
    targets: tuple[Target, ...] = ()
    short: str = ""  # name in the targets summary


@dataclass(frozen=True)
class Scenario:
    title: str
    text: str
    metrics: tuple[Metric, ...]


SCENARIOS = (
    Scenario("Bootstrap", "Start of the three daemons on empty data directories (ttl=10, loop_wait=2, "
             "retry_timeout=3) until one member answers `/primary` with 200 and both others stream from it "
             "(the primary's `pg_stat_replication` and each replica's `pg_stat_wal_receiver`).",
             (Metric("bootstrap_s", "3 members to healthy (s)", 2),)),
    Scenario("Switchover write gap", "`POST /switchover` to the leader (leader and candidate named) while the "
             "client inserts through HAProxy; gap = longest interval between two acknowledged inserts.",
             (Metric("switchover_gap_s", "write gap (s)", 2,
                     (Target("<=", 1.5, "≤ 1.5 s"), Target("ratio<=", 0.4, "≤ 0.4 × Patroni")),
                     "switchover write gap"),
              Metric("switchover_api_s", "POST /switchover answered after (s)", 2),
              Metric("switchover_rejoin_s", "until the old primary streams again (s)", 2))),
    Scenario("Failover write gap, ttl=10 / loop_wait=2 / retry_timeout=3",
             "kill -9 of the leader's daemon (process group) and postmaster while the client inserts. "
             "Patroni raises a ttl below 20 s to 20 s (`_validate_and_adjust_timeouts` in its config.py), "
             "so its row runs at an effective ttl of 20 s.",
             (Metric("failover_gap_10_s", "write gap (s)", 2, (Target("<=", 12, "≤ ttl + 2 s = 12 s"),),
                     "failover write gap at ttl=10"),)),
    Scenario("Failover write gap, ttl=30 / loop_wait=10 / retry_timeout=10 (Patroni's defaults)",
             "As above, on a cluster bootstrapped with Patroni's default timings.",
             (Metric("failover_gap_30_s", "write gap (s)", 2, (Target("<=", 32, "≤ ttl + 2 s = 32 s"),),
                     "failover write gap at ttl=30"),)),
    Scenario("Failover write gap, ttl=5 / loop_wait=1 / retry_timeout=2 (pg_ha only)",
             "As above; Patroni is not run: it would raise the ttl to 20 s.",
             (Metric("failover_gap_5_s", "write gap (s)", 2, (Target("<=", 7, "≤ 7 s"),),
                     "failover write gap at ttl=5"),)),
    Scenario("Rejoin of the old primary", "After the ttl=10 failover: the killed member's daemon is started "
             "again; time until the new leader's `pg_stat_replication` and its own `pg_stat_wal_receiver` show it "
             "streaming.",
             (Metric("rejoin_s", "start to streaming (s)", 2, (Target("<=", 5, "≤ 5 s"),),
                     "rejoin of the old primary"),)),
    Scenario("REST API", "Sequential GETs to the leader on one keep-alive connection (`http.client`), "
             "after 50 warm-up requests.",
             (Metric("rest_primary_rps", "GET /primary requests/s", 0, (Target("ratio>=", 3, "≥ 3 × Patroni"),),
                     "GET /primary requests/s"),
              Metric("rest_primary_p99_ms", "GET /primary p99 (ms)", 2, (Target("<", 3, "< 3 ms"),),
                     "GET /primary p99"),
              Metric("rest_patroni_rps", "GET /patroni requests/s", 0),
              Metric("rest_patroni_p99_ms", "GET /patroni p99 (ms)", 2))),
    Scenario("Daemon at idle", "Healthy cluster, HAProxy checking every second, no client. Mean over the "
             "three members of VmRSS (end of the window) and of CPU seconds (utime+stime of the daemon "
             "and of the helpers it waited for, from /proc/PID/stat) per minute; peak = largest VmHWM "
             "after all scenarios of the ttl=10 cluster.",
             (Metric("rss_mb", "RSS (MB)", 1, (Target("<=", 30, "≤ 30 MB"),), "daemon RSS"),
              Metric("hwm_mb", "peak RSS (MB)", 1),
              Metric("cpu_s_per_min", "CPU s per idle minute", 2,
                     (Target("ratio<=", 0.5, "≤ 0.5 × Patroni"),), "idle CPU"))),
    Scenario("CLI", "`patronictl -c CONFIG list` / `pg_hactl -c CONFIG list` against the same cluster: "
             "median wall time (and CPU time, which machine load inflates less) of the repeats after one "
             "uncounted warm-up run.",
             (Metric("ctl_list_s", "list wall time (s)", 2, (Target("<=", 0.3, "≤ 0.3 s"),),
                     "`pg_hactl list`"),
              Metric("ctl_list_cpu_s", "list CPU time, user + system (s)", 2))),
    Scenario("etcd load at idle", "Delta over the idle window of etcd's `grpc_server_msg_received_total` "
             "(every method; the v3 JSON gateway goes through gRPC) plus `etcd_http_received_total` (v2), "
             "divided by members and minutes.",
             (Metric("etcd_req_per_member_min", "requests per member per minute", 1,
                     (Target("ratio<=", 1.0, "≤ Patroni"),), "etcd requests per member per minute"),)),
    Scenario("ZooKeeper load at idle", "Delta over the idle window of `recved` in ZooKeeper's `cons` (packets "
             "received on the connection: requests and the client's pings) of the sessions owning the "
             "scope's member znodes, divided by members and minutes.",
             (Metric("zk_packets_per_member_min", "packets per member per minute", 1),)),
)
DCS_ONLY = {"etcd load at idle": "etcd", "ZooKeeper load at idle": "zookeeper"}  # scenarios of one DCS


def dcs_of(doc: dict[str, Any]) -> str:
    return str(doc.get("settings", {}).get("dcs", "etcd"))


def values(doc: dict[str, Any], kind: str, metric: str) -> list[float]:
    return [s["value"] for s in doc["samples"] if s["kind"] == kind and s["metric"] == metric]


def fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def stats(vals: list[float], digits: int) -> tuple[str, str, float | None]:
    if not vals:
        return "–", "–", None
    med = statistics.median(vals)
    return fmt(med, digits), f"{fmt(min(vals), digits)} – {fmt(max(vals), digits)}", med


def verdict(met: bool | None) -> str:
    return {True: "**yes**", False: "**no**", None: "n/a"}[met]


def scenario_table(doc: dict[str, Any], scenario: Scenario) -> tuple[list[str], list[tuple[str, str, str]]]:
    lines = ["| metric | Patroni median | Patroni min – max | pg_ha median | pg_ha min – max | pg_ha / Patroni "
             "| target | met |", "|---|---:|---:|---:|---:|---:|---|---|"]
    summary: list[tuple[str, str, str]] = []
    for metric in scenario.metrics:
        p_med, p_range, p_val = stats(values(doc, "patroni", metric.key), metric.digits)
        g_med, g_range, g_val = stats(values(doc, "pg_ha", metric.key), metric.digits)
        ratio = fmt(g_val / p_val, 2) if g_val is not None and p_val else "–"
        targets = " and ".join(t.text for t in metric.targets) or "–"
        verdicts = [t.met(g_val, p_val) for t in metric.targets]
        met = " / ".join(verdict(v) for v in verdicts) if verdicts else ""
        note = ctl_note(doc) if metric.key == "ctl_list_s" and g_val is None else ""
        lines.append(f"| {metric.label} | {p_med} | {p_range} | {g_med}{note} | {g_range} | {ratio} | {targets} "
                     f"| {met} |")
        for target, v in zip(metric.targets, verdicts, strict=True):
            measured = f"{g_med}" if not target.op.startswith("ratio") else f"{g_med} vs {p_med} (×{ratio})"
            summary.append((f"{metric.short or metric.label} {target.text}", measured, verdict(v)))
    return lines, summary


def ctl_note(doc: dict[str, Any]) -> str:
    notes = {d["data"].get("note") for d in doc["details"] if d["what"] == "ctl list" and isinstance(d["data"], dict)}
    notes.discard(None)
    return f" ({'; '.join(sorted(notes))})" if notes else ""


def rest_notes(doc: dict[str, Any]) -> list[str]:
    """How many requests fitted in the time budget, and whether the server kept the connection open."""
    notes = []
    wanted = doc["settings"]["rest_requests"]
    for kind, title in (("patroni", "Patroni"), ("pg_ha", "pg_ha")):
        for path in ("/primary", "/patroni"):
            runs = [d["data"] for d in doc["details"] if d["kind"] == kind and d["what"] == f"rest {path}"]
            if not runs:
                continue
            done = sum(r["requests"] for r in runs)
            closed = sum(r["server_closed"] for r in runs)
            total = sum(r["requests"] + 50 for r in runs)
            text = f"{title} `GET {path}`: {done} of {wanted * len(runs)} requests done"
            if done < wanted * len(runs):
                text += " (the rest did not fit in the time budget)"
            text += f"; the server closed the connection after {100 * closed / total:.0f}% of the responses"
            notes.append(f"- {text}.")
    return notes


def etcd_breakdown(doc: dict[str, Any]) -> list[str]:
    per_kind: dict[str, dict[str, list[float]]] = {}
    for d in doc["details"]:
        if d["what"] == "idle":  # (on ZooKeeper the idle details count packets per session instead)
            members = len(d["data"]["rss_kb"]) or 1
            for method, rate in d["data"].get("etcd_requests_per_minute_by_method", {}).items():
                per_kind.setdefault(method, {}).setdefault(d["kind"], []).append(rate / members)
    if not per_kind:
        return []
    lines = ["| etcd method | Patroni / member / min | pg_ha / member / min |", "|---|---:|---:|"]
    for method in sorted(per_kind):
        cells = [fmt(statistics.median(per_kind[method][k]), 1) if per_kind[method].get(k) else "0"
                 for k in ("patroni", "pg_ha")]
        lines.append(f"| {method} | {cells[0]} | {cells[1]} |")
    return lines


TIMELINES = (("pg_ha", "switchover"), ("patroni", "switchover"), ("pg_ha", "failover_gap_10"),
             ("pg_ha", "failover_gap_5"))


def timelines(doc: dict[str, Any]) -> list[str]:
    """The last run's condensed timelines: where the time of a write gap went."""
    out: list[str] = []
    for kind, name in TIMELINES:
        found = [d for d in doc["details"] if d["kind"] == kind and d["what"] == f"timeline {name}"]
        if found:
            last = found[-1]
            out += [f"<details><summary>{kind} run {last['run']}: {name}</summary>", "", "```",
                    last["data"].rstrip()[:6000], "```", "", "</details>", ""]
    if out:
        out = ["## Where the time went", "",
               "Daemon log lines, HAProxy server state changes and the client's acknowledged writes (`bench`) "
               "of the last run, in seconds from the action; once-per-cycle lines left out.", "", *out]
    return out


def render(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    on_zk = dcs_of(doc) == "zookeeper"
    out = ["# Benchmarks: pg_ha vs Patroni" + (" on ZooKeeper" if on_zk else ""), "",
           "Generated by `bash bench/run.sh" + (" --dcs zookeeper" if on_zk else "") +
           (" --quick" if s["quick"] else "") +
           (f" --runs {s['runs']}" if not s["quick"] and s["runs"] != 3 else "") +
           f"` on {doc['started']} (took {doc['duration_min']:.0f} min). Do not edit by hand: "
           "run the command again to regenerate this file. The bench only reports; nothing here is a test.", ""]
    if doc.get("notes"):
        out += ["## Notes on this run", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    all_tables: list[str] = []
    summary: list[tuple[str, str, str]] = []
    for scenario in SCENARIOS:
        if DCS_ONLY.get(scenario.title, dcs_of(doc)) != dcs_of(doc):
            continue
        lines, rows = scenario_table(doc, scenario)
        all_tables += [f"### {scenario.title}", "", scenario.text, "", *lines, ""]
        if scenario.title == "REST API":
            all_tables += [*rest_notes(doc), ""]
        summary += rows
    out += ["## Targets (issue 7)", "", "Medians measured side by side in this run.", "",
            "| target | pg_ha measured | met |", "|---|---|---|"]
    out += [f"| {t} | {m} | {v} |" for t, m, v in summary] + [""]
    out += ["## Results", "", *all_tables]
    breakdown = etcd_breakdown(doc)
    if breakdown:
        out += ["### etcd requests at idle by method (median over runs)", "", *breakdown, ""]
    if doc["errors"]:
        out += ["## Failed steps", "", "| daemon | run | step | error |", "|---|---|---|---|"]
        out += [f"| {e['kind']} | {e['run']} | {e['step']} | {e['error'].replace('|', '/')[:300]} |"
                for e in doc["errors"]] + [""]
    out += timelines(doc) + method(doc) + machine(doc)
    return "\n".join(out).rstrip() + "\n"


def method(doc: dict[str, Any]) -> list[str]:
    s = doc["settings"]
    on_zk = dcs_of(doc) == "zookeeper"
    server = ("One standalone ZooKeeper (Debian's 3.8, tickTime 500 ms; both daemons through kazoo: Patroni's "
              "from its venv, pg_ha's python3-kazoo)" if on_zk else "One etcd 3.4 (v2 and v3 APIs enabled)")
    section = "`zookeeper:`" if on_zk else "`etcd3:`"
    extras = "zookeeper" if on_zk else "etcd,etcd3"
    load = "ZooKeeper packets" if on_zk else "etcd requests"
    return [
        "## Method", "",
        f"- {server} for the whole bench; {s['runs']} run(s) per daemon, "
        "alternating Patroni and pg_ha (the order flips every run); each run bootstraps fresh clusters "
        "under its own scope in `/service/`.",
        "- Both daemons start from the *same* config file per member, written in Patroni's schema by "
        f"`tests/harness/cluster.py:member_config()` ({section} section, `use_pg_rewind`, `use_slots`, "
        "3 members of PostgreSQL 15 on 127.0.0.1), run as user postgres with Debian's `/usr/bin/python3`: "
        f"Patroni from its own venv (`pip install 'patroni[{extras}]' psycopg2-binary`), pg_ha as "
        "`python3 -m pg_ha` from a copy of `plugins/module_utils`.",
        f"- HAProxy (one per cluster, same settings for both): TCP listener for the primary, "
        f"`option httpchk` + `http-check send meth OPTIONS uri /primary` on each member's REST port, "
        f"`default-server {CHECK}`.",
        "- Write client: one `INSERT ... RETURNING inet_server_port()` every 20 ms through HAProxy "
        "(autocommit, reconnect on any error, connect_timeout 2 s); a scenario ends once writes are "
        "acknowledged by another member (failover) or the candidate (switchover), plus 1.5 s.",
        "- Per run and daemon: cluster A (ttl=10/loop_wait=2/retry_timeout=3): bootstrap, "
        f"{s['settle']:.0f} s settle, idle window of {s['idle_window']:.0f} s (CPU, RSS, {load}), "
        f"REST load ({s['rest_requests']} requests per endpoint, at most {s.get('rest_budget', 20):.0f} s each), "
        f"CLI list ({s['ctl_repeats']} timed runs), "
        "switchover, failover by kill -9, rejoin; cluster B (ttl=30/10/10): bootstrap, failover; "
        "pg_ha only, cluster C (ttl=5/1/2): bootstrap, failover.",
        f"- Every process started ({'ZooKeeper' if on_zk else 'etcd'}, HAProxy, daemons, postmasters via "
        "`postmaster.pid`) is recorded "
        "by PID and start time and ended on exit, Ctrl-C or failure.",
        "- Per-run logs of every member and HAProxy, and merged timelines of each switchover and failover "
        "(daemon log lines, HAProxy server state changes and the client's acks, offsets from the action), "
        "are kept in the logs directory the run prints at its end.", ""]


def machine(doc: dict[str, Any]) -> list[str]:
    facts = dict(doc["facts"])
    facts["load average before / after (1, 5, 15 min)"] = f"{doc['load_before']} / {doc['load_after']}"
    return ["## Machine", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts.items()), ""]
