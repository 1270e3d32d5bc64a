# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watchdog as the HA loop sees it: arm before promotion, keep alive after each
successful leader-key refresh, disarm when no longer a primary or in pause. The mode decides
what a device that cannot be armed means: `automatic` warns and goes on, `required` refuses."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Protocol

from ..config.defaults import DYNAMIC_DEFAULTS
from .settings import WatchdogSettings, timing_problem, timing_warning

logger = logging.getLogger("pg_ha")


class WatchdogError(Exception):
    """The device could not be opened, configured or kept alive (one line)."""


class Device(Protocol):
    device: str

    @property
    def is_open(self) -> bool: ...
    def usable(self) -> str | None: ...
    def open(self) -> None: ...
    def set_timeout(self, seconds: int) -> int: ...
    def keepalive(self) -> None: ...
    def close(self, magic: bool = True) -> None: ...
    def fired(self) -> bool: ...


DeviceFactory = Callable[[WatchdogSettings], Device]


class Watchdog:
    def __init__(self, settings: WatchdogSettings, factory: DeviceFactory) -> None:
        self.settings = settings
        self._factory = factory
        self._device: Device | None = None
        self._timeout: int | None = None  # the timeout the armed device runs with
        self._ttl: int = DYNAMIC_DEFAULTS["ttl"]
        self._loop_wait: int = DYNAMIC_DEFAULTS["loop_wait"]
        self._retry_timeout: float = DYNAMIC_DEFAULTS["retry_timeout"]
        self._failsafe_mode = False
        self._last_problem: str | None = None

    # -- configuration ----------------------------------------------------------------
    def set_timing(self, ttl: int, loop_wait: int, retry_timeout: float = DYNAMIC_DEFAULTS["retry_timeout"],
                   failsafe_mode: bool = False) -> None:
        """Timings from the dynamic config; an armed device gets the new timeout at the
        next keepalive."""
        self._ttl, self._loop_wait = ttl, loop_wait
        self._retry_timeout, self._failsafe_mode = retry_timeout, failsafe_mode

    def reconfigure(self, settings: WatchdogSettings) -> None:
        if settings == self.settings:
            return
        if self.armed and (settings.device != self.settings.device or settings.driver != self.settings.driver
                           or not settings.enabled):
            self.disarm()
        self.settings = settings

    @property
    def wanted_timeout(self) -> int:
        return self.settings.timeout(self._ttl)

    # -- state ----------------------------------------------------------------------------
    @property
    def armed(self) -> bool:
        return self._device is not None and self._device.is_open

    def usable(self) -> bool:
        """False only in mode required when the device can not be armed (for the leader race)."""
        if not self.settings.required or self.armed:
            return True
        problem = timing_problem(self.settings, self._ttl, self._loop_wait) or \
            self._factory(self.settings).usable()
        if problem:
            self._note(f"watchdog is not usable: {problem}", logging.WARNING)
        return problem is None

    def fired(self) -> bool:
        """The device fenced this node while we were not keeping it alive (testing driver)."""
        if self._device is not None and self._device.fired():
            self._device = None
            self._timeout = None
            return True
        return False

    # -- actions ----------------------------------------------------------------------------
    def arm(self) -> bool:
        """Make sure the watchdog runs. False means: do not act as the leader (mode required
        and the device could not be armed); in mode automatic a failure is a warning."""
        if not self.settings.enabled:
            return True
        if self.armed:
            self.keepalive()
            return self.armed or not self.settings.required
        try:
            self._arm()
        except WatchdogError as exc:
            if self.settings.required:
                self._note(f"watchdog could not be activated: {exc} (watchdog mode is required)", logging.ERROR)
                return False
            self._note(f"watchdog could not be activated: {exc}; going on without it (watchdog mode is "
                       "automatic)", logging.WARNING)
            return True
        self._last_problem = None
        logger.info("watchdog armed: %s, timeout %s s (ttl %s - safety_margin %s)", self.settings.device
                    if self.settings.driver == "default" else "testing driver", self._timeout, self._ttl,
                    self.settings.safety_margin)
        warning = timing_warning(self.settings, self._ttl, self._loop_wait, self._retry_timeout,
                                 self._failsafe_mode)
        if warning:
            logger.warning("%s", warning)
        return True

    def _arm(self) -> None:
        problem = timing_problem(self.settings, self._ttl, self._loop_wait)
        if problem:
            raise WatchdogError(problem)
        wanted = self.wanted_timeout
        device = self._factory(self.settings)
        device.open()
        try:
            actual = device.set_timeout(wanted)
            if actual > wanted:
                raise WatchdogError(f"{device.device} runs with a timeout of {actual} s, longer than ttl - "
                                    f"safety_margin = {wanted} s: it would fire after the leader key expired")
            device.keepalive()
        except WatchdogError:
            device.close(magic=True)
            raise
        self._device, self._timeout = device, actual

    def keepalive(self) -> None:
        """After a successful leader-key refresh: the timer starts over."""
        device = self._device
        if device is None or not device.is_open:
            return
        try:
            wanted = self.wanted_timeout
            if wanted != self._timeout and timing_problem(self.settings, self._ttl, self._loop_wait) is None:
                self._timeout = device.set_timeout(wanted)
                logger.info("watchdog timeout changed to %s s", self._timeout)
            device.keepalive()
        except WatchdogError as exc:
            logger.error("watchdog keepalive failed: %s", exc)
            device.close(magic=False)
            self._device = None

    def disarm(self) -> None:
        device, self._device = self._device, None
        self._timeout = None
        if device is None or not device.is_open:
            return
        device.close(magic=True)
        logger.info("watchdog disarmed")

    def _note(self, message: str, level: int) -> None:
        """Log a problem once, not every cycle."""
        if message != self._last_problem:
            logger.log(level, "%s", message)
            self._last_problem = message


def close_device_fd(fd: int | None, magic: bool) -> None:
    """Close a watchdog file descriptor; with ``magic`` write 'V' first (the Linux watchdog API's
    magic close, which stops the timer). Shared by the Linux and the testing drivers."""
    if fd is None:
        return
    try:
        if magic:
            os.write(fd, b"V")
    except OSError:
        pass
    finally:
        os.close(fd)
