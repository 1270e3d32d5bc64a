"""The faults, each injected on real processes (signals, kill -9), never by asking the daemon.

A fault injects, holds, then heals what it broke (restarts what it killed, resumes what it
stopped); the scenario then waits for the cluster to be healthy again with a deadline."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.cluster import Member
from tests.harness.common import kill_postmaster, pid_alive, wait_for

from .env import TTL, ChaosEnv


@dataclass
class Context:
    env: ChaosEnv
    short: bool
    notes: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"    {time.strftime('%H:%M:%S')} {text}", flush=True)

    def mark(self, label: str) -> float:
        self.marks[label] = time.time()
        return self.marks[label]


def hold(seconds: float, watch: Callable[[], object] | None = None) -> None:
    """Keep a fault in place for `seconds`, calling `watch` (an observer) meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch is not None:
            watch()
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def others(env: ChaosEnv, member: Member) -> list[Member]:
    return [m for m in env.cluster.members if m is not member and m.running]


# -- PostgreSQL / daemon faults ---------------------------------------------------------
def kill9_primary(ctx: Context) -> None:
    """kill -9 of the primary's daemon and of its postmaster; restart the daemon once another
    member leads (it must rejoin, with pg_rewind where needed)."""
    old = ctx.env.leader()
    ctx.mark("fault")
    old.kill9(postmaster=True)
    ctx.note(f"killed -9 daemon and postmaster of leader {old.name}")
    try:
        new = ctx.env.leader(timeout=TTL + 40, exclude=(old.name,))
        ctx.note(f"{new.name} leads after {time.time() - ctx.marks['fault']:.1f}s")
    except AssertionError:
        ctx.note(f"FAILOVER: no other member took over within {TTL + 40}s; restarting {old.name} anyway")
    old.start()
    ctx.note(f"restarted daemon of {old.name}")


def kill9_postmaster(ctx: Context) -> None:
    """kill -9 of the primary's postmaster only: its daemon is expected to start it again."""
    leader = ctx.env.leader()
    ctx.mark("fault")
    kill_postmaster(leader.data_dir)
    ctx.note(f"killed -9 postmaster of leader {leader.name}")


def sigstop_daemon(ctx: Context) -> None:
    """SIGSTOP of the primary's daemon process (PostgreSQL keeps running) for ttl + 5 s."""
    old = ctx.env.leader()
    assert old.proc is not None
    pid = old.proc.pid
    ctx.mark("fault")
    ctx.env.stop_pid(pid)
    ctx.note(f"SIGSTOP daemon of leader {old.name} (pid {pid}) for {TTL + 5}s")
    seen: dict[str, float] = {}

    def watch() -> None:
        leader = ctx.env.cluster.leader()
        if leader is not None and leader is not old and "new" not in seen:
            seen["new"] = time.time()
            ctx.note(f"{leader.name} leads {seen['new'] - ctx.marks['fault']:.1f}s after the SIGSTOP")
    hold(TTL + 5, watch)
    ctx.env.cont_pid(pid)
    ctx.mark("heal")
    ctx.note(f"SIGCONT daemon of {old.name}")


def replica_killed_during_basebackup(ctx: Context) -> None:
    """A fresh member joins while the database is large; its daemon and pg_basebackup are
    killed -9 together mid-copy (as a service manager kills the unit's cgroup); restarted,
    it must clone again and stream."""
    env = ctx.env
    leader = env.leader()
    rows = 150_000 if ctx.short else 400_000
    leader.sql(f"DROP TABLE IF EXISTS chaos_big; CREATE TABLE chaos_big AS "
               f"SELECT g, repeat(md5(g::text), 6) AS pad FROM generate_series(1, {rows}) g")
    size = leader.sql("SELECT pg_size_pretty(pg_database_size('postgres'))")[0][0]
    joiner = env.add_member(f"{env.scope}-joiner", {"basebackup": [{"max-rate": "8M"}, "verbose"]})
    ctx.note(f"database is {size}; starting {joiner.name} (pg_basebackup --max-rate=8M)")
    joiner.start()
    assert joiner.proc is not None
    daemon = joiner.proc.pid
    child = wait_for(lambda: basebackup_child(daemon), 90, "pg_basebackup to start")
    wait_for(lambda: dir_size(joiner.data_dir) > 12 * 2**20, 60, "12 MB copied")
    copied = dir_size(joiner.data_dir) // 2**20
    ctx.mark("fault")
    for pid in (daemon, child):
        os.kill(pid, signal.SIGKILL)
    joiner.proc.wait(10)
    wait_for(lambda: not pid_alive(child), 10, "pg_basebackup to die")
    ctx.note(f"killed -9 {joiner.name}'s daemon and pg_basebackup (pid {child}) after {copied} MB")
    joiner.start()
    ctx.note(f"restarted {joiner.name}")
    try:
        wait_for(joiner.is_streaming_replica, 150, f"{joiner.name} to stream")
        ctx.note(f"{joiner.name} streams {time.time() - ctx.marks['fault']:.1f}s after the kill")
        count = joiner.sql("SELECT count(*) FROM chaos_big")[0][0]
        assert count == rows, f"{joiner.name} has {count} rows of chaos_big, expected {rows}"
    finally:
        ctx.env.save_logs(f"joiner-{int(time.time())}")
        orphan = basebackup_child(joiner.proc.pid) if joiner.running and joiner.proc is not None else None
        env.remove_member(joiner)
        if orphan is not None and pid_alive(orphan):  # its own session: the daemon's stop may leave it
            os.kill(orphan, signal.SIGKILL)
        leader = env.leader()
        leader.sql("DROP TABLE IF EXISTS chaos_big")


