"""Patroni's own patronictl (from PyPI, in a venv of its own) for tests that compare pg_hactl with it.

``PG_HA_PATRONICTL`` names a patronictl to use as is; otherwise the venv ``PG_HA_PATRONI_VENV``
(default /var/tmp/pg_ha-test-patroni-<version>) is created once with Debian's python3 and
``pip install patroni[etcd3]==<version> psycopg2-binary``, under a file lock so that
concurrent test runs share it."""
from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from .common import SYSTEM_PYTHON

PATRONI_VERSION = "4.1.5"
REQUIREMENTS = (f"patroni[etcd3]=={PATRONI_VERSION}", "psycopg2-binary")


def _venv() -> Path:
    return Path(os.environ.get("PG_HA_PATRONI_VENV", f"/var/tmp/pg_ha-test-patroni-{PATRONI_VERSION}"))


def _version_ok(exe: Path) -> bool:
    try:
        out = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.strip() == f"patronictl version {PATRONI_VERSION}"


def patronictl() -> Path:
    """The patronictl executable (installed on first use)."""
    given = os.environ.get("PG_HA_PATRONICTL")
    if given:
        return Path(given)
    venv = _venv()
    exe = venv / "bin" / "patronictl"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _version_ok(exe):
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
            result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                                     *REQUIREMENTS], capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"installing {' '.join(REQUIREMENTS)} failed:\n{result.stderr[-3000:]}"
            assert _version_ok(exe), f"{exe} does not report patronictl version {PATRONI_VERSION}"
    return exe


def patronictl_env(home: Path | str) -> dict[str, str]:
    """A clean environment: no PATRONI_* variables of the caller leak into patronictl."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
