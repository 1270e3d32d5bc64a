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
