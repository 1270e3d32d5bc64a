"""pg_hactl against a real 3-member pg_ha cluster on a real etcd (v3 API).

Member hactl-pg2 is tagged nofailover (never leader, never a candidate). pg_hactl runs as
root from the repository with Debian's python3 (as on managed hosts): non-interactively
with --force, and interactively on a pseudo-terminal answering its prompts (declining
with N must leave everything unchanged). The tests run in file order on one cluster.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness.cluster import SUPERUSER_PASSWORD, Member, TestCluster, running_cluster
from tests.harness.common import REPO, SYSTEM_PYTHON, free_port, wait_for
from tests.harness.etcd import keys, put
from tests.harness.pty import PtyProcess

pytestmark = pytest.mark.integration
SCOPE = "hactl"
PREFIX = f"/service/{SCOPE}/"


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory) -> Iterator[TestCluster]:
    home = tmp_path_factory.mktemp("home")
    with running_cluster(etcd_server, SCOPE, tags={f"{SCOPE}-pg2": {"nofailover": True}}, healthy=240,
                         log_tail=15000) as c:
        c.home = home  # type: ignore[attr-defined]
        yield c


# -- helpers ------------------------------------------------------------------------------
def ctl_env(c: TestCluster, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(c.home), "LANG": "C.UTF-8"}  # type: ignore[attr-defined]
    env.update(extra)
    return env


def argv(c: TestCluster, *args: str, config: bool = True) -> list[str]:
    return [SYSTEM_PYTHON, "-m", "pg_ha.ctl", *(["-c", str(c.members[0].config_path)] if config else []), *args]


def ctl(c: TestCluster, *args: str, stdin: str | None = None, config: bool = True, timeout: float = 180,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(c, *args, config=config), input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=timeout, env=env or ctl_env(c))


def ok(c: TestCluster, *args: str, **kw) -> str:
    result = ctl(c, *args, **kw)
    assert result.returncode == 0, \
        f"pg_hactl {' '.join(args)}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fails(c: TestCluster, *args: str, code: int = 1, contains: str = "", **kw) -> str:
    """The command fails with exit `code` and exactly one 'Error: ...' line on stderr."""
    result = ctl(c, *args, **kw)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert contains in lines[0], lines[0]
    return lines[0]


def pty(c: TestCluster, *args: str, env: dict[str, str] | None = None) -> PtyProcess:
    return PtyProcess(argv(c, *args), env or ctl_env(c))


def members_json(c: TestCluster) -> list[dict]:
    return json.loads(ok(c, "list", "-f", "json"))


def leader_name(c: TestCluster) -> str | None:
    return next((m["Member"] for m in members_json(c) if m["Role"] == "Leader"), None)


def replicas(c: TestCluster) -> list[Member]:
    leader = c.wait_leader(120)
    return [m for m in c.members if m is not leader]


def pm_start(m: Member) -> float:
    return float(m.sql("SELECT extract(epoch FROM pg_postmaster_start_time())")[0][0])


def dcs_keys(c: TestCluster) -> dict[str, str]:
    return keys(c.etcd, "etcd3", PREFIX)  # type: ignore[attr-defined]


def config_json(c: TestCluster) -> dict:
    return json.loads(ok(c, "show-config", "-f", "json"))


def wait_healthy(c: TestCluster) -> Member:
    leader = c.wait_healthy(timeout=180)
    # a replica reports its WAL position once per loop, so right after bootstrap it can trail
    # optime/leader by a segment switch; wait until every member is running and caught up
    # -f json has patronictl 4.1's keys: a replica's Receive Lag / Replay Lag (MB), none for the leader
    wait_for(lambda: all(m["State"] in ("running", "streaming")
                         and (m["Role"] == "Leader" or m.get("Receive Lag") == 0 and m.get("Replay Lag") == 0)
                         for m in members_json(c)), 60, "members running and caught up")
    return leader


def in_future(seconds: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


# -- list & friends -----------------------------------------------------------------------
def test_list_table_and_formats(cluster: TestCluster) -> None:
    leader = wait_healthy(cluster)
    out = ok(cluster, "list")
    lines = out.splitlines()
    assert lines[0].startswith("+---") and lines[0] == lines[2] == lines[-1]
    assert [h.strip() for h in lines[1].strip("|").split("|")] == \
        ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
    rows = {r[1]: r for r in ([x.strip() for x in line.strip("|").split("|")] for line in lines[3:-1])}
    assert sorted(rows) == sorted(m.name for m in cluster.members)
    assert rows[leader.name][3:5] == ["Leader", "running"]
    for m in replicas(cluster):
        assert rows[m.name][0] == SCOPE and rows[m.name][2] == f"127.0.0.1:{m.pg_port}"
        assert rows[m.name][3:5] == ["Replica", "streaming"] and rows[m.name][6] == "0"
    tsv = [line.split("\t") for line in ok(cluster, "list", "-f", "tsv").splitlines()]
    assert tsv[0] == ["Cluster", "Member", "Host", "Role", "State", "TL", "Receive LSN", "Receive Lag",
                      "Replay LSN", "Replay Lag", "Tags"] and len(tsv) == 4  # patronictl 4.1's (pg2 has a tag)
    import yaml
    assert yaml.safe_load(ok(cluster, "list", "-f", "yaml")) == members_json(cluster)
    extended = ok(cluster, "list", "-e")
    assert "Pending restart" in extended and "Scheduled restart" in extended and "nofailover: true" in extended
    topology = ok(cluster, "topology")
    assert f"| {leader.name} " in topology and f"| + {replicas(cluster)[0].name} " in topology
    stamped = ok(cluster, "list", "-t").splitlines()[0]
    assert datetime.strptime(stamped, "%Y-%m-%d %H:%M:%S")


def test_list_wall_time(cluster: TestCluster) -> None:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        ok(cluster, "list")
        times.append(time.perf_counter() - started)
    print(f"\nTIMING pg_hactl list (3 members, whole process, {SYSTEM_PYTHON}): median {statistics.median(times):.3f}s"
          f" of {[round(t, 3) for t in times]}")


def test_list_watch_until_ctrl_c(cluster: TestCluster) -> None:
    with pty(cluster, "list", "-w", "0.5") as p:
        for _ in range(3):
            p.expect(r"\| Cluster \| Member")
        p.interrupt()
        assert p.wait(30) == 0


def test_errors_are_one_line(cluster: TestCluster) -> None:
    fails(cluster, "--dcs-url", f"etcd3://127.0.0.1:{free_port()}", "list", SCOPE, contains="cannot read cluster")
    fails(cluster, "list", "nosuchcluster", contains="cluster nosuchcluster not found in the DCS")
    fails(cluster, "restart", SCOPE, "nosuchmember", "--force", contains="nosuchmember is not a member")
    fails(cluster, "switchover", "--candidate", f"{SCOPE}-pg2", "--force", contains="tagged nofailover")
    fails(cluster, "switchover", "--candidate", "ghost", "--force", contains="does not exist")
    fails(cluster, "switchover", "--leader", "ghost", "--force", contains="is not the leader")
    fails(cluster, "failover", "--force", contains="only to a specific candidate")
    fails(cluster, "-c", "/nonexistent.yml", "list", config=False, contains="does not exist")
    fails(cluster, "query", code=2, contains="--command or --file")
    fails(cluster, "dsn", "-r", "replica", "-m", "x", code=2, contains="mutually exclusive")
    fails(cluster, "flush", SCOPE, "bogus", code=2, contains="restart or switchover")
    fails(cluster, "restart", "--pg-version", "x.y", "--force", code=2, contains="Invalid PostgreSQL version")
    result = ctl(cluster, "nosuchcommand")
    assert result.returncode == 2 and result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1


def test_config_sources(cluster: TestCluster, tmp_path: Path) -> None:
    """A ctl file with only the DCS section, the env variable, the default path, --dcs-url."""
    hosts = cluster.etcd.host_port  # type: ignore[attr-defined]
    only_dcs = tmp_path / "ctl.yaml"
    only_dcs.write_text(f"etcd3:\n  hosts: ['{hosts}']\n")
    assert SCOPE in ok(cluster, "-c", str(only_dcs), "list", SCOPE, config=False)
    fails(cluster, "-c", str(only_dcs), "list", config=False, code=2, contains="no cluster name")
    with_scope = tmp_path / "scoped.yaml"
    with_scope.write_text(f"scope: {SCOPE}\netcd3:\n  hosts: {hosts}\nctl:\n  insecure: true\n")
    assert SCOPE in ok(cluster, "list", config=False, env=ctl_env(cluster, PG_HACTL_CONFIG_FILE=str(with_scope)))
    default = Path(cluster.home) / ".config" / "pg_ha" / "pg_hactl.yaml"  # type: ignore[attr-defined]
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_text(with_scope.read_text())
    try:
        assert "Lag in MB" in ok(cluster, "list", config=False)
    finally:
        default.unlink()
    assert SCOPE in ok(cluster, "--dcs-url", f"etcd3://{hosts}", "list", SCOPE, config=False)
    assert SCOPE in ok(cluster, "--dcs-url", f"etcd3://{hosts}/service", "list", SCOPE, config=False)
    fails(cluster, "--dcs-url", f"etcd3://{hosts}/elsewhere", "list", SCOPE, config=False, contains="not found")


# -- configuration ------------------------------------------------------------------------
def work_mem_everywhere(c: TestCluster, value: str) -> None:
    for m in c.members:
        wait_for(lambda m=m: m.sql("SHOW work_mem")[0][0] == value, 60, f"work_mem={value} on {m.name}")


def test_edit_config_round_trip(cluster: TestCluster) -> None:
    out = ok(cluster, "edit-config", "-p", "work_mem=8MB", "-s", "maximum_lag_on_failover=2097152", "--force")
    assert "+    work_mem: 8MB" in out and "-maximum_lag_on_failover: 1048576" in out
    assert "+maximum_lag_on_failover: 2097152" in out and out.splitlines()[:2] == ["---", "+++"]
    assert out.rstrip().endswith("Configuration changed")
    assert config_json(cluster)["postgresql"]["parameters"]["work_mem"] == "8MB"
    work_mem_everywhere(cluster, "8MB")
    assert ok(cluster, "edit-config", "-p", "work_mem=8MB", "--force").strip() == "Not changed"
    assert "work_mem: 8MB" in ok(cluster, "show-config")


def test_edit_config_with_editor_decline_then_accept(cluster: TestCluster, tmp_path: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/work_mem: 8MB/work_mem: 6MB/' \"$1\"\n")
    editor.chmod(0o755)
    env = ctl_env(cluster, EDITOR=str(editor))
    before = config_json(cluster)
    with pty(cluster, "edit-config", env=env) as p:
        p.expect(r"-    work_mem: 8MB\n\+    work_mem: 6MB\n")
        p.expect(r"Apply these changes\? \[y/N\]: ")
        p.sendline("N")
        p.expect("Not applied")
        assert p.wait() == 0
    assert config_json(cluster) == before
    with pty(cluster, "edit-config", env=env) as p:
        p.expect(r"Apply these changes\? \[y/N\]: ")
        p.sendline("y")
        p.expect("Configuration changed")
        assert p.wait() == 0
    work_mem_everywhere(cluster, "6MB")


def test_edit_config_apply_replace_and_invalid(cluster: TestCluster, tmp_path: Path) -> None:
    patch = tmp_path / "patch.yaml"
    patch.write_text("postgresql:\n  parameters:\n    work_mem: 5MB\n")
    ok(cluster, "edit-config", "--apply", str(patch), "--force", "-q")
    assert ok(cluster, "edit-config", "--apply", "-", stdin="ttl: 10\n").strip() == "Not changed"
    out = ok(cluster, "edit-config", "--apply", "-", stdin="postgresql: {parameters: {work_mem: 7MB}}")
    assert "+    work_mem: 7MB" in out and out.rstrip().endswith("Use --force option to apply changes")
    ok(cluster, "edit-config", "--apply", "-", "--force", stdin="postgresql: {parameters: {work_mem: null}}")
    assert "work_mem" not in config_json(cluster)["postgresql"]["parameters"]
    work_mem_everywhere(cluster, "4MB")
    before = config_json(cluster)
    fails(cluster, "edit-config", "-s", "ttl=soon", "--force", contains="invalid, nothing changed")
    assert config_json(cluster) == before
    whole = tmp_path / "whole.yaml"
    whole.write_text(ok(cluster, "show-config"))
    assert ok(cluster, "edit-config", "--replace", str(whole), "--force").strip() == "Not changed"


def test_edit_config_concurrent_change_is_an_error(cluster: TestCluster, tmp_path: Path) -> None:
    """The config changes while the editor is open: the write is refused (compare-and-swap)."""
    editor = tmp_path / "racing-editor.sh"
    inner = " ".join(argv(cluster, "edit-config", "-s", "maximum_lag_on_failover=3145728", "--force", "-q"))
    editor.write_text(f"#!/bin/sh\n{inner} || exit 3\nsed -i 's/ttl: 10/ttl: 12/' \"$1\"\n")
    editor.chmod(0o755)
    line = fails(cluster, "edit-config", "--force", env=ctl_env(cluster, EDITOR=str(editor)),
                 contains="concurrent changes")
    assert "Config modification aborted" in line
    config = config_json(cluster)
    assert config["maximum_lag_on_failover"] == 3145728 and config["ttl"] == 10


def test_sync_standby_role(cluster: TestCluster) -> None:
    ok(cluster, "edit-config", "-s", "synchronous_mode=true", "--force", "-q")
    try:
        rows = wait_for(lambda: [m for m in members_json(cluster) if m["Role"] == "Sync Standby"], 90,
                        "a Sync Standby row")
        assert len(rows) == 1 and rows[0]["State"] == "streaming"
        assert "| Sync Standby | streaming |" in ok(cluster, "list")
    finally:
        ok(cluster, "edit-config", "-s", "synchronous_mode=null", "--force", "-q")
    wait_for(lambda: all(m["Role"] != "Sync Standby" for m in members_json(cluster)), 90, "no Sync Standby")


# -- pause / resume / reload ----------------------------------------------------------------
def test_pause_and_resume_wait(cluster: TestCluster) -> None:
    out = ok(cluster, "pause", "--wait")
    assert "'pause' request sent, waiting until it is recognized by all nodes" in out
    assert "Success: cluster management is paused" in out
    assert all(m.status().get("pause") is True for m in cluster.members)
    assert ok(cluster, "list").rstrip().endswith("Maintenance mode: on")
    fails(cluster, "pause", contains="already paused")
    fails(cluster, "restart", "--scheduled", in_future(3600).isoformat(), "--force", contains="paused state")
    assert "Success: cluster management is resumed" in ok(cluster, "resume", "--wait")
    assert all(not m.status().get("pause") for m in cluster.members)
    assert "Maintenance mode" not in ok(cluster, "list")
    fails(cluster, "resume", contains="not paused")


def test_reload(cluster: TestCluster) -> None:
    out = ok(cluster, "reload", SCOPE, "--force")
    for m in cluster.members:
        assert f"Reload request received for member {m.name} and will be processed within 2 seconds" in out


# -- restart --------------------------------------------------------------------------------
def test_restart_interactive_decline_then_accept(cluster: TestCluster) -> None:
    target = replicas(cluster)[0]
    started = pm_start(target)
    with pty(cluster, "restart", SCOPE, target.name) as p:
        p.expect(rf"Are you sure you want to restart members {target.name}\? \[y/N\]: ")
        p.sendline("N")
        p.expect("Error: Aborted restart")
        assert p.wait() == 1
    assert pm_start(target) == started
    with pty(cluster, "restart", SCOPE, target.name) as p:
        p.expect(r"\[y/N\]: ")
        p.sendline("y")
        p.expect(r"Restart if the PostgreSQL version is less than provided \(e.g. 9.5.2\) \[\]: ")
        p.sendline("")
        p.expect(r"When should the restart take place \(e.g. \d{4}-\d\d-\d\dT\d\d:\d\d\) \[now\]: ")
        p.sendline("")
        p.expect(f"Success: restart on member {target.name}")
        assert p.wait(120) == 0
    assert pm_start(target) > started


def test_restart_pending_version_and_role(cluster: TestCluster) -> None:
    ok(cluster, "edit-config", "-p", "max_connections=110", "--force", "-q")
    wait_for(lambda: all(m.get("Pending restart") == "*" for m in members_json(cluster)), 60, "pending restart")
    assert "Pending restart" in ok(cluster, "list")
    target = replicas(cluster)[0]
    started = pm_start(target)
    out = ok(cluster, "restart", SCOPE, target.name, "--pg-version", "9.6", "--force")
    assert f"Skipped: restart of member {target.name}" in out and pm_start(target) == started
    out = ok(cluster, "restart", SCOPE, "--pending", "--force", "--timeout", "120")
    assert out.count("Success: restart on member") == 3, out
    for m in cluster.members:
        wait_for(lambda m=m: m.sql("SHOW max_connections")[0][0] == "110", 60, f"max_connections on {m.name}")
    wait_for(lambda: "Pending restart" not in ok(cluster, "list"), 60, "no pending restart column")
    assert ok(cluster, "restart", SCOPE, "--pending", "--force").strip() == "No members with a pending restart"
    out = ok(cluster, "restart", SCOPE, "--role", "replica", "--force")
    assert sorted(line.rsplit(" ", 1)[1] for line in out.splitlines()) == sorted(m.name for m in replicas(cluster))
    wait_healthy(cluster)


def test_scheduled_restart_fires_and_flush_cancels(cluster: TestCluster) -> None:
    target = replicas(cluster)[0]
    started = pm_start(target)
    when = in_future(12)
    out = ok(cluster, "restart", SCOPE, target.name, "--scheduled", when.isoformat(), "--force")
    assert f"Success: restart scheduled on member {target.name}" in out
    wait_for(lambda: "Scheduled restart" in ok(cluster, "list"), 30, "Scheduled restart column")
    while datetime.now(UTC) < when - timedelta(seconds=1.5):  # not before its time
        assert pm_start(target) == started
        time.sleep(0.5)
    wait_for(lambda: pm_start(target) > started, 90, f"scheduled restart of {target.name}")
    assert pm_start(target) >= when.timestamp(), "the restart happened before its time"
    wait_for(lambda: "Scheduled restart" not in ok(cluster, "list"), 30, "scheduled restart gone")
    # interactive, with the time typed at the prompt; then flushed
    later = in_future(3600)
    with pty(cluster, "restart", SCOPE, target.name) as p:
        p.expect(r"\[y/N\]: ")
        p.sendline("y")
        p.expect(r"\[\]: ")
        p.sendline("")
        p.expect(r"\[now\]: ")
        p.sendline(later.strftime("%Y-%m-%dT%H:%M") + "UTC")
        p.expect(f"Success: restart scheduled on member {target.name}")
        assert p.wait() == 0
    wait_for(lambda: (target.status() or {}).get("scheduled_restart"), 30, "scheduled restart in /patroni")
    with pty(cluster, "flush", SCOPE, target.name, "restart") as p:
        p.expect(rf"Are you sure you want to flush members {target.name}\? \[y/N\]: ")
        p.sendline("y")
        p.expect(f"Success: flush scheduled restart for member {target.name}")
        assert p.wait() == 0
    wait_for(lambda: not (target.status() or {}).get("scheduled_restart"), 30, "scheduled restart flushed")
    wait_for(lambda: "Scheduled restart" not in ok(cluster, "list"), 30, "no Scheduled restart column")
    assert f"No scheduled restart for member {target.name}" in ok(cluster, "flush", SCOPE, target.name, "restart",
                                                                   "--force")


# -- switchover / failover ------------------------------------------------------------------
def test_switchover_interactive_decline_then_accept(cluster: TestCluster) -> None:
    old = wait_healthy(cluster).name
    candidate = next(m.name for m in cluster.members if m.name not in (old, f"{SCOPE}-pg2"))
    with pty(cluster, "switchover") as p:
        p.expect(rf"Primary \[{old}\]: ")
        p.sendline("")
        p.expect(rf"Candidate \['{candidate}'\] \[\]: ")
        p.sendline(candidate)
        p.expect(r"When should the switchover take place \(e.g. [\dT:-]+\) \[now\]: ")
        p.sendline("")
        p.expect("Current cluster topology")
        p.expect(rf"Are you sure you want to switchover cluster {SCOPE}, demoting current leader {old}\? \[y/N\]: ")
        p.sendline("N")
        p.expect("Error: Aborting switchover")
        assert p.wait() == 1
    assert leader_name(cluster) == old and f"{PREFIX}failover" not in dcs_keys(cluster)
    with pty(cluster, "switchover") as p:
        for answer in ("", candidate, ""):
            p.expect(r"\]: ")
            p.sendline(answer)
        p.expect(r"\[y/N\]: ")
        p.sendline("y")
        p.expect(rf"\d\d:\d\d:\d\d\.\d+ Successfully switched over to \"{candidate}\"", timeout=120)
        assert p.wait(60) == 0
    assert cluster.wait_leader(60).name == candidate


def test_switchover_force_to_any(cluster: TestCluster) -> None:
    old = wait_healthy(cluster).name
    out = ok(cluster, "switchover", "--primary", old, "--force")
    assert "Successfully switched over to" in out
    assert cluster.wait_leader(60, exclude=(old,)).name not in (old, f"{SCOPE}-pg2")


def test_scheduled_switchover_fires_and_flush_cancels(cluster: TestCluster) -> None:
    old = wait_healthy(cluster).name
    when = in_future(12)
    out = ok(cluster, "switchover", "--scheduled", when.isoformat(), "--force")
    assert "Switchover scheduled" in out and f"Switchover scheduled at: {when.isoformat()}" in out
    assert f"from: {old}" in out and f"{PREFIX}failover" in dcs_keys(cluster)
    while datetime.now(UTC) < when - timedelta(seconds=1.5):  # not before its time
        assert leader_name(cluster) == old
        time.sleep(0.5)
    new = cluster.wait_leader(90, exclude=(old,)).name
    assert new != f"{SCOPE}-pg2"
    wait_for(lambda: f"{PREFIX}failover" not in dcs_keys(cluster), 30, "failover key consumed")
    wait_healthy(cluster)
    # interactively, far ahead, then flushed: nothing happens
    later = in_future(3600)
    with pty(cluster, "switchover") as p:
        for answer in ("", "", later.isoformat()):
            p.expect(r"\]: ")
            p.sendline(answer)
        p.expect(rf"Are you sure you want to schedule switchover of cluster {SCOPE} at {re.escape(later.isoformat())}, "
                 rf"demoting current leader {new}\? \[y/N\]: ")
        p.sendline("y")
        p.expect("Switchover scheduled at:")
        assert p.wait() == 0
    assert f"{PREFIX}failover" in dcs_keys(cluster)
    assert ok(cluster, "flush", SCOPE, "switchover").strip() == "Success: scheduled switchover deleted"
    assert f"{PREFIX}failover" not in dcs_keys(cluster) and "Switchover scheduled" not in ok(cluster, "list")
    assert ok(cluster, "flush", SCOPE, "switchover").strip() == "No pending scheduled switchover"
    assert leader_name(cluster) == new


def test_failover_with_leader(cluster: TestCluster) -> None:
    old = wait_healthy(cluster).name
    candidate = next(m.name for m in cluster.members if m.name not in (old, f"{SCOPE}-pg2"))
    with pty(cluster, "failover", "--candidate", candidate) as p:
        p.expect(rf"Are you sure you want to failover cluster {SCOPE}, demoting current leader {old}\? \[y/N\]: ")
        p.sendline("n")
        p.expect("Error: Aborting failover")
        assert p.wait() == 1
    assert leader_name(cluster) == old and f"{PREFIX}failover" not in dcs_keys(cluster)
    out = ok(cluster, "failover", "--candidate", candidate, "--force")
    assert f'Successfully failed over to "{candidate}"' in out
    assert cluster.wait_leader(60).name == candidate


def test_failover_without_leader(cluster: TestCluster) -> None:
    """Paused cluster, leader killed: nobody promotes on its own; failover picks the candidate."""
    old = cluster.member(wait_healthy(cluster).name)
    candidate = next(m for m in cluster.members if m.name not in (old.name, f"{SCOPE}-pg2"))
    ok(cluster, "pause", "--wait")
    old.kill9()
    wait_for(lambda: leader_name(cluster) is None, 60, "leader key to expire")
    fails(cluster, "switchover", "--force", contains="has no leader")
    with pty(cluster, "failover") as p:
        p.expect(rf"Candidate \[.*'{candidate.name}'.*\] \[\]: ")
        p.sendline(candidate.name)
        p.expect("Current cluster topology")
        p.expect(rf"Are you sure you want to failover cluster {SCOPE}\? \[y/N\]: ")
        p.sendline("y")
        p.expect(rf"Successfully failed over to \"{candidate.name}\"", timeout=120)
        assert p.wait(60) == 0
    assert cluster.wait_leader(60).name == candidate.name
    ok(cluster, "resume", "--wait")
    old.start()
    wait_healthy(cluster)


# -- reinit, query, dsn, history, version -----------------------------------------------------
def test_reinit_wait(cluster: TestCluster) -> None:
    target = replicas(cluster)[0]
    with pty(cluster, "reinit", SCOPE) as p:
        p.expect(r"Which member do you want to reinitialize \[.*\]\? \[\]: ")
        p.sendline(target.name)
        p.expect(rf"Are you sure you want to reinitialize members {target.name}\? \[y/N\]: ")
        p.sendline("n")
        assert p.wait() == 1
    clones = target.log().count("replica has been created")
    out = ok(cluster, "reinit", SCOPE, target.name, "--force", "--wait", "--from-leader")
    assert f"Success: reinitialize for member {target.name}" in out
    assert f"Reinitialize is completed on: {target.name}" in out
    assert target.log().count("replica has been created") == clones + 1
    assert (target.status() or {}).get("state") == "running"
    fails(cluster, "reinit", SCOPE, cluster.wait_leader(30).name, "--force", contains="No replica among")
    wait_healthy(cluster)


def test_query_and_dsn(cluster: TestCluster, tmp_path: Path) -> None:
    leader = wait_healthy(cluster)
    assert ok(cluster, "dsn").strip() == f"host=127.0.0.1 port={leader.pg_port}"
    replica_ports = {str(m.pg_port) for m in replicas(cluster)}
    assert ok(cluster, "dsn", "-r", "replica").strip().rsplit("=", 1)[1] in replica_ports
    assert json.loads(ok(cluster, "dsn", "-m", leader.name, "-f", "json"))["port"] == leader.pg_port
    assert ok(cluster, "query", "-c", "SELECT pg_is_in_recovery() AS r").splitlines() == ["r", "False"]
    assert ok(cluster, "query", "-r", "replica", "-c", "SELECT pg_is_in_recovery()").splitlines()[1] == "True"
    rows = json.loads(ok(cluster, "query", "-m", leader.name, "-d", "template1", "--format", "json",
                         "-c", "SELECT current_database() AS db, 1 AS one"))
    assert rows == [{"db": "template1", "one": 1}]
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT current_user")
    assert ok(cluster, "query", "--file", str(sql), "-U", "postgres").splitlines() == ["current_user", "postgres"]
    fails(cluster, "query", "-c", "SELECT nonsense", contains="query failed: 42703")
    with pty(cluster, "query", "-c", "SELECT 42 AS answer", "--password") as p:
        p.expect("Password: ")
        p.sendline(SUPERUSER_PASSWORD)
        p.expect(r"answer\n42\n")
        assert p.wait() == 0
    with pty(cluster, "query", "-c", "SELECT 1", "--password") as p:
        p.expect("Password: ")
        p.sendline("wrong password")
        p.expect("Error: query failed: .*password authentication failed")
        assert p.wait() == 1


def test_history_and_version(cluster: TestCluster) -> None:
    if not json.loads(ok(cluster, "history", "-f", "json")):  # only when this test runs alone
        ok(cluster, "switchover", "--force")
    history = wait_for(lambda: json.loads(ok(cluster, "history", "-f", "json")), 60, "a timeline history")
    assert all(set(h) == {"TL", "LSN", "Reason", "Timestamp", "New Leader"} for h in history)
    assert [h["TL"] for h in history] == sorted(h["TL"] for h in history)
    assert "| TL |" in ok(cluster, "history").splitlines()[1]
    lines = ok(cluster, "version").splitlines()
    assert lines[0] == "pg_hactl version 0.1.0" and lines[1] == ""
    expected = [f"{m.name}: pg_ha 0.1.0 PostgreSQL {m.sql('SHOW server_version')[0][0].split()[0]}"
                for m in cluster.members]
    assert sorted(lines[2:]) == sorted(expected)


# -- remove -----------------------------------------------------------------------------------
def test_remove_needs_every_confirmation(cluster: TestCluster) -> None:
    ghost = "/service/hactlghost/"
    for key, value in (("initialize", "42"), ("leader", "g0"), ("config", "{}"),
                       ("members/g0", '{"conn_url":"postgres://127.0.0.1:5999/postgres","state":"running"}')):
        put(cluster.etcd, "etcd3", ghost + key, value)  # type: ignore[attr-defined]
    ghost_keys = keys(cluster.etcd, "etcd3", ghost)  # type: ignore[attr-defined]
    assert len(ghost_keys) == 4
    for answers, error in ((["hactl"], "Cluster names specified do not match"),
                           (["hactlghost", "yes"], 'You did not exactly type "Yes I am aware"'),
                           (["hactlghost", "Yes I am aware", "g1"], "You did not specify the current leader")):
        with pty(cluster, "remove", "hactlghost") as p:
            p.expect(r"Please confirm the cluster name to remove: ")
            p.sendline(answers[0])
            if len(answers) > 1:
                p.expect(r'please type: "Yes I am aware": ')
                p.sendline(answers[1])
            if len(answers) > 2:
                p.expect(r"This cluster currently is healthy. Please specify the leader name to continue: ")
                p.sendline(answers[2])
            p.expect(f"Error: {error}")
            assert p.wait() == 1
        assert keys(cluster.etcd, "etcd3", ghost) == ghost_keys  # type: ignore[attr-defined]
    out = ok(cluster, "remove", "hactlghost", stdin="hactlghost\nYes I am aware\ng0\n")
    assert "Cluster hactlghost removed from the DCS" in out
    assert keys(cluster.etcd, "etcd3", ghost) == {}  # type: ignore[attr-defined]
    assert leader_name(cluster) is not None, "the real cluster is untouched"
