"""Network partitions and a full WAL disk, injected for real (iptables, a small tmpfs).

See netfault.py for the addressing that lets one iptables rule cut exactly one member's path."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

from tests.harness.cluster import Member
from tests.harness.common import Timeout, wait_for

from .env import TTL, ChaosEnv
from .faults import Context, hold, is_sync, others
from .netfault import Chain, etcd_address, pg_address, tcp_ports

MB = 2**20


def in_recovery(member: Member) -> bool | None:
    """pg_is_in_recovery() over 127.0.0.1 (the test's own path), None if it does not answer."""
    try:
        return bool(member.sql("SELECT pg_is_in_recovery()")[0][0])
    except Exception:  # noqa: BLE001 - down, restarting, refusing
        return None


class Watch:
    """Notes, once each, when the old leader stops being writable and when another member leads."""

    def __init__(self, ctx: Context, old: Member) -> None:
        self.ctx, self.old = ctx, old
        self.seen: dict[str, float] = {}

    def __call__(self) -> None:
        since = time.time() - self.ctx.marks["fault"]
        if "demoted" not in self.seen and in_recovery(self.old) is not False:
            self.seen["demoted"] = since
            self.ctx.note(f"{self.old.name} no longer a writable primary {since:.1f}s after the cut")
        if "new" not in self.seen:
            leader = self.ctx.env.cluster.leader()
            if leader is not None and leader is not self.old:
                self.seen["new"] = since
                self.ctx.note(f"{leader.name} leads {since:.1f}s after the cut")


def partition_primary_from_etcd(ctx: Context) -> None:
    """The primary's daemon cut off from all three etcd members; replicas still reach etcd and the
    primary. Method: each member's daemon reaches etcd through its own loopback address
    (127.0.1.N, on which every etcd member also listens); an OUTPUT rule in a dedicated chain
    DROPs tcp to that address on the etcd client ports (silently, like a real partition; the
    daemon's requests time out). PostgreSQL and the REST API are untouched. Held until the old
    primary is read-only and another member leads (at most 3 x ttl), plus 5 s; then the chain
    is deleted and the old primary must rejoin as a replica."""
    env = ctx.env
    old = env.leader()
    address = etcd_address(env.index[old.name])
    with Chain("etcd") as chain:
        chain.drop(["-d", address, *tcp_ports("dports", [s.client_port for s in env.etcd.servers])])
        ctx.mark("fault")
        ctx.note(f"DROP {old.name}'s daemon -> etcd ({address}, chain {chain.name})")
        watch = Watch(ctx, old)
        deadline = time.monotonic() + 3 * TTL
        while time.monotonic() < deadline and len(watch.seen) < 2:
            hold(0.5, watch)
        if "demoted" not in watch.seen:
            ctx.note(f"{old.name} still a writable primary {3 * TTL}s after the cut")
        hold(5, watch)
        ctx.note(f"packets dropped: {chain.counters()}")
    ctx.mark("heal")
    ctx.note(f"partition healed (chain deleted) after {time.time() - ctx.marks['fault']:.1f}s")


def partition_primary_from_replicas(ctx: Context) -> None:
    """The primary and the replicas cannot talk to each other (replication and REST API) while
    every member reaches etcd and the test's clients reach every member. Method, in a dedicated
    OUTPUT chain, three DROP rules:
    (1) tcp to the primary's own PostgreSQL address (127.0.2.N, its connect_address, where the
        replicas stream from; the primary's daemon, HAProxy, the writer and the prober use
        127.0.0.1 and are not cut);
    (2) tcp from processes of user postgres (the daemons) to the primary's REST port;
    (3) tcp from processes of user postgres to the replicas' REST ports. Rule 3 cannot tell the
        primary's daemon from a replica's (same user, same source address): it also cuts the
        replicas' REST calls to each other. HAProxy's health checks run as root and pass.
    Held 2 x ttl (ttl + 5 s in the short CI run, still longer than the lease). Expected: no
    failover (the primary keeps renewing its lease). In sync_strict each COMMIT waits for the cut
    synchronous standby for the whole partition (statement_timeout does not cover that wait) and
    is acknowledged after healing; none is acknowledged without the standby. The connections
    are only stalled (DROP, no reset): after the chain is deleted they resume and the replicas
    replay what the primary wrote meanwhile."""
    env = ctx.env
    leader = env.leader()
    replicas = others(env, leader)
    owner = ["-m", "owner", "--uid-owner", "postgres"]
    seconds = TTL + 5 if ctx.short else 2 * TTL
    with Chain("repl") as chain:
        chain.drop(["-d", pg_address(env.index[leader.name]), *tcp_ports("dports", [leader.pg_port])])
        chain.drop([*owner, *tcp_ports("dports", [leader.api_port])])
        chain.drop([*owner, *tcp_ports("dports", [m.api_port for m in replicas])])
        ctx.mark("fault")
        ctx.note(f"DROP replication and REST between {leader.name} and {', '.join(m.name for m in replicas)} "
                 f"for {seconds}s (chain {chain.name})")
        leaders: set[str] = set()

        def watch() -> None:
            current = env.cluster.leader()
            if current is not None and current.name not in leaders:
                leaders.add(current.name)
                if current is not leader:
                    ctx.note(f"FAILOVER: {current.name} leads during the partition")
        lag: dict[str, int] = {}
        cut = {m.name: not connects_as_postgres(m.api_port) for m in [leader, *replicas]}
        ctx.note(f"REST API ports unreachable for user postgres (the daemons): {cut}; "
                 f"primary's REST reachable for root (HAProxy's checks): {leader.is_primary()}")
        hold(seconds, watch)
        behind = wal_lsn(leader, "pg_current_wal_lsn()")
        for m in replicas:
            lag[m.name] = behind - wal_lsn(m, "pg_last_wal_replay_lsn()")
        ctx.note(f"replay lag at the end of the partition (bytes): {lag}")
        ctx.note(f"packets dropped per rule: {chain.counters()}; leaders seen: {sorted(leaders)}")
    ctx.mark("heal")
    ctx.note("partition healed (chain deleted)")
    target = wal_lsn(leader, "pg_current_wal_lsn()")
    try:
        for m in replicas:
            wait_for(lambda m=m: m.is_streaming_replica() and wal_lsn(m, "pg_last_wal_replay_lsn()") >= target,
                     90, f"{m.name} to stream and replay what the primary wrote during the partition")
        ctx.note(f"replicas stream and caught up {time.time() - ctx.marks['heal']:.1f}s after healing")
    except Timeout as exc:
        ctx.note(f"replicas did not catch up: {exc}")


def connects_as_postgres(port: int) -> bool:
    """Whether a process of user postgres (as the daemons run) can open tcp to 127.0.0.1:port."""
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1).close()"
    return subprocess.run(["runuser", "-u", "postgres", "--", "/usr/bin/python3", "-c", code],
                          capture_output=True, timeout=30).returncode == 0


