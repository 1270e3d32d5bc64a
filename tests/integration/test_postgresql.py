# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_ha.postgresql against real PostgreSQL 15 processes run as user postgres.

Every call goes through pg_driver.py in a fresh `runuser -u postgres` process; the
postmasters it starts outlive that process, and the fixture kills them via postmaster.pid.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.harness.common import (
    PG_BIN,
    SYSTEM_PYTHON,
    free_port,
    kill_postmaster,
    package_path,
    postgres_python_env,
    postgres_tmpdir,
    run_as_postgres,
    wait_for,
)

pytestmark = pytest.mark.integration

DRIVER_SRC = Path(__file__).with_name("pg_driver.py")
SU_PASSWORD = "su-secret"
REPL_PASSWORD = "rep'se:cr\\et"  # quote, colon and backslash: pgpass and conninfo escaping
REWIND_PASSWORD = "rw secret"
HBA = (
    "local all all peer",
    "host all all 127.0.0.1/32 scram-sha-256",
    "host replication replicator 127.0.0.1/32 scram-sha-256",
)



def DRIVER_ENV() -> dict[str, str]:  # noqa: N802
    # postgres_python_env()'s PATH lacks /usr/sbin, where runuser lives
    return postgres_python_env({"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"})


if not os.path.exists(os.path.join(PG_BIN, "postgres")):
    pytest.skip("PostgreSQL 15 binaries not installed", allow_module_level=True)


class Node:
    """One member: its settings and a way to call its Postgresql facade as user postgres."""

    def __init__(self, name: str, **overrides: Any) -> None:
        self.name = name
        self.base = postgres_tmpdir(f"pgtest_{name}_")
        self.data_dir = self.base / "data"
        self.port = free_port()
        self.settings: dict[str, Any] = {
            "name": name, "scope": "pgtest", "data_dir": str(self.data_dir), "bin_dir": PG_BIN,
            "listen_hosts": "127.0.0.1", "port": self.port, "connect_host": "127.0.0.1",
            "connect_port": self.port, "pgpass": str(self.base / "pgpass"),
            "superuser": {"username": "postgres", "password": SU_PASSWORD},
            "replication": {"username": "replicator", "password": REPL_PASSWORD},
            "rewind": {"username": "rewinder", "password": REWIND_PASSWORD},
            "pg_hba": list(HBA), "use_pg_rewind": True, "initdb": ["no-sync"],
            "parameters": {"shared_buffers": "16MB", "max_connections": 30, "fsync": "off",
                           "unix_socket_directories": str(self.base)},
        }
        self.settings.update(overrides)
        self.last_log = ""

    @property
    def conn_url(self) -> str:
        return f"postgres://127.0.0.1:{self.port}/postgres"

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        cmd = json.dumps({"settings": self.settings, "op": op, "args": list(args), "kwargs": kwargs})
        proc = run_as_postgres([SYSTEM_PYTHON, str(driver_path()), cmd], env=DRIVER_ENV(),
                               timeout=300, check=False)
        self.last_log = proc.stderr
        lines = proc.stdout.strip().splitlines()
        assert lines, f"driver {op} printed nothing (rc={proc.returncode}):\n{proc.stderr}"
        out = json.loads(lines[-1])
        assert "error" not in out, f"driver {op} failed: {out['error']}\n{proc.stderr}"
        return out["result"]

    def ok(self, op: str, *args: Any, **kwargs: Any) -> None:
        """Call an operation that must return True; show its log if it does not."""
        result = self.call(op, *args, **kwargs)
        assert result is True, f"{self.name}.{op} returned {result!r}:\n{self.last_log}"

    def sql(self, query: str, params: Any = None, user: str = "postgres",
            password: str = SU_PASSWORD) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                                dbname="postgres", connect_timeout=3)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def replicate_from(self, leader: Node) -> dict[str, str]:
        return self.call("conninfo_for", leader.conn_url)


