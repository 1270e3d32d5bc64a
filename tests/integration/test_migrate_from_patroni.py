"""Live migration of a running Patroni 4.1.5 cluster to pg_ha, member by member.

Three Patroni members on a real etcd, HAProxy routing writes to the leader with Patroni's
`OPTIONS /primary` check, a writer writing through HAProxy all along. Each member is then
replaced by pg_ha on the same data directory, the same (Patroni) config file and the same
DCS keys: the replicas first (SIGTERM to Patroni, which stops its PostgreSQL; start pg_ha;
wait until it streams again), then one switchover to a migrated member with
`pg_hactl switchover`, then the old leader. Nothing acknowledged may be lost, the leader
changes once, no data directory is cloned again, every member ends streaming.
"""
from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.chaos.haproxy import HAProxy
from tests.harness.cluster import SUPERUSER_PASSWORD, member_config
from tests.harness.common import (
    SYSTEM_PYTHON,
    free_port,
    postgres_python_env,
    postgres_tmpdir,
    wait_for,
)
from tests.harness.etcd import EtcdServer, b64, v3_post
from tests.harness.patroni import PATRONI_VERSION, DaemonMember, ensure_patroni
from tests.harness.writes import AckedWriter

pytestmark = pytest.mark.integration
SCOPE = "migrate"
MARKER = "elephant_migration_marker"
CUSTOM_WORK_MEM = "7MB"
CLONE_WORDS = ("pg_basebackup", "basebackup", "removing the data directory", "removed the data directory")


class ProxyEndpoint:
    """The writer's view: HAProxy's primary port."""

    def __init__(self, port: int) -> None:
        self.port = port

    def connect(self, timeout: int = 3) -> Any:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", password=SUPERUSER_PASSWORD,
                                dbname="postgres", connect_timeout=timeout)
        conn.autocommit = True
        return conn

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


class LeaderWatch(threading.Thread):
    """Records every distinct holder of the leader key, read from etcd every 100 ms."""

    def __init__(self, etcd: EtcdServer, scope: str) -> None:
        super().__init__(daemon=True)
        self.etcd = etcd
        self.key = b64(f"/service/{scope}/leader")
        self.holders: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            try:
                kvs = v3_post(self.etcd, "/v3/kv/range", {"key": self.key}).get("kvs") or []
            except OSError:
                continue
            if kvs:
                holder = base64.b64decode(kvs[0].get("value", "")).decode()
                if not self.holders or self.holders[-1] != holder:
                    self.holders.append(holder)

    def stop(self) -> list[str]:
        self._done.set()
        self.join(5)
        return self.holders


