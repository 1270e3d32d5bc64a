"""A config written for Patroni's demo (the seeds' postgres0.yml), changed only in paths
and ports, starts pg_ha: it bootstraps, takes the lock and answers the REST API."""
from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.harness.common import (
    PG_BIN,
    SYSTEM_PYTHON,
    free_port,
    kill_postmaster,
    postgres_python_env,
    postgres_tmpdir,
    spawn,
    stop_process,
    wait_for,
)
from tests.harness.etcd import keys as etcd_keys

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seeds_demo_postgres0.yml"


def test_seeds_demo_config_starts_pg_ha(etcd_server) -> None:
    import urllib.request

    workdir = postgres_tmpdir("pg_ha_demo_")
    api_port, pg_port = free_port(), free_port()
    text = FIXTURE.read_text().replace("@API_PORT@", str(api_port)).replace("@PG_PORT@", str(pg_port)) \
        .replace("@ETCD@", etcd_server.host_port).replace("@DIR@", str(workdir))
    config = workdir / "postgres0.yml"
    config.write_text(text)
    shutil.chown(config, "postgres", "postgres")
    proc = spawn([SYSTEM_PYTHON, "-m", "pg_ha", str(config)], workdir / "log", as_postgres=True,
                 env=postgres_python_env())
    try:
        def primary() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/primary", timeout=2) as resp:
                return resp.status == 200
        wait_for(primary, 120, "the demo member to become the leader")
        log = (workdir / "log").read_text()
        assert "no action. I am (postgresql0), the leader with the lock" in log
        keys = etcd_keys(etcd_server, "etcd", "/service/batman/")
        assert "/service/batman/leader" in keys and keys["/service/batman/leader"] == "postgresql0"
    finally:
        print((workdir / "log").read_text()[-5000:])
        stop_process(proc, signal.SIGTERM, timeout=60)
        kill_postmaster(workdir / "data" / "postgresql0")
        shutil.rmtree(workdir, ignore_errors=True)


