"""One scenario: load on, fault, heal, load off, judge."""
from __future__ import annotations

import time
import traceback

from tests.harness.cluster import Member
from tests.harness.common import Timeout, wait_for

from .checker import Result, judge
from .env import ChaosEnv
from .faults import FAULTS, Context
from .prober import Prober
from .writer import Writer

WARMUP_WRITES = 50
AFTER_HEAL_WRITES = 50


def lsn(member: Member) -> int:
    return int(member.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])


def table_digest(member: Member, table: str) -> tuple[int, int]:
    count, total = member.sql(f"SELECT count(*), coalesce(sum(id), 0) FROM {table}")[0]
    return int(count), int(total)


def run_scenario(env: ChaosEnv, fault: str, run: int, seq: int, short: bool) -> Result:
    result = Result(fault, env.mode, run)
    table = f"chaos_w{seq}"
    ctx = Context(env, short)
    prepare = getattr(FAULTS[fault], "prepare", None)  # set-up the load must not see (e.g. a mount)
    if prepare is not None:
        prepare(ctx)
    leader = env.wait_healthy(180)
    leader.sql(f"CREATE TABLE {table}(id bigint PRIMARY KEY, ts timestamptz DEFAULT clock_timestamp())")
    writer = Writer(env.haproxy.port, table)
    prober = Prober([(m.name, m.pg_port) for m in env.running_members()])
    start_lsn = lsn(leader)
    result.started = time.time()
    writer.start()
    prober.start()
    try:
        wait_for(lambda: writer.acked_count() >= WARMUP_WRITES, 60, f"{WARMUP_WRITES} writes through HAProxy")
        per_write = max(1, (lsn(leader) - start_lsn) // max(1, writer.acked_count()))
        result.lost_bound = int(env.dynamic["maximum_lag_on_failover"]) // per_write
        ctx.note(f"{fault} run {run} ({env.mode}): warm, {per_write} WAL bytes per write")
        try:
            FAULTS[fault](ctx)
        except Exception as exc:  # noqa: BLE001 - a fault that could not complete is a result
            result.healed = False
            ctx.note(f"fault step failed: {exc!r}")
            traceback.print_exc()
        result.fault_at = ctx.marks.get("fault", 0.0)
        heal(env, ctx, result, writer)
    finally:
        log = writer.stop()
        probes = prober.stop()
    end = time.time()
    for at, message in log.events:
        print(f"    writer {time.strftime('%H:%M:%S', time.localtime(at))}.{int(at % 1 * 1000):03d} {message}")
    final = read_final(env, table, ctx, result)
    judge(result, log, probes, final, end)
    teardown = getattr(FAULTS[fault], "teardown", None)  # undo the set-up, after judging
    if teardown is not None:
        teardown(ctx)
    result.notes = ctx.notes
    return result


def heal(env: ChaosEnv, ctx: Context, result: Result, writer: Writer) -> None:
    try:
        leader = env.wait_healthy(180)
        ctx.note(f"healthy: {leader.name} leads, {len(env.running_members()) - 1} replicas stream")
    except Timeout as exc:
        result.healed = False
        ctx.note(f"not healed: {exc}")
        return
    target = writer.acked_count() + AFTER_HEAL_WRITES
    try:
        wait_for(lambda: writer.acked_count() >= target, 60, "writes through HAProxy after healing")
    except Timeout as exc:
        result.healed = False
        ctx.note(f"no writes after healing: {exc}")


def read_final(env: ChaosEnv, table: str, ctx: Context, result: Result) -> set[int]:
    try:
        leader = env.leader(60)
    except Timeout:
        result.converged = False
        ctx.note("no leader to read the final table from")
        return set()
    ids = {int(r[0]) for r in leader.sql(f"SELECT id FROM {table}")}
    digest = table_digest(leader, table)
    for member in env.running_members():
        if member is leader:
            continue
        try:
            wait_for(lambda m=member: table_digest(m, table) == digest, 60, f"{member.name} to converge")
        except Timeout:
            result.converged = False
            ctx.note(f"{member.name} did not converge on {table}")
    return ids
