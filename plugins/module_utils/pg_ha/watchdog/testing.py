# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`driver: testing`: a watchdog for machines without /dev/watchdog, for tests only.

The "device" is a separate fencing process (fence.py) fed through a pipe. It is a process,
not a thread, so that freezing the daemon (SIGSTOP) or killing it does not freeze the watchdog;
when it fires it SIGKILLs the local postmaster instead of resetting the host."""
from __future__ import annotations

import os
import subprocess
import sys

from .base import WatchdogError, close_device_fd
from .fence import FENCED_EXIT

FENCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fence.py")
INITIAL_TIMEOUT = 60  # what softdog starts with before WDIOC_SETTIMEOUT


class TestingWatchdog:
    __test__ = False  # not a pytest class

    def __init__(self, data_dir: str, python: str | None = None) -> None:
        self.device = "testing (fencing process)"
        self.data_dir = data_dir
        self._python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._write_fd is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def usable(self) -> str | None:
        if not os.path.exists(FENCE_SCRIPT):
            return f"{FENCE_SCRIPT} is missing"
        return None

    def open(self) -> None:
        if self._write_fd is not None:
            return
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [self._python, FENCE_SCRIPT, "--fd", str(read_fd), "--data-dir", self.data_dir,
                 "--timeout", str(INITIAL_TIMEOUT)],
                pass_fds=(read_fd,), stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            os.close(write_fd)
            raise WatchdogError(f"cannot start the fencing process: {exc}") from exc
        finally:
            os.close(read_fd)
        os.set_inheritable(write_fd, False)
        self._write_fd = write_fd

    def _send(self, data: bytes) -> None:
        if self._write_fd is None:
            raise WatchdogError("the fencing process is not running")
        try:
            os.write(self._write_fd, data)
        except OSError as exc:
            raise WatchdogError(f"the fencing process is gone ({exc.strerror or exc})") from exc

    def set_timeout(self, seconds: int) -> int:
        self._send(f"T{seconds}\n".encode())
        return seconds

    def keepalive(self) -> None:
        self._send(b"K")

    def close(self, magic: bool = True) -> None:
        fd, self._write_fd = self._write_fd, None
        close_device_fd(fd, magic)
        proc = self._proc
        if proc is None or not magic:
            return
        self._proc = None
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def fired(self) -> bool:
        """The fencing process fenced PostgreSQL (seen once, then forgotten)."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return False
        self._proc = None
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        return proc.returncode == FENCED_EXIT
