"""Facts about the machine and the software versions, for the report."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import yaml

from tests.harness.common import PG_BIN, REPO, SYSTEM_PYTHON

from .haproxy import CHECK
from .kinds import Kind

ROLE_DEFAULTS = REPO / "roles" / "haproxy" / "defaults" / "main.yml"


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"? ({exc})"
    return ((proc.stdout or proc.stderr).strip().splitlines() or ["?"])[0]


def _cpuinfo(key: str) -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return "?"


def _meminfo_gib() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _git() -> str:
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "plugins/module_utils/pg_ha"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"{head}{' + uncommitted changes in plugins/module_utils/pg_ha' if dirty else ''}"


def haproxy_role_preset() -> str:
    """The check timing the haproxy role ships, compared with the one measured here."""
    try:
        timing = (yaml.safe_load(ROLE_DEFAULTS.read_text()) or {}).get("haproxy_timing") or {}
    except (OSError, yaml.YAMLError) as exc:
        return f"not readable ({exc})"
    shipped = (f"inter {timing.get('check_interval')} fall {timing.get('check_fall')} "
               f"rise {timing.get('check_rise')}")
    same = CHECK.startswith(shipped)
    return f"`{shipped}` ({'same as' if same else 'differs from'} the bench's `{CHECK}`)"


def facts(kinds: list[Kind], dcs: str = "etcd") -> dict[str, str]:
    found = {
        "CPU": f"{_cpuinfo('model name')}, {os.cpu_count()} cores",
        "memory": _meminfo_gib(),
        "OS / kernel": f"{_os_name()} / {platform.release()}",
        "PostgreSQL": _first_line([f"{PG_BIN}/postgres", "--version"]),
        "etcd": _first_line(["/usr/bin/etcd", "--version"]),
        "HAProxy": _first_line(["/usr/sbin/haproxy", "-v"]),
        "Python (daemons, runner)": _first_line([SYSTEM_PYTHON, "--version"]),
        "daemons": ", ".join(k.title for k in kinds),
        "pg_ha source": f"git {_git()}",
        "haproxy role defaults (roles/haproxy)": haproxy_role_preset(),
    }
    if dcs == "zookeeper":
        found["ZooKeeper"] = _first_line(["dpkg-query", "-W", "-f", "${Package} ${Version}", "zookeeper"])
        found["kazoo (pg_ha)"] = _first_line(["dpkg-query", "-W", "-f", "${Package} ${Version}", "python3-kazoo"])
    return found
