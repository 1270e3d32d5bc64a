"""Custom bootstrap (bootstrap.method): the first member restores a real base backup of a
separate PostgreSQL instance with a user command instead of running initdb; a member whose
command fails leaves nothing behind and lets another member bootstrap; post_bootstrap runs;
replicas are cloned from the result."""
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
[ ! -e "$D" ] || {{ echo "restore: $D exists: pg_ha must leave the data directory to the command" >&2; exit 4; }}
mkdir -m 0700 "$D" && cp -a "$B"/. "$D"/ || exit 1
W=$(dirname "$D")
if [ -e "$W"/fail ]; then touch "$D"/partial; echo "restore: this member cannot reach the backup" >&2; exit 3; fi
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

        # pg0's command fails: one clear line, data dir emptied, initialize key left to the others
        (pg0.workdir / "fail").touch()
        pg0.start()
        wait_for(lambda: "custom bootstrap method restore failed (rc=3): restore: this member cannot reach the "
                 "backup" in pg0.log(), 90, "the failed restore to be logged")
        wait_for(lambda: "bootstrap failed: removing the data directory and the initialize key" in pg0.log(),
                 30, "the failed bootstrap to be cleaned up")
        wait_for(lambda: pg0.data_dir.exists() and not any(pg0.data_dir.iterdir()), 30,
                 "the failed attempt's files to be removed")
        assert cluster.leader() is None
        pg1.start()  # pg0 backs off for 2 * ttl: pg1 takes the initialize key and restores

        leader = wait_for(lambda: cluster.leader(), 120, "a restored member to lead")
        assert leader is pg1
        assert "my bootstrap attempt failed: waiting for another member to bootstrap" in pg0.log()
        assert pg1.sql("SELECT v FROM marker ORDER BY v") == [("restored-from-backup",)]
        assert pg1.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0] == source_sysid
        prefix = f"/service/{SCOPE}/"
        assert etcd_keys(etcd_server, "etcd3", prefix)[prefix + "initialize"] == source_sysid
        argv = (root / "restore_argv").read_text().splitlines()
        assert argv[0] == f"--scope={SCOPE} --datadir={pg0.data_dir} --backup={backup}"
        assert argv[-1] == f"--scope={SCOPE} --datadir={pg1.data_dir} --backup={backup}"
        assert pg1.sql("SELECT count(*) FROM pg_class WHERE relname = 'post_bootstrap_ran'") == [(1,)]
        post_argv = (root / "post_argv").read_text()
        assert "user=postgres" in post_argv and "password" not in post_argv
        assert pg1.sql("SELECT rolname FROM pg_roles WHERE rolname = 'replicator'") == [("replicator",)]

        pg2.start()  # pg0 (still failing its restore) and pg2 are cloned from pg1
        cluster.wait_streaming([pg0, pg2])
        pg1.sql("INSERT INTO marker VALUES ('written-in-the-new-cluster')")
        for m in (pg0, pg2):
            wait_for(lambda m=m: m.sql("SELECT count(*) FROM marker")[0][0] == 2, 30, f"{m.name} to replay")
            assert m.sql("SELECT v FROM marker ORDER BY v") == [("restored-from-backup",),
                                                               ("written-in-the-new-cluster",)]
            assert m.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0] == source_sysid
        assert not any("running initdb" in m.log() for m in cluster.members)
    finally:
        print(cluster.logs()[-20000:])
        cluster.cleanup()
        source.cleanup()


def test_custom_bootstrap_point_in_time_recovery(etcd_server) -> None:
    """recovery_conf: the restored backup replays archived WAL up to a named restore point,
    pauses there (PostgreSQL's default action), and pg_ha promotes it."""
    source = StandalonePostgres(archive=True)
    cluster = TestCluster(etcd_server.host_port, scope="pitr", size=2)
    root = cluster.root
    try:
        source.start()
        source.sql("CREATE TABLE marker(v text); INSERT INTO marker VALUES ('in-the-backup')")
        backup = root / "backup"
        source.basebackup(backup)
        source.sql("INSERT INTO marker VALUES ('archived-before-the-target')")
        source.sql("SELECT pg_create_restore_point('before_the_mistake')")
        source.sql("INSERT INTO marker VALUES ('after-the-target')")
        source.switch_and_archive()
        source_sysid = source.sysid()
        restore = script(root / "restore.sh", RESTORE.format(root=root))
        for m in cluster.members:
            m.config["bootstrap"]["method"] = "pitr"
            m.config["bootstrap"]["pitr"] = {
                "command": restore, "backup": str(backup),
                "recovery_conf": {"restore_command": f"cp {source.archive_dir}/%f %p",
                                  "recovery_target_name": "before_the_mistake"}}
            m.write_config()
        pg0, pg1 = cluster.members
        pg0.start()
        wait_for(lambda: cluster.leader() is pg0, 120, "the recovered member to lead")
        assert "custom bootstrap: recovery paused at its target, promoting" in pg0.log()
        assert pg0.sql("SELECT v FROM marker ORDER BY v") == [("archived-before-the-target",), ("in-the-backup",)]
        assert pg0.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] >= 2, "promoted: a new timeline"
        assert pg0.sql("SHOW recovery_target_name") == [("",)], "the recovery settings are gone"
        assert not (pg0.data_dir / "recovery.signal").exists()
        prefix = "/service/pitr/"
        assert etcd_keys(etcd_server, "etcd3", prefix)[prefix + "initialize"] == source_sysid
        pg1.start()
        cluster.wait_streaming([pg1])
        pg0.sql("INSERT INTO marker VALUES ('new-history')")
        wait_for(lambda: pg1.sql("SELECT count(*) FROM marker")[0][0] == 3, 30, "pg1 to replay")
    finally:
        print(cluster.logs()[-20000:])
        cluster.cleanup()
        source.cleanup()