def wal_lsn(member: Member, function: str) -> int:
    try:
        return int(member.sql(f"SELECT {function} - '0/0'::pg_lsn")[0][0] or 0)
    except Exception:  # noqa: BLE001 - not answering yet
        return 0


# -- disk full --------------------------------------------------------------------------
FILL_ROWS = 200_000  # about 80 MB of WAL
ROOMY = "512m"


def run(*argv: str) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def wal_victim(env: ChaosEnv) -> Member:
    """In synchronous mode the synchronous standby (the hard case), else the first replica."""
    replicas = sorted(others(env, env.leader()), key=lambda m: m.name)
    if env.synchronous:
        return wait_for(lambda: next((m for m in replicas if is_sync(m, env.sync_path)), None), 60,
                        "a synchronous standby")
    return replicas[0]


def mount_point(member: Member) -> Path:
    return member.workdir / "walfs"


def prepare_disk_full(ctx: Context) -> None:
    """Before the load starts, for every replica (which one is the synchronous standby at fault
    time is not known yet): stop it (its daemon stops PostgreSQL), copy its pg_wal onto a fresh
    tmpfs of 512 MB, symlink pg_wal there, start it again."""
    env = ctx.env
    for victim in others(env, env.leader()):
        wal, mnt = victim.data_dir / "pg_wal", mount_point(victim)
        victim.stop()
        mnt.mkdir()
        env.cleanups.append(lambda mnt=mnt: unmount(mnt))
        run("mount", "-t", "tmpfs", "-o", f"size={ROOMY},mode=0700", "tmpfs", str(mnt))
        run("cp", "-a", f"{wal}/.", str(mnt))
        shutil.chown(mnt, "postgres", "postgres")
        wal.rename(victim.data_dir / "pg_wal.orig")
        wal.symlink_to(mnt)
        victim.start()
        ctx.marks[f"tmpfs:{victim.name}"] = 1.0
        ctx.note(f"{victim.name}'s pg_wal is now a {ROOMY} tmpfs at {mnt}")
        env.wait_healthy(180)


def unmount(mnt: Path) -> None:
    if subprocess.run(["mountpoint", "-q", str(mnt)]).returncode == 0:
        run("umount", "-l", str(mnt))
    if mnt.exists():
        mnt.rmdir()


def fs_usage(mnt: Path) -> float:
    usage = shutil.disk_usage(mnt)
    return usage.used / usage.total


