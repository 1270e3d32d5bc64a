"""pg_hactl's json/yaml output against Patroni's own patronictl 4.1 (from PyPI), both pointed
at the same running 2-member pg_ha cluster (real etcd v3 + PostgreSQL 15).

patronictl reads the DCS and the members' REST API, so this also checks that pg_ha keeps
Patroni's DCS layout and REST API. Per member row the key sets (and their order), the
JSON types of the values and every value that does not move by itself (all but LSNs and
lags) must be equal. Member hctlp-pg1 carries a custom tag, so `-e` has a Tags value."""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.cluster import SUPERUSER_PASSWORD, TestCluster
from tests.harness.common import REPO, SYSTEM_PYTHON, wait_for
from tests.harness.patronictl import patronictl, patronictl_env

pytestmark = pytest.mark.integration
SCOPE = "hctlp"
MOVING = {"Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag"}  # values that change by themselves


@pytest.fixture(scope="module")
def pctl_exe() -> Path:
    return patronictl()


@pytest.fixture(scope="module")
def cluster(etcd_server, tmp_path_factory) -> Iterator[TestCluster]:
    c = TestCluster(etcd_server.host_port, scope=SCOPE, size=2, tags={f"{SCOPE}-pg1": {"zone": "b"}})
    c.home = tmp_path_factory.mktemp("home")  # type: ignore[attr-defined]
    try:
        c.start()
        c.wait_healthy(timeout=240)
        yield c
    finally:
        print(c.logs()[-12000:])
        c.cleanup()


