# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Linux watchdog device (/dev/watchdog, e.g. softdog or a hardware timer) through its
ioctls (linux/watchdog.h). Opening the device starts the timer; the 'V' magic character
written just before close stops it, a close without it leaves it running (a crashed daemon
still gets the node reset)."""
from __future__ import annotations

import array
import errno
import fcntl
import os
from collections.abc import Callable
from typing import Any

from .base import WatchdogError, close_device_fd

# _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr; READ = 2, WRITE = 1
_W = ord("W")


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (_W << 8) | nr


WATCHDOG_INFO_SIZE = 40  # struct watchdog_info { __u32 options; __u32 firmware_version; __u8 identity[32]; }
WDIOC_GETSUPPORT = _ioc(2, 0, WATCHDOG_INFO_SIZE)
WDIOC_KEEPALIVE = _ioc(2, 5, 4)
WDIOC_SETTIMEOUT = _ioc(3, 6, 4)
WDIOC_GETTIMEOUT = _ioc(2, 7, 4)

WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000

IoctlFunc = Callable[[int, int, Any, bool], Any]


def _ioctl(fd: int, request: int, arg: Any, mutate: bool = True) -> Any:
    return fcntl.ioctl(fd, request, arg, mutate)


class LinuxWatchdog:
    """One open watchdog device. `ioctl` and `opener` are replaceable for tests."""

    def __init__(self, device: str, ioctl: IoctlFunc = _ioctl,
                 opener: Callable[[str], int] | None = None) -> None:
        self.device = device
        self._ioctl = ioctl
        self._open = opener or (lambda path: os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        self._fd: int | None = None
        self.options = 0
        self.identity = ""

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def usable(self) -> str | None:
        """None if the device can be opened for writing, else why not (without opening it:
        opening would start the timer)."""
        if not os.path.exists(self.device):
            return f"{self.device} does not exist"
        if not os.access(self.device, os.W_OK):
            return f"{self.device} is not writable by this user"
        return None

    def open(self) -> None:
        if self._fd is not None:
            return
        try:
            self._fd = self._open(self.device)
        except OSError as exc:
            raise WatchdogError(f"cannot open {self.device}: {exc.strerror or exc}") from exc
        try:
            info = bytearray(WATCHDOG_INFO_SIZE)
            self._ioctl(self._fd, WDIOC_GETSUPPORT, info, True)
            self.options = int.from_bytes(info[0:4], "little")
            self.identity = bytes(info[8:40]).split(b"\0", 1)[0].decode("ascii", "replace")
        except OSError as exc:
            self.close(magic=True)
            raise WatchdogError(f"{self.device} is not a watchdog device (WDIOC_GETSUPPORT: "
                                f"{errno.errorcode.get(exc.errno or 0, exc)})") from exc

    def _int_ioctl(self, request: int, value: int = 0) -> int:
        assert self._fd is not None
        buf = array.array("i", [value])
        self._ioctl(self._fd, request, buf, True)
        return int(buf[0])

    def set_timeout(self, seconds: int) -> int:
        """Ask for `seconds`; returns the timeout the device actually runs with."""
        if self._fd is None:
            raise WatchdogError("watchdog device is not open")
        try:
            if self.options & WDIOF_SETTIMEOUT:
                self._int_ioctl(WDIOC_SETTIMEOUT, seconds)
            return self._int_ioctl(WDIOC_GETTIMEOUT)
        except OSError as exc:
            raise WatchdogError(f"cannot set the timeout of {self.device}: {exc.strerror or exc}") from exc

    def keepalive(self) -> None:
        if self._fd is None:
            raise WatchdogError("watchdog device is not open")
        try:
            if self.options & WDIOF_KEEPALIVEPING:
                self._int_ioctl(WDIOC_KEEPALIVE)
            else:
                os.write(self._fd, b"1")
        except OSError as exc:
            raise WatchdogError(f"keepalive on {self.device} failed: {exc.strerror or exc}") from exc

    def close(self, magic: bool = True) -> None:
        """Stop the timer (magic close 'V') and close the device."""
        fd, self._fd = self._fd, None
        close_device_fd(fd, magic)

    def fired(self) -> bool:
        return False  # a real watchdog that fired reset the machine: we are not here to see it