_driver: Path | None = None


def driver_path() -> Path:
    """pg_driver.py next to the postgres-readable copy of the package."""
    global _driver
    if _driver is None:
        target = package_path() / "pg_driver.py"
        shutil.copy(DRIVER_SRC, target)
        target.chmod(0o644)
        _driver = target
    return _driver


@pytest.fixture
def make_node():
    nodes: list[Node] = []

    def make(name: str, **overrides: Any) -> Node:
        node = Node(name, **overrides)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        try:
            kill_postmaster(node.data_dir)
        finally:
            shutil.rmtree(node.base, ignore_errors=True)


def primary_and_replica(make_node) -> tuple[Node, Node, dict[str, str]]:
    a, b = make_node("node-a"), make_node("node-b")
    a.ok("bootstrap")
    a.call("sync_replication_slots", ["node-b"])
    conninfo = b.replicate_from(a)
    b.ok("create_replica", conninfo)
    assert not (b.data_dir / "log" / "postmaster.log").exists()  # a's log is not carried over
    b.ok("start", "replica", conninfo, "node_b")
    wait_for(lambda: (b.call("state")["wal_receiver"] or {}).get("status") == "streaming", 30,
             "node-b to stream")
    return a, b, conninfo


def wait_table(node: Node, table: str, present: bool = True) -> None:
    wait_for(lambda: (node.sql("SELECT to_regclass(%s) IS NOT NULL", (table,))[0][0]) == present, 30,
             f"table {table} {'present' if present else 'absent'} on {node.name}")


def test_bootstrap_replica_settings_and_stop(make_node) -> None:
    a, b, conninfo = primary_and_replica(make_node)

    st = a.call("state")
    assert st["running"] and st["accepting"] and st["in_recovery"] is False and st["role"] == "primary"
    assert st["timeline"] == 1 and st["server_version"] >= 150000 and st["sysid"].isdigit()
    assert st["wal_lsn"] > 0 and st["postmaster_start_time"]
    assert a.call("sysid") == st["sysid"]
    a.ok("is_running")
    assert a.call("postmaster_pid") > 0
    cd = a.call("controldata")
    assert cd["Data page checksum version"] == "1"
    assert a.sql("SHOW server_encoding")[0][0] == "UTF8"
    assert a.sql("SHOW cluster_name")[0][0] == "pgtest"
    assert a.sql("SHOW wal_log_hints")[0][0] == "on"
    assert (a.data_dir / "postgresql.base.conf").exists()
    assert "include 'postgresql.base.conf'" in (a.data_dir / "postgresql.conf").read_text()

    # users log in with their passwords over TCP; wrong passwords do not
    assert a.sql("SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'",
                 user="replicator", password=REPL_PASSWORD) == [(True,)]
    assert a.sql("SELECT current_user", user="rewinder", password=REWIND_PASSWORD) == [("rewinder",)]
    with pytest.raises(psycopg2.OperationalError):
        a.sql("SELECT 1", password="wrong")
    pgpass = Path(a.settings["pgpass"])
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    assert "*:*:*:replicator:rep'se\\:cr\\\\et" in pgpass.read_text()

    # the replica streams through its slot, without a password in its config
    bst = b.call("state")
    assert bst["in_recovery"] is True and bst["role"] == "replica" and bst["sysid"] == st["sysid"]
    assert bst["wal_receiver"]["slot_name"] == "node_b" and bst["timeline"] == 1
    assert bst["receive_lsn"] > 0 and bst["replay_lsn"] > 0 and bst["paused"] is False
    conf = (b.data_dir / "postgresql.conf").read_text()
    assert "primary_slot_name = 'node_b'" in conf and "recovery_target_timeline = 'latest'" in conf
    assert "password" not in conf and (b.data_dir / "standby.signal").exists()
    assert a.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'node_b'") == [(True,)]
    repl = wait_for(lambda: [r for r in a.call("state")["replication"] if r["state"] == "streaming"], 20,
                    "pg_stat_replication to show node-b")
    assert repl[0]["application_name"] == "node-b" and repl[0]["usename"] == "replicator"
    assert repl[0]["client_addr"] == "127.0.0.1" and repl[0]["sync_state"] == "async"
    assert b.call("follow", conninfo, "node_b") is False

    a.sql("CREATE TABLE replicated AS SELECT 42 AS answer")
    wait_table(b, "replicated")
    assert b.sql("SELECT answer FROM replicated") == [(42,)]

    # live settings: work_mem reloads, max_connections waits for a restart
    new = dict(a.settings, parameters=dict(a.settings["parameters"], work_mem="7MB"))
    res = a.call("update_settings", new)
    assert res["changed"] == ["work_mem"] and res["reloaded"] is True and res["pending_restart"] is False
    a.settings = new
    assert a.sql("SHOW work_mem")[0][0] == "7MB"
    new = dict(a.settings, parameters=dict(a.settings["parameters"], max_connections=40))
    res = a.call("update_settings", new)
    assert res["changed"] == ["max_connections"] and res["reloaded"] is True
    assert res["pending_restart"] is True and res["pending_restart_params"] == ["max_connections"]
    a.settings = new
    assert a.call("state")["pending_restart"] is True
    assert a.call("update_settings", new)["reloaded"] is False  # nothing changed: no reload
    a.ok("restart")
    assert a.call("state")["pending_restart"] is False and a.sql("SHOW max_connections")[0][0] == "40"
    a.ok("reload")

    # stop: immediate leaves an unclean control file; state() of a stopped server
    b.ok("stop", "immediate")
    down = b.call("state")
    assert down["running"] is False and down["accepting"] is False and down["in_recovery"] is None
    assert down["wal_lsn"] is None and down["replication"] == [] and down["sysid"] == st["sysid"]
    assert b.call("controldata")["Database cluster state"] == "in archive recovery"
    b.ok("stop", "fast")  # already stopped
    a.ok("stop")
    assert a.call("is_running") is False
    assert a.call("local_timeline_lsn")[0] == 1
    assert a.call("controldata")["Database cluster state"] == "shut down"