def _bin_dir_with_wrapper(workdir: Path, real: Path, calls: Path) -> Path:
    """bin_dir: links to the real tools plus `pg_ctl.logged`, a pg_ctl that notes each call."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    for tool in real.iterdir():
        (bin_dir / tool.name).symlink_to(tool)
    wrapper = bin_dir / "pg_ctl.logged"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec {real}/pg_ctl "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def test_patroni_local_settings_take_effect(etcd_server) -> None:
    """bin_name, config_dir, custom_conf, use_unix_socket, log.dir, before_stop and
    proxy_address on a real PostgreSQL."""
    import json
    import urllib.request

    import psycopg2
    import yaml

    workdir = postgres_tmpdir("pg_ha_patroni_cfg_")
    api_port, pg_port = free_port(), free_port()
    calls, stopped = workdir / "pg_ctl.calls", workdir / "before_stop.ran"
    bin_dir = _bin_dir_with_wrapper(workdir, Path("/usr/lib/postgresql/15/bin"), calls)
    conf_dir, sock_dir, log_dir = workdir / "conf", workdir / "sock", workdir / "logs"
    for directory in (conf_dir, sock_dir, log_dir):
        directory.mkdir()
    (conf_dir / "custom.conf").write_text("work_mem = '7MB'\n")
    text = FIXTURE.read_text().replace("@API_PORT@", str(api_port)).replace("@PG_PORT@", str(pg_port)) \
        .replace("@ETCD@", etcd_server.host_port).replace("@DIR@", str(workdir))
    raw = yaml.safe_load(text)
    raw["bootstrap"].pop("users")
    raw["scope"] = "cfgcompat"  # the demo test's cluster may be in the same etcd
    raw["postgresql"].update(
        bin_dir=str(bin_dir), bin_name={"pg_ctl": "pg_ctl.logged"}, config_dir=str(conf_dir),
        custom_conf=str(conf_dir / "custom.conf"), use_unix_socket=True, pg_ctl_timeout=50,
        parameters={"unix_socket_directories": str(sock_dir)}, before_stop=f"touch {stopped}",
        proxy_address=f"127.0.0.1:{pg_port + 1}",
        pg_hba=["local all postgres md5", "host replication replicator 127.0.0.1/32 md5",
                "host all all 127.0.0.1/32 md5"])
    raw["log"] = {"dir": str(log_dir), "file_size": 1000000, "file_num": 2, "dateformat": "%Y-%m-%d %H:%M:%S"}
    config = workdir / "member.yml"
    config.write_text(yaml.safe_dump(raw))
    for path in workdir.rglob("*"):
        if not path.is_symlink():
            shutil.chown(path, "postgres", "postgres")
    proc = spawn([SYSTEM_PYTHON, "-m", "pg_ha", str(config)], workdir / "stderr", as_postgres=True,
                 env=postgres_python_env())
    data_dir = workdir / "data" / "postgresql0"
    try:
        def primary() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/primary", timeout=2) as resp:
                return resp.status == 200
        wait_for(primary, 120, "the member to become the leader")
        log_file = log_dir / "pg_ha.log"
        wait_for(lambda: "the leader with the lock" in log_file.read_text(), 60, "the HA loop in log.dir")
        assert "the leader with the lock" not in (workdir / "stderr").read_text()  # log.dir replaces stderr
        assert "start" in calls.read_text().split()  # pg_ctl by its bin_name
        conn = psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", password="zalando",
                                dbname="postgres", connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('config_file'), current_setting('hba_file'), "
                            "current_setting('work_mem')")
                assert cur.fetchone() == (str(conf_dir / "postgresql.conf"), str(conf_dir / "pg_hba.conf"), "7MB")
                # pg_ha's own connection comes through the unix socket (no client address)
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_ha' "
                            "AND client_addr IS NULL AND client_port = -1")
                assert cur.fetchone()[0] >= 1
        finally:
            conn.close()
        conf_text = (conf_dir / "postgresql.conf").read_text()
        assert f"include '{conf_dir / 'custom.conf'}'" in conf_text
        assert not (data_dir / "pg_hba.conf").read_text().startswith("# Written by pg_ha")
        keys = etcd_keys(etcd_server, "etcd", "/service/cfgcompat/")
        member = json.loads(keys["/service/cfgcompat/members/postgresql0"])
        assert member["proxy_url"] == f"postgres://127.0.0.1:{pg_port + 1}/postgres"
        assert not stopped.exists()
        stop_process(proc, signal.SIGTERM, timeout=60)
        assert stopped.exists()  # before_stop ran when pg_ha stopped PostgreSQL on shutdown
        assert "before_stop script" in log_file.read_text()
    finally:
        print((workdir / "stderr").read_text()[-3000:])
        if (log_dir / "pg_ha.log").exists():
            print((log_dir / "pg_ha.log").read_text()[-5000:])
        stop_process(proc, signal.SIGTERM, timeout=60)
        kill_postmaster(data_dir)
        shutil.rmtree(workdir, ignore_errors=True)


def _tls_files(workdir: Path) -> tuple[str, str]:
    """A self-signed certificate for the server and, as its own CA, for the client (as the
    Patroni features make theirs)."""
    import subprocess

    crt, key = workdir / "pg.crt", workdir / "pg.key"
    subprocess.run(["openssl", "req", "-nodes", "-new", "-x509", "-subj", "/CN=127.0.0.1", "-days", "2",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    for path in (crt, key):
        path.chmod(0o600)
        shutil.chown(path, "postgres", "postgres")
    return str(crt), str(key)


def test_patroni_feature_config_wal_keep_segments_client_certs_and_a_duplicate_name(etcd_server) -> None:
    """What Patroni's own acceptance configs carry: wal_keep_segments (PostgreSQL 13 renamed
    it), pg_hba `hostssl ... clientcert=verify-ca` with postgresql.authentication.<user>.ssl*
    for every user; and a second daemon under the same name must leave the running one alone."""
    import urllib.request

    import yaml

    workdir = postgres_tmpdir("pg_ha_feature_")
    api_port, dup_port, pg_port = free_port(), free_port(), free_port()
    crt, key = _tls_files(workdir)
    text = FIXTURE.read_text().replace("@API_PORT@", str(api_port)).replace("@PG_PORT@", str(pg_port)) \
        .replace("@ETCD@", etcd_server.host_port).replace("@DIR@", str(workdir))
    raw = yaml.safe_load(text)
    raw["scope"] = "batman-tls"  # the demo test above leaves batman initialized
    raw["bootstrap"]["pg_hba"] = ["hostssl replication replicator 127.0.0.1/32 md5 clientcert=verify-ca",
                                  "hostssl all all 127.0.0.1/32 md5 clientcert=verify-ca"]
    raw["postgresql"]["parameters"].update({"wal_keep_segments": 10, "ssl": "on", "ssl_ca_file": crt,
                                            "ssl_cert_file": crt, "ssl_key_file": key})
    for auth in raw["postgresql"]["authentication"].values():
        auth.update({"sslmode": "verify-ca", "sslrootcert": crt, "sslcert": crt, "sslkey": key})
    config = workdir / "postgres0.yml"
    config.write_text(yaml.safe_dump(raw))
    raw["restapi"]["listen"] = raw["restapi"]["connect_address"] = f"127.0.0.1:{dup_port}"
    dup_config = workdir / "dup-postgres0.yml"
    dup_config.write_text(yaml.safe_dump(raw))
    for path in (config, dup_config):
        shutil.chown(path, "postgres", "postgres")
    proc = spawn([SYSTEM_PYTHON, "-m", "pg_ha", str(config)], workdir / "log", as_postgres=True,
                 env=postgres_python_env())
    dup = None
    try:
        def primary() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/primary", timeout=2) as resp:
                return resp.status == 200
        wait_for(primary, 120, "the member with client certificates to become the leader")
        conf = (workdir / "data" / "postgresql0" / "postgresql.conf").read_text()
        assert "wal_keep_segments" not in conf and "wal_keep_size = '160MB'" in conf
        assert "translated wal_keep_segments=10 to wal_keep_size=160MB" in (workdir / "log").read_text()
        pid_before = (workdir / "data" / "postgresql0" / "postmaster.pid").read_text()

        dup = spawn([SYSTEM_PYTHON, "-m", "pg_ha", str(dup_config)], workdir / "dup-log", as_postgres=True,
                    env=postgres_python_env())
        assert dup.wait(60) == 1
        dup_log = (workdir / "dup-log").read_text()
        assert "Can't start; there is already a node named 'postgresql0' running" in dup_log
        assert "trying to bootstrap" not in dup_log and "starting PostgreSQL" not in dup_log
        assert (workdir / "data" / "postgresql0" / "postmaster.pid").read_text() == pid_before
        assert primary()
    finally:
        print((workdir / "log").read_text()[-5000:])
        if dup is not None and dup.poll() is None:
            stop_process(dup, signal.SIGTERM, timeout=30)
        stop_process(proc, signal.SIGTERM, timeout=60)
        kill_postmaster(workdir / "data" / "postgresql0")
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_replica_conf_never_goes_below_pg_control() -> None:
    """A backup of a primary with max_connections 120, restored where 100 is configured:
    the standby's postgresql.conf takes pg_control's 120, else recovery aborts."""
    import subprocess

    from pg_ha.config.settings import PostgresqlSettings
    from pg_ha.postgresql import config as pgconf

    workdir = postgres_tmpdir("pg_ha_floor_")
    try:
        data = workdir / "data"
        as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_postgres, f"{PG_BIN}/initdb", "-D", str(data)], check=True, capture_output=True,
                       timeout=120)
        with open(data / "postgresql.conf", "a") as fh:
            fh.write("max_connections = 120\n")
        subprocess.run([*as_postgres, f"{PG_BIN}/postgres", "--single", "-D", str(data), "postgres"],
                       stdin=subprocess.DEVNULL, check=True, capture_output=True, timeout=120)  # pg_control: 120
        s = PostgresqlSettings(name="n", scope="s", data_dir=str(data), parameters={"max_connections": 100})
        assert "max_connections = 120" in pgconf.render_postgresql_conf(s, {"primary_conninfo": "host=h"})
        assert "max_connections = 120" in pgconf.render_postgresql_conf(s, None, recovering=True)
        assert "max_connections = 100" in pgconf.render_postgresql_conf(s, None)  # a primary: as configured
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
