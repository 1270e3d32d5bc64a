"""docs/RELIABILITY.md from the scenario results (also kept as JSON beside it)."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from .checker import Result, Window
from .faults import FAULTS, NOT_DONE

METHOD = """\
## Method

`python3 -m tests.chaos.run --report docs/RELIABILITY.md` regenerates this file: it runs every fault
below, on processes of one machine, in every mode, and writes the table (`--runs N` repeats each
fault; the raw results go to `docs/RELIABILITY.json`, `--from-json` renders them again without running).

- **Test bed**: a 3-member etcd 3.4 cluster; 3 pg_ha members (PostgreSQL 15, run as user postgres,
  each configured with all three etcd endpoints) with `ttl: 10`, `loop_wait: 2`, `retry_timeout: 3`,
  `maximum_lag_on_failover: 1048576`; HAProxy 2.6 in front (`option httpchk OPTIONS /primary`,
  `inter 1s fall 2 rise 1 on-marked-down shutdown-sessions`), as Patroni documents it.
- **Writer**: one client writes unique increasing ids through HAProxy's primary port, one autocommit
  INSERT about every 20 ms (connect timeout 1 s, statement timeout 5 s, reconnect on error) and logs
  every acknowledged id with its time. A write that failed, or whose COMMIT came back with PostgreSQL's
  "canceled waiting for synchronous replication" warning, is *uncertain*: it may be in the table or not.
- **Prober**: every ~100 ms, one thread per member tries a real write (an INSERT) on that member's own
  PostgreSQL port. A *split-brain window* is a time in which a member acknowledged a write strictly
  inside another member's run of acknowledged writes (a run: acknowledged probes with no failed one
  between). Resolution is the probe period, ~100 ms.
- **Checker**: after the fault is healed (one leader, every running member streaming, the writer
  acknowledged 50 more writes), it reads the table from the leader and waits for every replica to
  hold the same rows. *Lost* = acknowledged ids missing from the final table; *unexpected* = rows
  that were never written; *longest unavailability* = the largest gap between two consecutive
  acknowledged writes over the whole scenario.
- **Bound** for asynchronous mode: `maximum_lag_on_failover` divided by the WAL bytes per write
  measured during warm-up (a failover candidate may lag at most that much).
- **Modes**: asynchronous, and synchronous strict (`synchronous_mode: true`, `synchronous_mode_strict: true`);
  in synchronous mode a fault is injected only once the DCS `sync` key names a synchronous standby
  (`GET /sync` answers 200 on a member), and only that standby is a switchover candidate; quorum
  (`synchronous_mode: quorum`, ANY 1 of the replicas) waits for a voter (`GET /quorum` 200) the same way;
  async_watchdog is asynchronous with `watchdog: {mode: required}` on every member, through the testing
  driver (tests/harness and docs/WATCHDOG.md: a separate fencing process SIGKILLs the postmaster when the
  daemon stops feeding it, as /dev/watchdog would reset the machine).
- **Why sigstop_daemon splits the brain without a watchdog**: a frozen daemon cannot demote its
  PostgreSQL, which goes on accepting writes on its own port after the lease expired and another member
  was promoted (Patroni behaves the same; it is what its watchdog is for). Clients that go through HAProxy
  are moved at once (the frozen member's REST API does not answer its checks), so the writer loses
  nothing; the prober, which writes to each member's own port, sees both. With the watchdog
  (async_watchdog) the old primary is fenced before the lease expires.
- **Faults** are injected on the processes (kill -9, SIGSTOP/SIGCONT), the network (iptables DROP rules
  in a chain of their own, on per-member loopback addresses) and the disk (a tmpfs under pg_wal), never
  by asking the daemon; each fault's method is in its docstring (tests/chaos/faults*.py).
"""

COLUMNS = ("fault", "mode", "runs", "lost acknowledged writes", "longest unavailability",
           "split-brain windows", "healed", "verdict")


def verdict(r: Result) -> str:
    if not r.available:
        return "not available yet"
    problems = []
    if r.split_brain:
        problems.append("split brain")
    bound = (r.lost_bound or 0) if r.mode.startswith("async") else 0
    if len(r.lost) > bound:
        problems.append("lost writes over the bound")
    if r.unexpected:
        problems.append("unexpected rows")
    if not r.healed:
        problems.append("not healed")
    if not r.converged:
        problems.append("replicas diverge")
    return ", ".join(problems) or "ok"


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def window_text(w: Window) -> str:
    return f"{clock(w.start)}-{clock(w.end)} ({w.seconds:.2f} s, {' & '.join(w.members)})"


def render(results: list[Result]) -> str:
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in results:
        groups[(r.fault, r.mode)].append(r)
    lines = ["# Reliability: fault injection with a lost-write checker", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `tests/chaos` (issue 6, "
             "faults on processes of one machine).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    order = list(FAULTS)
    for (fault, mode), group in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        if not all(r.available for r in group):
            lines.append(f"| {fault} | {mode} | 0 | - | - | - | - | not available yet |")
            continue
        lost = [len(r.lost) for r in group]
        windows = [w for r in group for w in r.split_brain]
        longest_sb = f" (longest {max(w.seconds for w in windows):.1f} s)" if windows else ""
        verdicts = sorted({verdict(r) for r in group})
        lines.append(f"| {fault} | {mode} | {len(group)} | {sum(lost)} (max {max(lost)}/run, bound "
                     f"{min(r.lost_bound or 0 for r in group) if mode.startswith('async') else 0}) | "
                     f"{max(r.longest_gap for r in group):.1f} s | {len(windows)}{longest_sb} | "
                     f"{sum(r.healed and r.converged for r in group)}/{len(group)} | {'; '.join(verdicts)} |")
    if NOT_DONE:
        lines += ["", "Not done yet (need network namespaces or containers, or daemon features):", ""]
        lines += [f"- `{name}`: {why}" for name, why in NOT_DONE.items()]
    lines += ["", METHOD, "## Runs", ""]
    for r in results:
        if not r.available:
            continue
        lines.append(f"### {r.fault} / {r.mode} / run {r.run}: {verdict(r)}")
        lines.append("")
        lines.append(f"acknowledged {r.acked}, uncertain {r.uncertain} ({r.uncertain_committed} committed), "
                     f"lost {len(r.lost)} {r.lost[:20] if r.lost else ''}, unexpected {len(r.unexpected)}, "
                     f"longest unavailability {r.longest_gap:.2f} s, "
                     f"split-brain windows {[window_text(w) for w in r.split_brain]}")
        lines.append("")
        lines += [f"- {n}" for n in r.notes]
        lines.append("")
    return "\n".join(lines) + "\n"


def save(results: list[Result], report: Path, json_path: Path) -> None:
    json_path.write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
    report.write_text(render(results))


def load(json_path: Path) -> list[Result]:
    return [Result.from_dict(d) for d in json.loads(json_path.read_text())]
