# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`driver: testing`: a watchdog for machines without /dev/watchdog, for tests only.

It speaks the protocol of Patroni's `testing` driver, the Linux watchdog API with its ioctls
turned into writes: `1` keepalive, `Ctimeout=<n>\\n` set the timeout, `V` magic close.
- With a `device` (any path but /dev/watchdog), as Patroni: the writes go to that file, usually
  a named pipe read by a test harness (Patroni's own acceptance features use one).
- Without one, the "device" is a separate fencing process (fence.py) fed through a pipe. It is a
  process, not a thread, so that freezing the daemon (SIGSTOP) or killing it does not freeze the
  watchdog; when it fires it SIGKILLs the local postmaster instead of resetting the host."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

from .base import WatchdogError, close_device_fd
from .fence import COMMAND, FENCED_EXIT, KEEPALIVE
from .settings import DEFAULT_DEVICE

FENCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fence.py")
INITIAL_TIMEOUT = 60  # what softdog starts with before WDIOC_SETTIMEOUT


class _ProtocolWriter:
    """The writes of Patroni's testing driver on an open file descriptor."""

    device: str
    _write_fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._write_fd is not None

    def _send(self, data: bytes) -> None:
        if self._write_fd is None:
            raise WatchdogError(f"{self.device} is not open")
        try:
            while data:
                data = data[os.write(self._write_fd, data):]
        except OSError as exc:
            raise WatchdogError(f"{self.device}: {exc.strerror or exc}") from exc

    def set_timeout(self, seconds: int) -> int:
        self._send(COMMAND + f"timeout={seconds}\n".encode())
        return seconds

    def keepalive(self) -> None:
        self._send(KEEPALIVE)


class DeviceFileWatchdog(_ProtocolWriter):
    """Patroni's testing driver as is: the protocol written to the file named by `device`."""

    __test__ = False  # not a pytest class

    def __init__(self, device: str) -> None:
        self.device = device

    def usable(self) -> str | None:
        return None if os.path.exists(self.device) else f"{self.device} does not exist"

    def open(self) -> None:
        if self._write_fd is not None:
            return
        try:
            # non-blocking: a named pipe nobody reads is an error here, not a hung HA loop
            fd = os.open(self.device, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            reason = "nobody reads the named pipe" if exc.errno == errno.ENXIO else exc.strerror or exc
            raise WatchdogError(f"cannot open {self.device}: {reason}") from exc
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
        self._write_fd = fd

    def close(self, magic: bool = True) -> None:
        fd, self._write_fd = self._write_fd, None
        close_device_fd(fd, magic)

    def fired(self) -> bool:
        return False  # a harness reading the file decides that; nothing here is fenced


class TestingWatchdog(_ProtocolWriter):
    """The fencing process, for a testing driver without a device."""

    __test__ = False  # not a pytest class

    def __init__(self, data_dir: str, python: str | None = None) -> None:
        self.device = "testing (fencing process)"
        self.data_dir = data_dir
        self._python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None

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
            super()._send(data)
        except WatchdogError as exc:
            raise WatchdogError(f"the fencing process is gone ({exc})") from exc

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


def testing_device(device: str, data_dir: str) -> DeviceFileWatchdog | TestingWatchdog:
    """A named device: Patroni's behaviour; none (the default path): the fencing process."""
    return TestingWatchdog(data_dir) if device == DEFAULT_DEVICE else DeviceFileWatchdog(device)
