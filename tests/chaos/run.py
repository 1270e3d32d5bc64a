"""Run the fault-injection suite: ``python3 -m tests.chaos.run [--short] [--faults a,b]
[--modes async,sync_strict,quorum,async_watchdog] [--merge] [--runs N] [--report docs/RELIABILITY.md]``."""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from .checker import Result
from .env import MODES, ChaosEnv
from .faults import FAULTS, SHORT_FAULTS
from .report import load, render, save, verdict
from .scenario import run_scenario

OUTPUT = Path(__file__).resolve().parents[1] / "output" / "chaos"


def run_mode(mode: str, faults: Sequence[str], runs: int, short: bool, log_dir: Path) -> list[Result]:
    results: list[Result] = []
    env: ChaosEnv | None = None
    seq = 0
    try:
        for fault in faults:
            for run in range(1, runs + 1):
                if env is None:
                    env = ChaosEnv(mode, scope=f"chaos{mode.replace('_', '')}{os.getpid()}{len(results)}",
                                   log_dir=log_dir)
                    print(f"== starting a fresh test bed for {mode}", flush=True)
                    env.start()
                    if env.synchronous and not env.sync_available():
                        print(f"== {mode}: no synchronous standby appeared: not available yet", flush=True)
                        return [Result(f, mode, 0, available=False) for f in faults]
                seq += 1
                print(f"== {fault} / {mode} / run {run}", flush=True)
                try:
                    result = run_scenario(env, fault, run, seq, short)
                except Exception as exc:  # noqa: BLE001 - e.g. never healthy before the fault
                    traceback.print_exc()
                    result = Result(fault, mode, run, healed=False, notes=[f"scenario failed: {exc!r}"])
                results.append(result)
                print(f"== {fault} / {mode} / run {run}: {verdict(result)}; lost {len(result.lost)}, "
                      f"longest gap {result.longest_gap:.2f}s, split brain {len(result.split_brain)}", flush=True)
                if not (result.healed and result.converged):  # next scenario on a fresh bed
                    env.save_logs(f"{fault}-{mode}-{run}")
                    env.cleanup()
                    env = None
        if env is not None:
            env.save_logs(f"{mode}-final")
    finally:
        if env is not None:
            env.cleanup()
    return results


def run_suite(faults: Sequence[str], modes: Sequence[str], runs: int, short: bool,
              log_dir: Path = OUTPUT) -> list[Result]:
    log_dir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    for mode in modes:
        results += run_mode(mode, faults, runs, short, log_dir / time.strftime("%Y%m%d-%H%M%S"))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.chaos.run", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI subset: a few faults, async, one run")
    parser.add_argument("--faults", help=f"comma-separated, from: {', '.join(FAULTS)}")
    parser.add_argument("--modes", help=f"comma-separated, from: {', '.join(MODES)}")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--report", type=Path, help="write the Markdown table here (JSON beside it)")
    parser.add_argument("--from-json", type=Path, help="render --report from saved results, run nothing")
    parser.add_argument("--merge", action="store_true",
                        help="keep the results of --report's JSON for the (fault, mode) pairs not run now")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: members are started as user postgres")
    if args.from_json:
        results = load(args.from_json)
    else:
        faults = args.faults.split(",") if args.faults else (SHORT_FAULTS if args.short else list(FAULTS))
        modes = args.modes.split(",") if args.modes else (["async"] if args.short else list(MODES))
        unknown = [f for f in faults if f not in FAULTS] + [m for m in modes if m not in MODES]
        if unknown:
            parser.error(f"unknown fault or mode: {', '.join(unknown)}")
        results = run_suite(faults, modes, args.runs, args.short)
    if args.report:
        json_path = args.report.with_suffix(".json")
        if args.merge and json_path.exists() and not args.from_json:
            ran = {(r.fault, r.mode) for r in results}
            results = [r for r in load(json_path) if (r.fault, r.mode) not in ran] + results
        save(results, args.report, json_path)
        print(f"wrote {args.report}")
    else:
        print(render(results))
    return 0 if all(verdict(r) in ("ok", "not available yet") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
