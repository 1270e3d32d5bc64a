"""Patroni from PyPI in a venv of its own (Debian's python3), for tests that run Patroni
members beside pg_ha ones: made once under /var/tmp and reused while it holds the pinned
version. The same way bench/run.sh installs it, pinned."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from .cluster import Member
from .common import PG_BIN, SYSTEM_PYTHON, pid_alive, postgres_python_env, run_as_postgres, spawn

PATRONI_VERSION = "4.1.5"
PATRONI_VENV = Path(os.environ.get("ELEPHANT_HA_PATRONI_VENV", "/var/tmp/elephant-ha-patroni-venv"))
REQUIREMENTS = (f"patroni[etcd3]=={PATRONI_VERSION}", "psycopg2-binary")


def installed_version(venv: Path) -> str | None:
    patroni = venv / "bin" / "patroni"
    if not patroni.exists():
        return None
    proc = subprocess.run([str(patroni), "--version"], capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.strip().rsplit(" ", 1)[-1] if proc.returncode == 0 else None


def ensure_patroni(venv: Path = PATRONI_VENV) -> Path:
    """The venv's bin directory with `patroni` and `patronictl` of PATRONI_VERSION."""
    if installed_version(venv) != PATRONI_VERSION:
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                       check=True, timeout=900)
        found = installed_version(venv)
        if found != PATRONI_VERSION:
            raise RuntimeError(f"{venv}: patroni --version says {found!r}, wanted {PATRONI_VERSION}")
    for dirpath, dirnames, filenames in os.walk(venv):  # readable by user postgres
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o044 | (0o011 if mode & 0o100 else 0))
    os.chmod(venv, 0o755)
    return venv / "bin"


class DaemonMember(Member):
    """A member run by Patroni or by pg_ha, on the same config file and data directory."""

    def __init__(self, name: str, workdir: Path, config: dict[str, Any]) -> None:
        super().__init__(name, workdir, config)
        self.kind = "none"
        self.patroni_log = workdir / "patroni.log"

    def start_patroni(self, bin_dir: Path) -> None:
        assert not self.running, f"{self.name} already running"
        env = {**postgres_python_env(), "PYTHONPATH": ""}
        self.proc = spawn([str(bin_dir / "patroni"), str(self.config_path)], self.patroni_log,
                          as_postgres=True, env=env)
        self.kind = "patroni"

    def start(self) -> None:
        super().start()
        self.kind = "pg_ha"

    def stop_daemon(self, timeout: float = 60) -> None:
        """`systemctl stop`: SIGTERM to the daemon, which stops PostgreSQL itself; a daemon
        still there after `timeout` (systemd's TimeoutStopSec) gets SIGKILL with its whole
        process group, as systemd does. Patroni 4.1.5 once stopped PostgreSQL and then did not
        exit for a minute (CI); a daemon that had not stopped PostgreSQL by then fails here."""
        assert self.proc is not None and self.running, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            assert not self.postmaster_running(), \
                f"{self.name}: {self.kind} did not stop PostgreSQL within {timeout:g} s of SIGTERM"
            print(f"{self.name}: {self.kind} stopped PostgreSQL but did not exit within {timeout:g} s of SIGTERM;"
                  " SIGKILL to its process group, as systemd after TimeoutStopSec")
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.kind = "none"

    def postmaster_running(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return pid_alive(pid)

    def system_identifier(self) -> str:
        out = run_as_postgres([f"{PG_BIN}/pg_controldata", "-D", str(self.data_dir)]).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Database system identifier"))

    def streaming_names(self) -> set[str]:
        """application_name of every replica streaming from this member."""
        rows = self.sql("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
        return {str(r[0]) for r in rows}

    def timeline(self) -> int:
        return int(self.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0])