def _run(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, input="", capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"{' '.join(argv)}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def hactl(c: TestCluster, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(c.home), "LANG": "C.UTF-8"}  # type: ignore[attr-defined]
    return _run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", "-c", str(c.members[0].config_path), *args], env)


def pctl(exe: Path, c: TestCluster, *args: str) -> str:
    env = patronictl_env(c.home)  # type: ignore[attr-defined]
    env["PGPASSWORD"] = SUPERUSER_PASSWORD  # patronictl query takes the password from libpq's environment
    return _run([str(exe), "-c", str(c.members[0].config_path), *args], env)


def load(text: str, fmt: str) -> Any:
    return json.loads(text) if fmt == "json" else yaml.safe_load(text)


def shape(value: Any) -> str:
    return type(value).__name__


def assert_rows_alike(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    assert [row["Member"] for row in ours] == [row["Member"] for row in theirs]
    for mine, patroni in zip(ours, theirs, strict=True):
        name = mine["Member"]
        assert list(mine) == list(patroni), f"{name}: keys {list(mine)} != patronictl's {list(patroni)}"
        assert {k: shape(v) for k, v in mine.items()} == {k: shape(v) for k, v in patroni.items()}, name
        assert {k: v for k, v in mine.items() if k not in MOVING} == \
            {k: v for k, v in patroni.items() if k not in MOVING}, name


def compare_list(exe: Path, c: TestCluster, *extra: str) -> list[dict[str, Any]]:
    """list in json and yaml from both; returns pg_hactl's json rows."""
    rows: list[dict[str, Any]] = []
    for fmt in ("json", "yaml"):
        ours = load(hactl(c, "list", "-f", fmt, *extra), fmt)
        theirs = load(pctl(exe, c, "list", "-f", fmt, *extra), fmt)
        assert_rows_alike(ours, theirs)
        rows = rows or ours
    return rows


def caught_up(c: TestCluster) -> bool:
    rows = json.loads(hactl(c, "list", "-f", "json"))
    replicas = [r for r in rows if r["Role"] != "Leader"]
    return len(rows) == 2 and len(replicas) == 1 and all(
        r["State"] == "streaming" and r.get("Receive Lag") == 0 and r.get("Replay Lag") == 0 for r in replicas)


def test_list_json_and_yaml_as_patronictl(pctl_exe: Path, cluster: TestCluster) -> None:
    wait_for(lambda: caught_up(cluster), 90, "the replica to stream and catch up")
    rows = {r["Member"]: r for r in compare_list(pctl_exe, cluster)}
    lsn_keys = ["Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag"]
    tags = {f"{SCOPE}-pg0": [], f"{SCOPE}-pg1": ["Tags"]}  # false boolean tags are not published (as Patroni)
    for name, row in rows.items():
        expected = ["Cluster", "Member", "Host", "Role", "State", "TL", *(lsn_keys if row["Role"] == "Replica" else [])]
        assert list(row) == expected + tags[name], row
    assert rows[f"{SCOPE}-pg1"]["Tags"] == {"zone": "b"} and sorted(r["Role"] for r in rows.values()) == \
        ["Leader", "Replica"]
    replica = next(r for r in rows.values() if r["Role"] == "Replica")
    assert isinstance(replica["Receive LSN"], str) and "/" in replica["Receive LSN"]
    extended = compare_list(pctl_exe, cluster, "-e")
    assert next(r for r in extended if r["Member"] == f"{SCOPE}-pg1")["Tags"] == {"zone": "b"}
    ours_tsv = hactl(cluster, "list", "-f", "tsv").splitlines()
    theirs_tsv = pctl(pctl_exe, cluster, "list", "-f", "tsv").splitlines()
    assert ours_tsv[0] == theirs_tsv[0] and len(ours_tsv) == len(theirs_tsv) == 3


def test_history_as_patronictl(pctl_exe: Path, cluster: TestCluster) -> None:
    leader = cluster.wait_leader(60)
    candidate = next(m for m in cluster.members if m is not leader)
    hactl(cluster, "switchover", "--leader", leader.name, "--candidate", candidate.name, "--force")
    wait_for(lambda: cluster.leader() is candidate, 90, f"{candidate.name} to lead")
    wait_for(lambda: json.loads(hactl(cluster, "history", "-f", "json")), 60, "a history line")
    for fmt in ("json", "yaml"):
        ours = load(hactl(cluster, "history", "-f", fmt), fmt)
        theirs = load(pctl(pctl_exe, cluster, "history", "-f", fmt), fmt)
        assert ours == theirs and [list(r) for r in ours] == [list(r) for r in theirs]
        columns = ["TL", "LSN", "Reason", "Timestamp", "New Leader"]
        assert list(ours[0]) == (columns if fmt == "json" else sorted(columns))  # yaml: keys sorted, as patronictl
        assert {k: shape(v) for k, v in ours[0].items()} == {k: shape(v) for k, v in theirs[0].items()}
    assert hactl(cluster, "history", "-f", "tsv") == pctl(pctl_exe, cluster, "history", "-f", "tsv")


def test_pending_and_scheduled_restart_columns(pctl_exe: Path, cluster: TestCluster) -> None:
    wait_for(lambda: caught_up(cluster), 120, "the replica to stream again after the switchover")
    replica = next(m for m in cluster.members if m is not cluster.wait_leader(60))
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    hactl(cluster, "edit-config", "-p", "max_connections=110", "--force")
    hactl(cluster, "restart", SCOPE, replica.name, "--scheduled", at, "--force")
    try:
        def both_marked() -> list[dict[str, Any]] | None:
            rows = json.loads(hactl(cluster, "list", "-f", "json"))
            pending = all(r.get("Pending restart") == "*" for r in rows)
            scheduled = any("Scheduled restart" in r for r in rows)
            return rows if pending and scheduled else None
        wait_for(both_marked, 90, "pending restart on both members and the scheduled restart")
        rows = compare_list(pctl_exe, cluster)
        row = next(r for r in rows if r["Member"] == replica.name)
        assert row["Pending restart"] == "*" and row["Scheduled restart"].startswith(at[:16])
        compare_list(pctl_exe, cluster, "-e")
    finally:
        hactl(cluster, "flush", SCOPE, "restart", "--force")


def test_query_as_patronictl(pctl_exe: Path, cluster: TestCluster) -> None:
    sql = "SELECT 1 AS one, 'two'::text AS two, NULL::int AS three, true AS four UNION ALL SELECT 2, 'x', 3, false"
    for fmt in ("json", "yaml", "tsv"):
        ours = hactl(cluster, "query", "-U", "postgres", "-c", sql, "--format", fmt)
        theirs = pctl(pctl_exe, cluster, "query", "-U", "postgres", "-c", sql, "--format", fmt)
        if fmt == "tsv":
            assert ours == theirs
        else:
            assert load(ours, fmt) == load(theirs, fmt) and [list(r) for r in load(ours, fmt)] == \
                [list(r) for r in load(theirs, fmt)]
    assert json.loads(ours := hactl(cluster, "query", "-U", "postgres", "-c", sql, "--format", "json"))[0] == \
        {"one": 1, "two": "two", "three": None, "four": True}, ours


def test_show_config_dsn_and_versions_as_patronictl(pctl_exe: Path, cluster: TestCluster) -> None:
    assert yaml.safe_load(hactl(cluster, "show-config")) == yaml.safe_load(pctl(pctl_exe, cluster, "show-config"))
    assert hactl(cluster, "dsn") == pctl(pctl_exe, cluster, "dsn")
    lines = pctl(pctl_exe, cluster, "version", SCOPE).splitlines()
    for m in cluster.members:  # patronictl reads GET /patroni of each member
        assert any(line.startswith(f"{m.name}: Patroni ") and " PostgreSQL 15." in line for line in lines), lines


def test_cluster_role_refusals_as_patronictl(pctl_exe: Path, cluster: TestCluster) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(cluster.home), "LANG": "C.UTF-8"}  # type: ignore[attr-defined]
    config = ["-c", str(cluster.members[0].config_path)]
    for args, codes in ((["promote-cluster", "--force"], (1, 1)), (["demote-cluster", "--force"], (2, 1))):
        ours = subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", *config, *args], input="", capture_output=True,
                              text=True, timeout=60, env=env)
        theirs = subprocess.run([str(pctl_exe), *config, *args], input="", capture_output=True, text=True,
                                timeout=60, env=patronictl_env(cluster.home))  # type: ignore[attr-defined]
        assert (ours.returncode, theirs.returncode) == codes, (ours, theirs)  # usage errors: pg_hactl exits 2
        assert ours.stderr == theirs.stderr and ours.stderr.startswith("Error: "), (ours.stderr, theirs.stderr)
