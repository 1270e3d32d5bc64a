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

    from pg_ha.postgresql import config as pgconf
    from pg_ha.settings import PostgresqlSettings

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
