"""``python3 -m bench [--runs N] [--quick] ...``: run every scenario against Patroni and pg_ha,
alternating, and write docs/BENCHMARKS.md. Meant to be started by bench/run.sh as root."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.harness.common import REPO, package_path

from . import machine, probes, report
from .dcs import KINDS, BenchDcs
from .kinds import Kind, patroni_kind, pg_ha_kind
from .registry import Registry
from .scenarios import Cycle, Results, Settings, save

DEFAULT_VENV = Path("/var/lib/elephant-bench/patroni-venv")
STEPS = frozenset({"idle", "rest", "ctl_list", "switchover", "failover", "rejoin", "failover_30", "failover_5"})
LOAD_WARNING = 0.5  # 1-minute load average per core above which the numbers are flagged


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    p.add_argument("--runs", type=int, help="runs per daemon (default 3, --quick: 1)")
    p.add_argument("--quick", action="store_true", help="1 run each, short windows (CI smoke run)")
    p.add_argument("--patroni-venv", type=Path, default=DEFAULT_VENV, help=f"default {DEFAULT_VENV}")
    p.add_argument("--dcs", choices=KINDS, default="etcd",
                   help="the one DCS both daemons run on (default etcd; zookeeper writes docs/BENCHMARKS_ZOOKEEPER.md)")
    p.add_argument("--output", type=Path, help="default docs/BENCHMARKS.md (etcd) or docs/BENCHMARKS_ZOOKEEPER.md")
    p.add_argument("--logs-dir", type=Path, help="default /var/tmp/elephant-bench/<timestamp>")
    p.add_argument("--only", choices=("patroni", "pg_ha"), help="run one daemon only (development)")
    p.add_argument("--steps", default="", help="comma-separated scenarios to run (default all): idle, rest, "
                   "ctl_list, switchover, failover, rejoin, failover_30, failover_5; bootstraps always run")
    p.add_argument("--note", action="append", default=[], help="a note for the report (repeatable)")
    p.add_argument("--from-json", type=Path, help="only render the report from a saved results.json")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace, logs_dir: Path) -> Settings:
    steps = frozenset(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = steps - STEPS
    if unknown:
        raise SystemExit(f"bench: unknown --steps {', '.join(sorted(unknown))} (known: {', '.join(sorted(STEPS))})")
    if args.quick:
        return Settings(runs=args.runs or 1, quick=True, idle_window=20, settle=3, rest_requests=500,
                        rest_budget=8, ctl_repeats=3, logs_dir=logs_dir, steps=steps, dcs=args.dcs)
    return Settings(runs=args.runs or 3, quick=False, idle_window=60, settle=5, rest_requests=2000,
                    rest_budget=20, ctl_repeats=5, logs_dir=logs_dir, steps=steps, dcs=args.dcs)


def on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def load_notes(before: tuple[float, ...], after: tuple[float, ...]) -> list[str]:
    cores = os.cpu_count() or 1
    worst = max(before[0], after[0], before[1], after[1])
    if worst / cores <= LOAD_WARNING:
        return []
    return [f"The machine was not quiet: load average up to {worst:.2f} on {cores} cores during the run "
            "(other work was running). Timings are inflated and noisy; regenerate on a quiet machine."]


def jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def run(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs_dir = args.logs_dir or Path("/var/tmp/elephant-bench") / stamp
    logs_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_from(args, logs_dir)
    registry = Registry(Path(os.environ.get("BENCH_REGISTRY") or logs_dir / "registry"))
    kinds: list[Kind] = []
    if args.only != "pg_ha":
        kinds.append(patroni_kind(args.patroni_venv))
    if args.only != "patroni":
        kinds.append(pg_ha_kind())
    results = Results()
    started = time.monotonic()
    load_before = probes.loadavg()
    doc: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M %Z"), "facts": machine.facts(kinds, args.dcs),
                           "settings": {k: jsonable(v) for k, v in settings.__dict__.items()}}
    print(f"bench: logs in {logs_dir}; {settings.runs} run(s) of {', '.join(k.title for k in kinds)}", flush=True)
    registry.add_temp_dir(package_path())
    dcs = BenchDcs.create(args.dcs)
    registry.add_temp_dir(dcs.base_dir)
    try:
        dcs.start()
        assert dcs.pid is not None
        registry.add_process(dcs.pid, args.dcs)
        for run_no in range(1, settings.runs + 1):
            order = kinds if run_no % 2 else list(reversed(kinds))
            for kind in order:
                Cycle(kind, run_no, settings, dcs, registry, results).run_all()
                save(results, logs_dir / "results.json", doc)
    finally:
        dcs.cleanup()
        for what in registry.cleanup():
            print(f"bench: ended leftover {what}", file=sys.stderr)
    load_after = probes.loadavg()
    doc.update(load_before=load_before, load_after=load_after, duration_min=(time.monotonic() - started) / 60,
               notes=[*args.note, *load_notes(load_before, load_after)])
    save(results, logs_dir / "results.json", doc)
    output = args.output or default_output(args.dcs)
    write_report(json.loads((logs_dir / "results.json").read_text()), output)
    print(f"bench: wrote {output}; logs and results.json in {logs_dir}", flush=True)
    return 0


def default_output(dcs: str) -> Path:
    return REPO / "docs" / ("BENCHMARKS_ZOOKEEPER.md" if dcs == "zookeeper" else "BENCHMARKS.md")


def write_report(doc: dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.render(doc))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        doc["notes"] = [*doc.get("notes", []), *args.note]
        output = args.output or default_output(doc.get("settings", {}).get("dcs", "etcd"))
        write_report(doc, output)
        print(f"bench: wrote {output}")
        return 0
    if os.geteuid() != 0:
        print("bench: run as root (it starts PostgreSQL as user postgres); use bash bench/run.sh", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
