"""A config written for Patroni's demo (the seeds' postgres0.yml), changed only in paths
and ports, starts pg_ha: it bootstraps, takes the lock and answers the REST API."""
from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.harness.common import (
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