class Migration:
    def __init__(self, etcd: EtcdServer, bin_dir: Path) -> None:
        self.etcd = etcd
        self.bin_dir = bin_dir
        self.root = postgres_tmpdir("pg_ha_migrate_")
        self.members: list[DaemonMember] = []
        for i in range(3):
            name = f"{SCOPE}-{i}"
            workdir = self.root / name
            workdir.mkdir(mode=0o700)
            shutil.chown(workdir, "postgres", "postgres")
            config = member_config(SCOPE, name, workdir, free_port(), free_port(), "etcd3", etcd.host_port)
            custom = workdir / "custom.conf"  # Patroni's postgresql.custom_conf: kept after the migration
            custom.write_text(f"work_mem = '{CUSTOM_WORK_MEM}'\n")
            shutil.chown(custom, "postgres", "postgres")
            config["postgresql"]["custom_conf"] = str(custom)
            self.members.append(DaemonMember(name, workdir, config))
        self.haproxy = HAProxy(self.root, [(m.name, m.pg_port, m.api_port) for m in self.members])

    def member(self, name: str) -> DaemonMember:
        return next(m for m in self.members if m.name == name)

    def leader(self) -> DaemonMember | None:
        primaries = [m for m in self.members if m.running and m.is_primary()]
        return primaries[0] if len(primaries) == 1 else None

    def healthy(self) -> DaemonMember | None:
        """The leader, once it is the only primary and every other member streams from it."""
        leader = self.leader()
        if leader is None:
            return None
        others = {m.name for m in self.members if m is not leader}
        return leader if others <= leader.streaming_names() else None

    def wait_healthy(self, timeout: float, what: str) -> DaemonMember:
        return wait_for(self.healthy, timeout, f"one leader and every replica streaming ({what})", interval=0.2)

    def pg_hactl(self, *args: str) -> str:
        argv = [SYSTEM_PYTHON, "-m", "pg_ha.ctl", "-c", str(self.members[0].config_path), *args]
        proc = subprocess.run(argv, env=postgres_python_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"pg_hactl {' '.join(args)}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def logs(self) -> str:
        parts = []
        for m in self.members:
            for path in (m.patroni_log, m.log_path):
                if path.exists():
                    parts.append(f"===== {m.name} {path.name} =====\n{path.read_text(errors='replace')[-8000:]}")
        return "\n".join(parts)

    def cleanup(self) -> None:
        self.haproxy.stop()
        for m in self.members:
            try:
                m.cleanup()
            except Exception:  # noqa: BLE001 - clean the rest anyway
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def migration(etcd_server: EtcdServer) -> Iterator[Migration]:
    bin_dir = ensure_patroni()
    mig = Migration(etcd_server, bin_dir)
    try:
        yield mig
    finally:
        print(mig.logs())
        mig.cleanup()


def migrate_member(mig: Migration, member: DaemonMember, writer: AckedWriter) -> None:
    """Patroni -> pg_ha on one replica: stop, start, wait until it streams and writes go on."""
    member.stop_daemon()
    assert not member.postmaster_running(), f"{member.name}: Patroni left PostgreSQL running"
    member.start()
    mig.wait_healthy(120, f"{member.name} back as a pg_ha replica")
    wait_for(member.is_streaming_replica, 60, f"{member.name}'s REST API to report streaming")
    since = time.monotonic()
    wait_for(lambda: writer.acked_since(since) >= 20, 60, "writes through HAProxy to go on")


def test_migrate_patroni_cluster_member_by_member(migration: Migration) -> None:
    mig = migration
    for m in mig.members:
        m.start_patroni(mig.bin_dir)
    first = mig.wait_healthy(180, f"Patroni {PATRONI_VERSION} cluster")
    assert all(m.kind == "patroni" for m in mig.members)
    first_timeline = first.timeline()

    # what must survive: each data directory's identity and a file no clone would carry
    sysids = {m.name: m.system_identifier() for m in mig.members}
    assert len(set(sysids.values())) == 1, sysids
    tokens = {}
    for m in mig.members:
        tokens[m.name] = secrets.token_hex(16)
        path = m.data_dir / MARKER
        path.write_text(tokens[m.name])
        shutil.chown(path, "postgres", "postgres")
    patroni_log_offsets = {m.name: m.patroni_log.stat().st_size for m in mig.members}

    mig.haproxy.start()
    mig.haproxy.wait_only_up(first.name)
    watch = LeaderWatch(mig.etcd, SCOPE)
    watch.start()
    with AckedWriter(ProxyEndpoint(mig.haproxy.port), "migration_writes") as writer:
        wait_for(lambda: len(writer.acked) >= 50, 60, "the first writes through HAProxy")
        replicas = [m for m in mig.members if m is not first]
        for member in replicas:
            migrate_member(mig, member, writer)

        candidate = replicas[0]
        mig.pg_hactl("switchover", SCOPE, "--leader", first.name, "--candidate", candidate.name, "--force")
        wait_for(lambda: mig.healthy() is candidate, 120, f"{candidate.name} leading, {first.name} streaming")
        mig.haproxy.wait_only_up(candidate.name)
        since = time.monotonic()
        wait_for(lambda: writer.acked_since(since) >= 20, 60, "writes to the new leader through HAProxy")

        migrate_member(mig, first, writer)
    holders = watch.stop()

    final = mig.wait_healthy(60, "after the migration")
    assert all(m.kind == "pg_ha" for m in mig.members)
    missing = writer.missing_on(final)
    gap = writer.longest_gap()
    print(f"\nMIGRATION Patroni {PATRONI_VERSION} -> pg_ha: acknowledged {len(writer.acked)}, lost {len(missing)}, "
          f"longest write gap {gap:.2f}s, leader key holders {holders}, "
          f"timelines {first_timeline} -> {final.timeline()}")
    assert missing == [], f"acknowledged writes lost: {missing[:50]}"
    assert holders == [first.name, candidate.name], f"leader changed other than once: {holders}"
    assert final is candidate
    assert final.timeline() == first_timeline + 1

    for m in mig.members:
        assert m.system_identifier() == sysids[m.name], f"{m.name}: system identifier changed"
        assert (m.data_dir / MARKER).read_text() == tokens[m.name], f"{m.name}: marker gone, data dir replaced"
        pg_ha_log = m.log().lower()
        patroni_after = m.patroni_log.read_bytes()[patroni_log_offsets[m.name]:].decode(errors="replace").lower()
        for word in CLONE_WORDS:
            assert word not in pg_ha_log, f"{m.name}: pg_ha log mentions {word!r}"
            assert word not in patroni_after, f"{m.name}: Patroni log mentions {word!r} after the marker"
    assert {m.name for m in mig.members if m is not final} <= final.streaming_names()
    for m in mig.members:
        assert m.sql("SHOW work_mem")[0][0] == CUSTOM_WORK_MEM, f"{m.name}: postgresql.custom_conf not in effect"
    for m in mig.members:
        if m is not final:
            assert m.is_streaming_replica(), f"{m.name} does not report streaming: {json.dumps(m.status())}"

    # Patroni left a slot for each other member on its replicas: none may pin old WAL there
    end_lsn = int(final.sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0][0])
    for m in mig.members:
        if m is not final:
            wait_for(lambda m=m: replica_slots_caught_up(m, end_lsn), 60,
                     f"{m.name}'s replication slots to stop pinning WAL from before {end_lsn}")


def replica_slots_caught_up(member: DaemonMember, lsn: int) -> bool:
    rows = member.sql("SELECT slot_name, pg_wal_lsn_diff(restart_lsn, '0/0')::bigint FROM pg_replication_slots "
                      "WHERE slot_type = 'physical' AND NOT active")
    print(f"{member.name} slots: {rows}")
    return all(restart is not None and int(restart) >= lsn for _name, restart in rows)
