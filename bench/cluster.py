"""A 3-member cluster of one daemon kind on 127.0.0.1, started from Patroni-schema config files
written by the test harness's ``member_config`` (the same file for either daemon)."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from tests.harness.cluster import SUPERUSER_PASSWORD, member_config
from tests.harness.common import free_port, postgres_tmpdir, spawn, wait_for

from .kinds import Kind
from .registry import Registry, postmaster_pid, signal_pid, start_ticks, stop_postmaster, wait_gone


class BenchMember:
    def __init__(self, name: str, workdir: Path, config: dict[str, Any]) -> None:
        self.name = name
        self.workdir = workdir
        self.config = config
        self.pg_port = int(config["postgresql"]["listen"].rsplit(":", 1)[1])
        self.api_port = int(config["restapi"]["listen"].rsplit(":", 1)[1])
        self.data_dir = Path(config["postgresql"]["data_dir"])
        self.config_path = workdir / f"{name}.yml"
        self.log_path = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        shutil.chown(self.config_path, "postgres", "postgres")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def api(self, path: str, method: str = "GET", body: Any = None, timeout: float = 2) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                code, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            code, raw = exc.code, exc.read()
        try:
            return code, json.loads(raw) if raw else None
        except ValueError:
            return code, raw.decode(errors="replace")

    def is_primary(self) -> bool:
        try:
            return self.api("/primary", timeout=1)[0] == 200
        except OSError:
            return False

    def connect(self, timeout: int = 2) -> Any:
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="postgres", password=SUPERUSER_PASSWORD,
                                dbname="postgres", connect_timeout=timeout)
        conn.autocommit = True
        return conn

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def receiving(self) -> bool:
        """This member's own PostgreSQL runs and its WAL receiver streams (a clone in progress does
        not count, although pg_basebackup -X stream may show in the primary's pg_stat_replication
        under the member's application_name)."""
        try:
            rows = self.sql("SELECT status FROM pg_stat_wal_receiver")
        except psycopg2.Error:
            return False
        return bool(rows) and rows[0][0] == "streaming"

    def streaming_names(self) -> set[str]:
        """application_name of every replica streaming from this (primary) member."""
        rows = self.sql("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
        return {str(r[0]) for r in rows}


class BenchCluster:
    """Members `<scope>-0..2` of one kind; every process goes into the registry."""

    def __init__(self, kind: Kind, scope: str, dcs_hostport: str, dynamic: dict[str, Any],
                 registry: Registry, size: int = 3, dcs_section: str = "etcd3") -> None:
        self.kind = kind
        self.scope = scope
        self.registry = registry
        self.dynamic = dynamic
        self.root = postgres_tmpdir(f"bench_{scope}_")
        registry.add_temp_dir(self.root)
        self.members: list[BenchMember] = []
        for i in range(size):
            name = f"{scope}-{i}"
            workdir = self.root / name
            workdir.mkdir(mode=0o700)
            shutil.chown(workdir, "postgres", "postgres")
            config = member_config(scope, name, workdir, free_port(), free_port(), dcs_section, dcs_hostport,
                                   dynamic=dynamic)
            self.members.append(BenchMember(name, workdir, config))

    # -- processes ------------------------------------------------------------------------
    def start(self, member: BenchMember) -> None:
        assert not member.running, f"{member.name} already running"
        member.proc = spawn(self.kind.daemon_argv(member.config_path), member.log_path, as_postgres=True,
                            env=self.kind.env)
        self.registry.add_process(member.proc.pid, f"{self.kind.key} {member.name}")
        self.registry.add_data_dir(member.data_dir)

    def start_all(self) -> None:
        for member in self.members:
            self.start(member)

    def kill9(self, member: BenchMember) -> None:
        """kill -9 of the daemon (its process group) and of the postmaster, as fast as possible."""
        if member.proc is not None:
            signal_pid(member.proc.pid, signal.SIGKILL, group=True)
        pid = postmaster_pid(member.data_dir)
        if pid is not None:
            signal_pid(pid, signal.SIGKILL)
        if member.proc is not None:
            member.proc.wait(10)
        if pid is not None:
            wait_gone(pid, None, 10)

    def stop_all(self, timeout: float = 40) -> None:
        """SIGTERM to every daemon (each stops its PostgreSQL), then SIGKILL what is left."""
        for member in self.members:
            if member.running and member.proc is not None:
                signal_pid(member.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for member in self.members:
            if member.proc is None:
                continue
            try:
                member.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_pid(member.proc.pid, signal.SIGKILL, group=True)
                member.proc.wait(10)
        for member in self.members:
            stop_postmaster(member.data_dir)

    def cleanup(self, keep_logs_in: Path | None) -> None:
        self.stop_all()
        if keep_logs_in is not None:
            keep_logs_in.mkdir(parents=True, exist_ok=True)
            for member in self.members:
                if member.log_path.exists():
                    shutil.copy(member.log_path, keep_logs_in / f"{member.name}.log")
                pg_logs = member.data_dir / "log"  # pg_ha's pg_ctl -l file; Patroni's goes to its own log
                if pg_logs.is_dir():
                    for path in sorted(pg_logs.iterdir()):
                        shutil.copy(path, keep_logs_in / f"{member.name}-postgres-{path.name}")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- state ----------------------------------------------------------------------------
    def leader(self) -> BenchMember | None:
        primaries = [m for m in self.members if m.running and m.is_primary()]
        return primaries[0] if len(primaries) == 1 else None

    def healthy(self) -> BenchMember | None:
        """The leader, once it is the only primary and every other running member streams from it
        (seen on both ends: the primary's pg_stat_replication, the replica's pg_stat_wal_receiver)."""
        leader = self.leader()
        if leader is None:
            return None
        others = [m for m in self.members if m.running and m is not leader]
        if not {m.name for m in others} <= leader.streaming_names():
            return None
        return leader if all(m.receiving() for m in others) else None

    def wait_healthy(self, timeout: float) -> BenchMember:
        return wait_for(self.healthy, timeout, f"{self.scope}: one leader and every replica streaming",
                        interval=0.1)

    def replicas(self, leader: BenchMember) -> list[BenchMember]:
        return [m for m in self.members if m is not leader]

    def daemon_pids(self) -> dict[str, int]:
        return {m.name: m.proc.pid for m in self.members if m.running and m.proc is not None
                and start_ticks(m.proc.pid) is not None}

