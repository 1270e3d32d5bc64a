# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watchdog: fence a leader whose HA loop stopped refreshing the leader key, before the key
expires and another member is promoted. Drivers: `default` (Linux /dev/watchdog ioctls) and
`testing` (Patroni's test protocol written to `device`, or without one a fencing process,
for machines without a watchdog device)."""
from __future__ import annotations

from .base import Device, Watchdog, WatchdogError
from .settings import WatchdogConfigError, WatchdogSettings, parse_watchdog


def make_device(settings: WatchdogSettings, data_dir: str) -> Device:
    if settings.driver == "testing":
        from .testing import testing_device
        return testing_device(settings.device, data_dir)
    from .linux import LinuxWatchdog
    return LinuxWatchdog(settings.device)


def from_config(settings: WatchdogSettings, data_dir: str) -> Watchdog:
    return Watchdog(settings, lambda s: make_device(s, data_dir))


__all__ = ["Device", "Watchdog", "WatchdogConfigError", "WatchdogError", "WatchdogSettings", "from_config",
           "make_device", "parse_watchdog"]