def test_divergence_rewind_and_rejoin(make_node) -> None:
    a, b, _ = primary_and_replica(make_node)
    a.sql("CREATE TABLE before_fork AS SELECT 1 AS x")
    wait_table(b, "before_fork")

    b.ok("promote")
    bst = b.call("state")
    assert bst["in_recovery"] is False and bst["timeline"] == 2
    assert not (b.data_dir / "standby.signal").exists()
    assert "primary_conninfo" not in (b.data_dir / "postgresql.conf").read_text()
    assert bst["pending_restart"] is False

    # the old primary keeps writing on timeline 1, then crashes
    a.sql("CREATE TABLE stray AS SELECT generate_series(1, 1000) AS x")
    kill_postmaster(a.data_dir)
    assert a.call("controldata")["Database cluster state"] == "in production"
    to_b = a.replicate_from(b)
    assert a.call("check_diverged", to_b) is None  # unclean: cannot tell yet
    a.ok("ensure_clean_shutdown")
    assert a.call("controldata")["Database cluster state"] == "shut down"

    a.ok("check_diverged", to_b)
    assert "Local timeline=1 lsn=0/" in a.last_log and "primary_timeline=2" in a.last_log
    assert "primary: history=[(1, '0/" in a.last_log
    tl, history = a.call("leader_timeline_history", to_b)
    assert tl == 2 and len(history) == 1 and history[0][0] == 1

    b.call("sync_replication_slots", ["node-a"])
    a.ok("rewind", to_b)
    assert "running pg_rewind from 127.0.0.1:" in a.last_log
    assert (a.data_dir / "standby.signal").exists()
    a_log = (a.data_dir / "log" / "postmaster.log").read_text()
    assert "database system is ready" in a_log and "selected new timeline ID" not in a_log  # not b's log
    a.ok("start", "replica", to_b, "node_a")
    assert a.sql("SELECT to_regclass('stray') IS NULL, to_regclass('before_fork') IS NOT NULL") == [
        (True, True)]
    wait_for(lambda: (a.call("state")["wal_receiver"] or {}).get("status") == "streaming", 30,
             "rewound node-a to stream from node-b")
    b.sql("CREATE TABLE after_rejoin AS SELECT 2 AS y")
    wait_table(a, "after_rejoin")
    ast = a.call("state")
    assert ast["timeline"] == 2 and ast["wal_receiver"]["slot_name"] == "node_a"
    assert a.call("check_diverged", to_b) is False  # running replica on the leader's timeline


