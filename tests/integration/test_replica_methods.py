"""create_replica_methods: an ordered list of custom commands and basebackup; a failing
method falls back to the next one; custom commands get Patroni's argv and never a password."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness.cluster import REPLICATION_PASSWORD, SUPERUSER_PASSWORD, TestCluster
from tests.harness.common import wait_for

pytestmark = pytest.mark.integration
SCOPE = "methods"
BASEBACKUP = "/usr/lib/postgresql/15/bin/pg_basebackup"


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    shutil.chown(path, "postgres", "postgres")
    return str(path)


MY_BACKUP = """echo "$@" > {workdir}/mybackup_argv
for a in "$@"; do
  case "$a" in --datadir=*) D="${{a#--datadir=}}";; --connstring=*) C="${{a#--connstring=}}";; esac
done
{basebackup} -D "$D" -X stream -c fast -d "$C" --no-password || exit 1
echo "$@" > {workdir}/made_by_mybackup
"""


def test_replica_methods_fall_back_in_order(etcd_server) -> None:
    cluster = TestCluster(etcd_server.host_port, scope=SCOPE, size=3)
    try:
        pg0, pg1, pg2 = cluster.members
        for m, methods in ((pg1, ["broken", "mybackup", "basebackup"]), (pg2, ["broken", "basebackup"])):
            broken = script(m.workdir / "broken.sh", f'echo "$@" > {m.workdir}/broken_argv\n'
                                                    'echo "broken: no backup repository" >&2; exit 2')
            mine = script(m.workdir / "mybackup.sh", MY_BACKUP.format(workdir=m.workdir, basebackup=BASEBACKUP))
            m.config["postgresql"]["create_replica_methods"] = methods
            m.config["postgresql"]["broken"] = {"command": broken}
            m.config["postgresql"]["mybackup"] = {"command": mine, "stanza": "main"}
            m.write_config()
        pg0.start()
        wait_for(lambda: cluster.leader() is pg0, 90, "pg0 to bootstrap and lead")
        pg0.sql("CREATE TABLE t(v text); INSERT INTO t VALUES ('before-the-clones')")
        pg1.start()
        pg2.start()
        cluster.wait_streaming([pg1, pg2])

        for m in (pg1, pg2):
            log = m.log()
            assert "replica method broken failed (rc=2): broken: no backup repository" in log
            assert (m.workdir / "broken_argv").exists()
            assert m.sql("SELECT v FROM t") == [("before-the-clones",)]
        assert "replica has been created using mybackup" in pg1.log()
        assert (pg1.workdir / "made_by_mybackup").exists(), "mybackup.sh ran to its end"
        assert "replica has been created using basebackup" in pg2.log()
        assert not (pg2.workdir / "mybackup_argv").exists(), "pg2 does not list mybackup"

        argv = (pg1.workdir / "mybackup_argv").read_text().split()
        assert argv[:3] == ["--stanza=main", f"--scope={SCOPE}", "--role=replica"]
        assert argv[3] == f"--datadir={pg1.data_dir}"
        conn = " ".join(argv[4:])
        assert conn.startswith("--connstring=") and f"port={pg0.pg_port}" in conn and "user=replicator" in conn
        assert f"passfile={pg1.workdir / 'pgpass'}" in conn
        for m in (pg1, pg2):
            for name in ("broken_argv", "mybackup_argv"):
                path = m.workdir / name
                if path.exists():
                    text = path.read_text()
                    assert REPLICATION_PASSWORD not in text and SUPERUSER_PASSWORD not in text
                    assert "password" not in text
        pg0.sql("INSERT INTO t VALUES ('after-the-clones')")
        for m in (pg1, pg2):
            wait_for(lambda m=m: m.sql("SELECT count(*) FROM t")[0][0] == 2, 30, f"{m.name} to replay")
    finally:
        print(cluster.logs()[-20000:])
        cluster.cleanup()
