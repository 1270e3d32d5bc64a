"""A real pg_ha cluster on 127.0.0.1: N daemons run as user postgres with Debian's python3,
each with its own PostgreSQL port, REST port and data directory, on a real etcd."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from .common import (
    SYSTEM_PYTHON,
    free_port,
    kill_group,
    kill_postmaster,
    pid_alive,
    postgres_python_env,
    postgres_tmpdir,
    spawn,
    stop_process,
    wait_for,
)
from .etcd import EtcdServer

SUPERUSER_PASSWORD = "zalando"
REPLICATION_PASSWORD = "rep-pass"


def member_config(scope: str, name: str, workdir: Path, pg_port: int, api_port: int, dcs_kind: str,
                  etcd_hostport: str, dynamic: dict[str, Any] | None = None,
                  tags: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    dcs = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3, "maximum_lag_on_failover": 1048576,
           "postgresql": {"use_pg_rewind": True, "use_slots": True,
                          "parameters": {"wal_keep_size": "64MB"}}}
    if dynamic:
        dcs.update(dynamic)
    config: dict[str, Any] = {
        "scope": scope,
        "namespace": "/service/",
        "name": name,
        "restapi": {"listen": f"127.0.0.1:{api_port}", "connect_address": f"127.0.0.1:{api_port}"},
        dcs_kind: {"hosts": [etcd_hostport]},
        "bootstrap": {
            "dcs": dcs,
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            "pg_hba": ["local all all trust",
                       "host replication replicator 127.0.0.1/32 md5",
                       "host all all 127.0.0.1/32 md5"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{pg_port}",
            "connect_address": f"127.0.0.1:{pg_port}",
            "data_dir": str(workdir / "data"),
            "bin_dir": "/usr/lib/postgresql/15/bin",
            "pgpass": str(workdir / "pgpass"),
            "authentication": {
                "replication": {"username": "replicator", "password": REPLICATION_PASSWORD},
                "superuser": {"username": "postgres", "password": SUPERUSER_PASSWORD},
            },
            "parameters": {"unix_socket_directories": str(workdir)},
        },
        "tags": tags or {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    if extra:
        config.update(extra)
    return config


class Member:
    def __init__(self, name: str, workdir: Path, config: dict[str, Any]) -> None:
        self.name = name
        self.workdir = workdir
        self.config = config
        self.pg_port = int(config["postgresql"]["listen"].rsplit(":", 1)[1])
        self.api_port = int(config["restapi"]["listen"].rsplit(":", 1)[1])
        self.data_dir = Path(config["postgresql"]["data_dir"])
        self.config_path = workdir / f"{name}.yml"
        self.log_path = workdir / "pg_ha.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ambient_caps: tuple[str, ...] = ()  # e.g. ("net_admin", "net_raw") for a VIP
        self.write_config()

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        shutil.chown(self.config_path, "postgres", "postgres")

    # -- process ------------------------------------------------------------------
    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.proc = spawn([SYSTEM_PYTHON, "-m", "pg_ha", str(self.config_path)], self.log_path,
                          as_postgres=True, env=postgres_python_env(), ambient_caps=self.ambient_caps)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM the daemon (it stops PostgreSQL itself)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)

    def kill9(self, postmaster: bool = True) -> None:
        """kill -9 of the daemon (and its whole process group), and of the postmaster."""
        if self.proc is not None:
            kill_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if postmaster:
            kill_postmaster(self.data_dir)

    def pause_daemon(self) -> list[int]:
        pids = self.daemon_pids()
        for pid in pids:
            kill_group(pid, signal.SIGSTOP)
        return pids

    def daemon_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def cleanup(self) -> None:
        stop_process(self.proc, signal.SIGTERM, timeout=30)
        kill_postmaster(self.data_dir)
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            try:
                pid = int(pidfile.read_text().splitlines()[0])
                wait_for(lambda: not pid_alive(pid), 10, "postmaster exit")
            except (ValueError, IndexError, OSError):
                pass

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- REST ----------------------------------------------------------------------
    def api(self, path: str, method: str = "GET", body: Any = None, timeout: float = 5,
            auth: tuple[str, str] | None = None) -> tuple[int, Any]:
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

    def status(self) -> dict[str, Any] | None:
        try:
            return self.api("/patroni", timeout=2)[1]
        except OSError:
            return None

    def is_primary(self) -> bool:
        try:
            return self.api("/primary", timeout=2)[0] == 200
        except OSError:
            return False

    def is_streaming_replica(self) -> bool:
        try:
            code, body = self.api("/replica", timeout=2)
        except OSError:
            return False
        return code == 200 and isinstance(body, dict) and body.get("replication_state") == "streaming"

    # -- SQL -----------------------------------------------------------------------
    def connect(self, timeout: int = 3, dbname: str = "postgres") -> Any:
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="postgres",
                                password=SUPERUSER_PASSWORD, dbname=dbname, connect_timeout=timeout)
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


class TestCluster:
    __test__ = False  # not a pytest class

    def __init__(self, etcd_hostport: str, scope: str, size: int = 3, dcs_kind: str = "etcd3",
                 dynamic: dict[str, Any] | None = None,
                 tags: dict[str, dict[str, Any]] | None = None) -> None:
        self.scope = scope
        self.dcs_kind = dcs_kind
        self.etcd_hostport = etcd_hostport
        self.root = postgres_tmpdir(f"pg_ha_{scope}_")
        self.members: list[Member] = []
        for i in range(size):
            name = f"{scope}-pg{i}"
            workdir = self.root / name
            workdir.mkdir(mode=0o700)
            shutil.chown(workdir, "postgres", "postgres")
            config = member_config(scope, name, workdir, free_port(), free_port(), dcs_kind, etcd_hostport,
                                   dynamic=dynamic, tags=(tags or {}).get(name))
            self.members.append(Member(name, workdir, config))

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def start(self) -> None:
        for m in self.members:
            m.start()

    def leader(self) -> Member | None:
        primaries = [m for m in self.members if m.running and m.is_primary()]
        return primaries[0] if len(primaries) == 1 else None

    def wait_leader(self, timeout: float = 90, exclude: tuple[str, ...] = ()) -> Member:
        def find() -> Member | None:
            leader = self.leader()
            return leader if leader is not None and leader.name not in exclude else None
        return wait_for(find, timeout, f"one leader in {self.scope} (excluding {exclude})")

    def wait_streaming(self, members: list[Member], timeout: float = 120) -> None:
        for m in members:
            wait_for(m.is_streaming_replica, timeout, f"{m.name} to stream from the leader")

    def wait_healthy(self, timeout: float = 150) -> Member:
        leader = self.wait_leader(timeout)
        others = [m for m in self.members if m is not leader and m.running]
        self.wait_streaming(others, timeout)
        return leader

    def cleanup(self) -> None:
        for m in self.members:
            try:
                m.cleanup()
            except Exception:  # noqa: BLE001 - clean the rest anyway
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"===== {m.name} =====\n{m.log()[-6000:]}" for m in self.members)


@contextmanager
def running_cluster(etcd: EtcdServer, scope: str, *, size: int = 3, dcs_kind: str = "etcd3",
                    dynamic: dict[str, Any] | None = None, tags: dict[str, dict[str, Any]] | None = None,
                    start: bool = True, healthy: float | None = None,
                    log_tail: int = 20000) -> Iterator[TestCluster]:
    """The body of every cluster fixture: a TestCluster on `etcd` (as ``.etcd``), started unless
    start=False (then the caller configures and starts members itself), and waited healthy for
    up to `healthy` seconds if given. On exit, whatever happened, the tail of the members' logs
    is printed (pytest shows it for a failed test) and every process of the cluster is stopped
    by PID and its directory removed."""
    c = TestCluster(etcd.host_port, scope=scope, size=size, dcs_kind=dcs_kind, dynamic=dynamic, tags=tags)
    c.etcd = etcd  # type: ignore[attr-defined]
    try:
        if start:
            c.start()
        if healthy is not None:
            c.wait_healthy(healthy)
        yield c
    finally:
        print(c.logs()[-log_tail:])
        c.cleanup()


def wait_writable(member: Member, timeout: float) -> float:
    """Seconds until a write on `member` succeeds."""
    start = time.monotonic()

    def write() -> bool:
        member.sql("CREATE TABLE IF NOT EXISTS pg_ha_probe(x int); INSERT INTO pg_ha_probe VALUES (1)")
        return True
    wait_for(write, timeout, f"{member.name} to accept writes")
    return time.monotonic() - start