def test_clean_switchover_needs_no_rewind(make_node) -> None:
    a, b, _ = primary_and_replica(make_node)
    a.sql("CREATE TABLE t AS SELECT 1 AS x")
    wait_table(b, "t")
    a.ok("stop", "fast")  # the replica receives the shutdown checkpoint
    wait_for(lambda: b.call("state")["replay_lsn"] > a.call("local_timeline_lsn")[1], 20,
             "node-b to replay the shutdown checkpoint")
    b.ok("promote")
    to_b = a.replicate_from(b)
    assert a.call("check_diverged", to_b) is False
    assert "Local timeline=1" in a.last_log and "primary_timeline=2" in a.last_log
    b.call("sync_replication_slots", ["node-a"])
    a.ok("start", "replica", to_b, "node_a")
    b.sql("CREATE TABLE t2 AS SELECT 2 AS y")
    wait_table(a, "t2")
    assert a.call("state")["timeline"] == 2

    # follow: a changed slot is written and reloaded without a restart
    pid = a.call("postmaster_pid")
    b.call("sync_replication_slots", ["node-a", "other"])
    a.ok("follow", to_b, "other")
    wait_for(lambda: (a.call("state")["wal_receiver"] or {}).get("slot_name") == "other", 30,
             "node-a to stream through slot 'other'")
    assert a.call("postmaster_pid") == pid and a.call("state")["pending_restart"] is False


def test_create_replica_falls_back_to_basebackup(make_node) -> None:
    a = make_node("node-a")
    a.ok("bootstrap")
    script = a.base / "broken_method.sh"
    args_file = a.base / "broken_args"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {args_file}\n'
                      'for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done\n'
                      'mkdir -p "$d" && touch "$d/junk"\nexit 3\n')
    script.chmod(0o755)
    methods = {"broken": {"command": str(script), "extra": "x y"}}
    b = make_node("node-b", create_replica_methods=["broken", "basebackup"],
                  replica_method_options=methods)
    b.ok("data_dir_empty")
    empty = b.call("state")
    assert empty["running"] is False and empty["sysid"] is None
    b.ok("create_replica", b.replicate_from(a))
    assert "replica method broken failed (rc=3)" in b.last_log
    args = args_file.read_text().splitlines()
    assert "--scope=pgtest" in args and "--role=replica" in args and "--extra=x y" in args
    assert f"--datadir={b.data_dir}" in args
    connstring = next(x for x in args if x.startswith("--connstring="))
    assert f"port={a.port}" in connstring and "user=replicator" in connstring
    assert "rep'se" not in connstring and "password" not in connstring
    assert not (b.data_dir / "junk").exists() and (b.data_dir / "PG_VERSION").exists()
    assert b.call("sysid") == a.call("sysid")

    c = make_node("node-c", create_replica_methods=["broken"], replica_method_options=methods)
    assert c.call("create_replica", c.replicate_from(a)) is False
    c.ok("data_dir_empty")
    b.ok("remove_data_dir")
    b.ok("data_dir_empty")


def test_no_postgres_left_behind() -> None:
    """Run last in this module: nothing started here may still be running."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "pgtest_" not in out