def basebackup_child(daemon_pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == daemon_pid and b"pg_basebackup" in cmd:
            return int(entry.name)
    return None


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def is_sync(member: Member, path: str = "/sync") -> bool:
    try:
        return member.api(path, timeout=2)[0] == 200
    except OSError:
        return False


def switchovers(ctx: Context) -> None:
    """Repeated switchovers under load: POST /switchover to alternating candidates."""
    count = 2 if ctx.short else 4
    ctx.mark("fault")
    for i in range(count):
        leader = ctx.env.wait_healthy(120)
        candidates = sorted(others(ctx.env, leader), key=lambda m: m.name)
        if ctx.env.synchronous:  # only a synchronous standby may take over
            path = ctx.env.sync_path
            candidates = wait_for(lambda c=candidates, p=path: [m for m in c if is_sync(m, p)], 60,
                                  "a synchronous standby")
        candidate = candidates[i % len(candidates)]
        started = time.time()
        code, body = leader.api("/switchover", method="POST",
                                body={"leader": leader.name, "candidate": candidate.name}, timeout=90)
        ctx.note(f"switchover {i + 1}/{count} {leader.name} -> {candidate.name}: HTTP {code} {str(body)[:80]}")
        assert code == 200, f"switchover refused: {code} {body}"
        wait_for(lambda c=candidate: c.is_primary(), 60, f"{candidate.name} to lead")
        ctx.note(f"{candidate.name} leads {time.time() - started:.1f}s after the request")


# -- etcd faults ------------------------------------------------------------------------
def etcd_sigstop(ctx: Context) -> None:
    """Every etcd member SIGSTOPped for ttl + 10 s (failsafe_mode off, the default: the
    primary is expected to demote once it cannot renew its lease)."""
    env = ctx.env
    leader = env.leader()
    ctx.mark("fault")
    env.etcd.pause_all()
    ctx.note(f"SIGSTOP all etcd members for {TTL + 10}s (leader {leader.name})")
    hold(TTL + 10)
    env.etcd.resume_all()
    ctx.mark("heal")
    ctx.note("SIGCONT all etcd members")


def etcd_sigstop_failsafe(ctx: Context) -> None:
    """As etcd_sigstop, with failsafe_mode switched on (PATCH /config) before and off after:
    the primary reaches both replicas, so it is expected to stay read-write throughout."""
    env = ctx.env
    leader = env.leader()
    assert leader.api("/config", "PATCH", {"failsafe_mode": True})[0] == 200
    try:
        members = {m.name for m in env.cluster.members}
        for m in env.running_members():  # a replica refuses consent (502) until it read failsafe_mode
            wait_for(lambda m=m: (lambda r: r[0] == 200 and set(r[1]) == members)(m.api("/failsafe")), 30,
                     f"{m.name} to know failsafe_mode and the topology")
        ctx.mark("fault")
        env.etcd.pause_all()
        ctx.note(f"failsafe_mode on; SIGSTOP all etcd members for {TTL + 10}s (leader {leader.name})")
        hold(TTL + 10)
        env.etcd.resume_all()
        ctx.mark("heal")
        ctx.note("SIGCONT all etcd members")
    finally:
        env.etcd.resume_all()
        wait_for(lambda: env.leader().api("/config", "PATCH", {"failsafe_mode": False})[0] == 200, 60,
                 "failsafe_mode switched off again")


def etcd_leader_kill(ctx: Context) -> None:
    """kill -9 of the etcd leader; restarted after a new etcd leader has served for ttl."""
    etcd = ctx.env.etcd
    victim = etcd.wait_leader()
    ctx.mark("fault")
    victim.kill()
    ctx.note(f"killed -9 etcd leader {victim.name}")
    new = wait_for(etcd.leader, 30, "a new etcd leader")
    ctx.note(f"etcd {new.name} leads {time.time() - ctx.marks['fault']:.1f}s after the kill")
    hold(TTL)
    etcd.start_member(victim)
    etcd.wait_healthy(60)
    ctx.note(f"etcd {victim.name} restarted and healthy")


def etcd_quorum_loss(ctx: Context) -> None:
    """kill -9 of two of the three etcd members (the leader and one follower) for ttl + 5 s."""
    etcd = ctx.env.etcd
    leader = etcd.wait_leader()
    victims = [leader, next(s for s in etcd.servers if s is not leader)]
    ctx.mark("fault")
    for server in victims:
        server.kill()
    ctx.note(f"killed -9 etcd {', '.join(s.name for s in victims)}: no quorum for {TTL + 5}s")
    hold(TTL + 5)
    for server in victims:
        etcd.start_member(server)
    etcd.wait_healthy(60)
    ctx.mark("heal")
    ctx.note("etcd quorum restored")


FAULTS: dict[str, Callable[[Context], None]] = {
    "kill9_primary": kill9_primary,
    "kill9_postmaster": kill9_postmaster,
    "sigstop_daemon": sigstop_daemon,
    "etcd_sigstop": etcd_sigstop,
    "etcd_sigstop_failsafe": etcd_sigstop_failsafe,
    "etcd_leader_kill": etcd_leader_kill,
    "etcd_quorum_loss": etcd_quorum_loss,
    "switchovers": switchovers,
    "basebackup_kill": replica_killed_during_basebackup,
}
SHORT_FAULTS = ["kill9_primary", "kill9_postmaster", "switchovers", "etcd_leader_kill", "etcd_quorum_loss",
                "basebackup_kill", "partition_primary_from_etcd", "partition_primary_from_replicas"]
NOT_DONE: dict[str, str] = {}

from .faults_net import NET_FAULTS  # noqa: E402 - it builds on Context and hold above

FAULTS.update(NET_FAULTS)
