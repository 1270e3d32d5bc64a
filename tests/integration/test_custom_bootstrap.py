"""Custom bootstrap (bootstrap.method): the first member restores a real base backup of a
separate PostgreSQL instance with a user command instead of running initdb; a failing
command leaves nothing behind; post_bootstrap runs; replicas are cloned from the result."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness.cluster import TestCluster
from tests.harness.common import wait_for
from tests.harness.etcd import keys as etcd_keys
from tests.harness.standalone import StandalonePostgres

pytestmark = pytest.mark.integration
SCOPE = "restore"
PSQL = "/usr/lib/postgresql/15/bin/psql"


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    shutil.chown(path, "postgres", "postgres")
    return str(path)


RESTORE = """echo "$@" >> {root}/restore_argv
for a in "$@"; do
  case "$a" in --datadir=*) D="${{a#--datadir=}}";; --backup=*) B="${{a#--backup=}}";; esac
done
cp -a "$B"/. "$D"/ || exit 1
if [ -e {root}/fail ]; then touch "$D"/partial; echo "restore: backup {root}/fail says no" >&2; exit 3; fi
"""


def test_custom_bootstrap_restores_a_base_backup(etcd_server) -> None:
    source = StandalonePostgres()
    cluster = TestCluster(etcd_server.host_port, scope=SCOPE, size=3)
    root = cluster.root
    try:
        source.start()
        source.sql("CREATE TABLE marker(v text); INSERT INTO marker VALUES ('restored-from-backup')")
        backup = root / "backup"
        source.basebackup(backup)
        source.sql("INSERT INTO marker VALUES ('written-after-the-backup')")
        source_sysid = source.sysid()
        restore = script(root / "restore.sh", RESTORE.format(root=root))
        post = script(root / "post.sh", f'echo "$@" > {root}/post_argv\n'
                                        f'exec {PSQL} "$1" -v ON_ERROR_STOP=1 -c "CREATE TABLE post_bootstrap_ran()"')
        for m in cluster.members:
            m.config["bootstrap"]["method"] = "restore"
            m.config["bootstrap"]["restore"] = {"command": restore, "backup": str(backup),
                                                "keep_existing_recovery_conf": False}
            m.config["bootstrap"]["post_bootstrap"] = post
            m.write_config()
        pg0, pg1, pg2 = cluster.members

        # a failing command: one clear line, data dir emptied, initialize key released
        fail = root / "fail"
        fail.touch()
        pg0.start()
        wait_for(lambda: f"custom bootstrap method restore failed (rc=3): restore: backup {root}/fail says no"
                 in pg0.log(), 90, "the failed restore to be logged")
        wait_for(lambda: "bootstrap failed: removing the data directory and the initialize key" in pg0.log(),
                 30, "the failed bootstrap to be cleaned up")
        assert cluster.leader() is None
        fail.unlink()  # the next attempt (the member retries) succeeds

        leader = wait_for(lambda: cluster.leader(), 120, "the restored member to lead")
        assert leader is pg0
        assert not (pg0.data_dir / "partial").exists(), "the failed attempt's files were removed"
        assert pg0.sql("SELECT v FROM marker ORDER BY v") == [("restored-from-backup",)]
        assert pg0.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0] == source_sysid
        prefix = f"/service/{SCOPE}/"
        assert etcd_keys(etcd_server, "etcd3", prefix)[prefix + "initialize"] == source_sysid
        argv = (root / "restore_argv").read_text().splitlines()[-1]
        assert argv == f"--scope={SCOPE} --datadir={pg0.data_dir} --backup={backup}"
        assert pg0.sql("SELECT count(*) FROM pg_class WHERE relname = 'post_bootstrap_ran'") == [(1,)]
        post_argv = (root / "post_argv").read_text()
        assert "user=postgres" in post_argv and "password" not in post_argv
        assert pg0.sql("SELECT rolname FROM pg_roles WHERE rolname = 'replicator'") == [("replicator",)]

        pg1.start()
        pg2.start()
        cluster.wait_streaming([pg1, pg2])
        pg0.sql("INSERT INTO marker VALUES ('written-in-the-new-cluster')")
        for m in (pg1, pg2):
            wait_for(lambda m=m: m.sql("SELECT count(*) FROM marker")[0][0] == 2, 30, f"{m.name} to replay")
            assert m.sql("SELECT v FROM marker ORDER BY v") == [("restored-from-backup",),
                                                               ("written-in-the-new-cluster",)]
            assert m.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0] == source_sysid
        assert "running initdb" not in pg0.log()
    finally:
        print(cluster.logs()[-20000:])
        cluster.cleanup()
        source.cleanup()