def disk_full_replica_wal(ctx: Context) -> None:
    """A replica's pg_wal fills up (prepare_disk_full put it on a tmpfs, shrunk now to what it holds
    + 16 MB; in sync_strict the victim is the synchronous standby of the moment): the leader writes
    ~80 MB of WAL in one statement (CREATE TABLE AS) besides the writer's load. Held until the
    filesystem is full (or PostgreSQL logged "No space left on device": WAL segments are
    16 MB files, so a write can fail with a few MB free) and 10 s more (at most 90 s), then the
    tmpfs is grown to 512 MB (space freed) and the replica must stream again by itself. Then,
    to leave the test bed as it was, the replica is stopped, its WAL copied back into
    data/pg_wal, the tmpfs unmounted, and it is started again (teardown, after the scenario is
    judged, for each replica)."""
    env = ctx.env
    victim = wal_victim(env)
    mnt = mount_point(victim)
    leader = env.leader()
    size = shutil.disk_usage(mnt).used // MB + 16
    run("mount", "-o", f"remount,size={size}m", str(mnt))
    ctx.mark("fault")
    ctx.note(f"shrank {victim.name}'s WAL tmpfs to {size} MB (what it holds + 16 MB); "
             f"sync standbys: {env.sync_standbys()}")
    ctx.note(f"filling {victim.name}'s WAL filesystem ({fs_usage(mnt):.0%} used): {FILL_ROWS} rows on {leader.name}")
    done: list[float] = []

    def fill() -> None:  # its COMMIT may wait for the full synchronous standby: in a thread
        leader.sql(f"DROP TABLE IF EXISTS chaos_fill; CREATE TABLE chaos_fill AS "
                   f"SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, {FILL_ROWS}) g")
        done.append(time.time() - ctx.marks["fault"])
    filler = threading.Thread(target=fill, name="wal-fill", daemon=True)
    filler.start()
    filler.join(60)
    state = f"fill committed after {done[0]:.1f}s" if done else "fill not committed after 60s"
    ctx.note(f"{state}; {victim.name}'s WAL fs {fs_usage(mnt):.0%} used")
    try:
        wait_for(lambda: fs_usage(mnt) > 0.97 or no_space_logged(victim), 80, "the WAL filesystem to fill")
        ctx.note(f"{victim.name}'s WAL filesystem full ({fs_usage(mnt):.0%}, ENOSPC logged: "
                 f"{no_space_logged(victim)}) {time.time() - ctx.marks['fault']:.1f}s after the fill began")
    except Timeout:
        ctx.note(f"{victim.name}'s WAL filesystem only {fs_usage(mnt):.0%} used after 80s")
    hold(10)
    ctx.note(f"{victim.name}: streaming={victim.is_streaming_replica()}, sync standbys={env.sync_standbys()}, "
             f"'No space left' logged: {no_space_logged(victim)}")
    run("mount", "-o", f"remount,size={ROOMY}", str(mnt))
    ctx.mark("heal")
    ctx.note(f"grew {victim.name}'s WAL filesystem to {ROOMY}")
    try:
        wait_for(victim.is_streaming_replica, 120, f"{victim.name} to stream again")
        ctx.note(f"{victim.name} streams again {time.time() - ctx.marks['heal']:.1f}s after space was freed")
    except Timeout:
        ctx.note(f"{victim.name} did not stream again within 120s after space was freed")
    filler.join(60)
    ctx.note(f"fill committed {done[0]:.1f}s after the fault began" if done else "fill never committed")


def teardown_disk_full(ctx: Context) -> None:
    """After the scenario was judged: WAL back into data/pg_wal, tmpfs unmounted, fill dropped."""
    env = ctx.env
    for victim in env.cluster.members:
        if f"tmpfs:{victim.name}" in ctx.marks:
            restore_wal(victim, mount_point(victim))
            env.wait_healthy(180)
    env.leader().sql("DROP TABLE IF EXISTS chaos_fill")
    env.wait_healthy(180)


def no_space_logged(member: Member) -> bool:
    logs = sorted((member.data_dir / "log").glob("*.log")) if (member.data_dir / "log").is_dir() else []
    return any("No space left on device" in p.read_text(errors="replace") for p in logs) or \
        "No space left on device" in member.log()


def restore_wal(victim: Member, mnt: Path) -> None:
    victim.stop()
    wal = victim.data_dir / "pg_wal"
    wal.unlink()
    shutil.rmtree(victim.data_dir / "pg_wal.orig")
    run("cp", "-a", str(mnt), str(wal))
    shutil.chown(wal, "postgres", "postgres")
    wal.chmod(0o700)
    unmount(mnt)
    victim.start()


disk_full_replica_wal.prepare = prepare_disk_full  # type: ignore[attr-defined]
disk_full_replica_wal.teardown = teardown_disk_full  # type: ignore[attr-defined]

NET_FAULTS = {
    "partition_primary_from_etcd": partition_primary_from_etcd,
    "partition_primary_from_replicas": partition_primary_from_replicas,
    "disk_full_replica_wal": disk_full_replica_wal,
}
