"""pg_hactl demote-cluster / promote-cluster on real clusters, as in Patroni's standby cluster
feature: cluster B (crb) runs as a standby cluster of A (cra); A is demoted to a standby
cluster of B (its primary restarts as standby leader streaming from B's standby leader), then
B is promoted: B's standby leader becomes a read-write primary and A follows it to the new
timeline. Refusals (no remote, wrong state, declined prompt) change nothing."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.harness.cluster import Member, TestCluster
from tests.harness.common import REPO, SYSTEM_PYTHON, wait_for
from tests.harness.etcd import keys as etcd_keys

pytestmark = pytest.mark.integration


def ctl(c: TestCluster, *args: str, stdin: str = "", timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(c.root), "LANG": "C.UTF-8"}
    return subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", "-c", str(c.members[0].config_path), *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout, env=env)


def ok(c: TestCluster, *args: str, **kw) -> str:
    result = ctl(c, *args, **kw)
    assert result.returncode == 0, \
        f"pg_hactl {' '.join(args)}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fails(c: TestCluster, *args: str, code: int, message: str, **kw) -> str:
    result = ctl(c, *args, **kw)
    assert result.returncode == code, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stderr.strip() == f"Error: {message}", result.stderr
    return result.stdout


def role_of(m: Member) -> str | None:
    return (m.status() or {}).get("role")


def dynamic_config(etcd_server, scope: str) -> dict:
    return json.loads(etcd_keys(etcd_server, "etcd3", f"/service/{scope}/")[f"/service/{scope}/config"])


def receiver_port(m: Member) -> int | None:
    rows = m.sql("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return rows[0][0] if rows else None


def has_value(m: Member, value: str) -> bool:
    try:
        return bool(m.sql("SELECT 1 FROM role_t WHERE v = %s", (value,)))
    except Exception:  # noqa: BLE001 - not replicated yet / not accepting connections yet
        return False


def check_progress_output(out: str, action: str, role: str) -> None:
    lines = out.splitlines()
    assert lines[0] == "Current cluster topology" and lines[1].startswith("+---"), out
    done = [line for line in lines if line.endswith(f" cluster is successfully {action}")]
    assert len(done) == 1, out
    final = "\n".join(lines[lines.index(done[0]) + 1:])
    assert final.startswith("+---") and f"| {role} " in final, out


def test_demote_cluster_then_promote_cluster(etcd_server) -> None:
    a = TestCluster(etcd_server.host_port, scope="cra", size=1)
    b: TestCluster | None = None
    try:
        a.start()
        a0 = a.wait_leader(240)
        a0.sql("CREATE TABLE role_t(v text); INSERT INTO role_t VALUES ('from-a')")
        b = TestCluster(etcd_server.host_port, scope="crb", size=1,
                        dynamic={"standby_cluster": {"host": "127.0.0.1", "port": a0.pg_port}})
        b0 = b.members[0]
        b.start()
        wait_for(lambda: role_of(b0) == "standby_leader" and has_value(b0, "from-a"), 240,
                 "crb's standby leader streaming cra's data")

        # refusals: nothing is written
        fails(a, "demote-cluster", "--primary-slot-name", "s", "--force", code=2,
              message="At least --host, --port or --restore-command should be specified")
        fails(a, "promote-cluster", "--force", code=1, message="Cluster is already in the required state")
        fails(b, "demote-cluster", "--host", "127.0.0.1", "--force", code=1,
              message="Cluster is already in the required state")
        out = fails(a, "demote-cluster", "--host", "127.0.0.1", "--port", str(b0.pg_port), stdin="n\n", code=1,
                    message="Aborted cluster demotion")
        assert "Are you sure you want to demote cra cluster? [y/N]: " in out
        assert "standby_cluster" not in dynamic_config(etcd_server, "cra") and a0.is_primary()

        # demote A: its primary becomes a standby leader that streams from B's standby leader
        out = ok(a, "demote-cluster", "--host", "127.0.0.1", "--port", str(b0.pg_port), "--force")
        check_progress_output(out, "demoted", "Standby Leader")
        assert dynamic_config(etcd_server, "cra")["standby_cluster"] == {"host": "127.0.0.1", "port": b0.pg_port}
        assert role_of(a0) == "standby_leader" and a0.sql("SELECT pg_is_in_recovery()") == [(True,)]
        wait_for(lambda: receiver_port(a0) == b0.pg_port, 60, "cra's standby leader to stream from crb")
        fails(a, "demote-cluster", "--host", "127.0.0.1", "--force", code=1,
              message="Cluster is already in the required state")

        # promote B: a read-write primary, and A follows it onto the new timeline
        out = ok(b, "promote-cluster", "--force")
        check_progress_output(out, "promoted", "Leader")
        assert "standby_cluster" not in dynamic_config(etcd_server, "crb")
        assert b0.is_primary() and role_of(b0) == "primary"
        b0.sql("INSERT INTO role_t VALUES ('written-in-b')")
        wait_for(lambda: has_value(a0, "written-in-b"), 90, "cra to replay crb's write after the promotion")
        assert receiver_port(a0) == b0.pg_port and role_of(a0) == "standby_leader"
        listing = json.loads(ok(a, "list", "-f", "json"))
        assert [(r["Member"], r["Role"]) for r in listing] == [(a0.name, "Standby Leader")]
    finally:
        print(a.logs()[-8000:])
        if b is not None:
            print(b.logs()[-8000:])
            b.cleanup()
        a.cleanup()
