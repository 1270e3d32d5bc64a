"""Process helpers shared by every integration test: ports, waiting, running as postgres.

Every process a test starts is started in its own session and recorded by PID, so the
fixture that started it can kill it (and its children) whatever happened in the test.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
PKG_SRC = REPO / "plugins" / "module_utils" / "pg_ha"
PG_BIN = "/usr/lib/postgresql/15/bin"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python, as on managed hosts

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_for(cond: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `cond` until it returns a truthy value (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - condition may fail while things start
            last_exc = exc
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")
        time.sleep(interval)


_used_ports: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 and not handed out before in this test run."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _used_ports and port < 60000:
            _used_ports.add(port)
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def postgres_tmpdir(prefix: str) -> Path:
    """A fresh directory owned by user postgres."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    shutil.chown(path, "postgres", "postgres")
    return path


_pkg_copy: Path | None = None


def package_path() -> Path:
    """A copy of plugins/module_utils readable by user postgres (the checkout may not be)."""
    global _pkg_copy
    if _pkg_copy is None:
        root = Path(tempfile.mkdtemp(prefix="pg_ha_pkg_"))
        shutil.copytree(PKG_SRC, root / "pg_ha", ignore=shutil.ignore_patterns("__pycache__"))
        for dirpath, _dirnames, filenames in os.walk(root):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        _pkg_copy = root
    return _pkg_copy


def refresh_package() -> Path:
    """Re-copy the package (tests that edit nothing never need this)."""
    global _pkg_copy
    if _pkg_copy is not None:
        shutil.rmtree(_pkg_copy, ignore_errors=True)
    _pkg_copy = None
    return package_path()


def postgres_python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(package_path()),
        "LANG": "C.UTF-8",
        "HOME": "/var/lib/postgresql",
        "PYTHONUNBUFFERED": "1",
    }
    if extra:
        env.update(extra)
    return env


def spawn(argv: list[str], log_path: Path, as_postgres: bool = False,
          env: dict[str, str] | None = None, ambient_caps: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start a long-running process in its own session, output to log_path. ambient_caps
    (e.g. ("net_admin",)) stay with the postgres user's process and the programs it runs."""
    if as_postgres:  # setpriv execs: the PID we get is the process itself
        caps = ",".join(f"+{c}" for c in ambient_caps)
        argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                *(["--inh-caps", caps, "--ambient-caps", caps] if caps else []), *argv]
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    finally:
        log.close()


def run_as_postgres(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120,
                    check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], env=env, timeout=timeout,
                          check=check, capture_output=True, text=True)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and everything in its session/process group."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
                 timeout: float = 15) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        kill_group(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait(10)


def kill_postmaster(data_dir: Path | str) -> None:
    """A postmaster outlives a kill -9 of its parent daemon: kill it via postmaster.pid."""
    pidfile = Path(data_dir) / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_for(lambda: not pid_alive(pid), 10, f"postmaster {pid} to die")
        # children (backends) exit on their own once the postmaster is gone
