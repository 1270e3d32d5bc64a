"""The two daemons under test: how to start each with the same config file, and its CLI."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.common import PKG_SRC, SYSTEM_PYTHON, postgres_python_env

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/var/lib/postgresql",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Kind:
    """One daemon implementation. `key` is 'patroni' or 'pg_ha'."""

    key: str
    title: str
    daemon: tuple[str, ...]
    ctl: tuple[str, ...]
    env: dict[str, str]
    ctl_available: bool = True
    ctl_missing_note: str = ""

    def daemon_argv(self, config: Path) -> list[str]:
        return [*self.daemon, str(config)]

    def ctl_argv(self, config: Path, *args: str) -> list[str]:
        return [*self.ctl, "-c", str(config), *args]


def patroni_kind(venv: Path) -> Kind:
    version = subprocess.run([str(venv / "bin" / "patroni"), "--version"], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    return Kind(key="patroni", title=version.replace("patroni", "Patroni"),
                daemon=(str(venv / "bin" / "patroni"),), ctl=(str(venv / "bin" / "patronictl"),),
                env=dict(BASE_ENV))


def pg_ha_kind() -> Kind:
    found = re.search(r'__version__ = "([^"]+)"', (PKG_SRC / "__init__.py").read_text())
    ctl_main = PKG_SRC / "ctl" / "__main__.py"
    return Kind(key="pg_ha", title=f"pg_ha {found.group(1) if found else '?'}",
                daemon=(SYSTEM_PYTHON, "-m", "pg_ha"), ctl=(SYSTEM_PYTHON, "-m", "pg_ha.ctl"),
                env=postgres_python_env(dict(BASE_ENV)), ctl_available=ctl_main.exists(),
                ctl_missing_note=f"not available: {ctl_main.relative_to(PKG_SRC.parents[2])} does not exist yet")
