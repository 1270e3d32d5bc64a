# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `watchdog:` section (Patroni's keys) and the timeout it implies. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("off", "automatic", "required")
DRIVERS = ("default", "testing")
DEFAULT_DEVICE = "/dev/watchdog"


class WatchdogConfigError(ValueError):
    """One line naming the bad key (config.py turns it into a ConfigError)."""


@dataclass(frozen=True)
class WatchdogSettings:
    mode: str = "off"
    device: str = DEFAULT_DEVICE
    safety_margin: int = 5
    driver: str = "default"

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def required(self) -> bool:
        return self.mode == "required"

    def timeout(self, ttl: int) -> int:
        """Seconds the device may go without a keepalive: it must fire before the leader key
        expires, so ttl - safety_margin (-1: half the ttl, as Patroni does)."""
        if self.safety_margin == -1:
            return ttl // 2
        return ttl - self.safety_margin


def _mode(value: Any) -> str:
    # YAML 1.1 reads `mode: off` as False and `mode: on` as True (Patroni maps them the same way)
    if value is False or value is None:
        return "off"
    if value is True:
        return "automatic"
    if isinstance(value, str) and value.strip().lower() in MODES:
        return value.strip().lower()
    raise WatchdogConfigError(f"watchdog.mode: expected one of off, automatic, required, got {value!r}")


def parse_watchdog(raw: Any) -> WatchdogSettings:
    """The `watchdog:` mapping (None or {} = off) -> WatchdogSettings, or a one-line error."""
    if raw is None:
        return WatchdogSettings()
    if not isinstance(raw, dict):
        raise WatchdogConfigError(f"watchdog: expected a mapping, got {type(raw).__name__}")
    mode = _mode(raw.get("mode", "automatic" if raw else "off"))
    device = raw.get("device", DEFAULT_DEVICE)
    if not isinstance(device, str) or not device.strip():
        raise WatchdogConfigError(f"watchdog.device: expected a path, got {device!r}")
    margin = raw.get("safety_margin", 5)
    if isinstance(margin, str) and margin.strip().lstrip("-").isdigit():
        margin = int(margin)
    if isinstance(margin, bool) or not isinstance(margin, int):
        raise WatchdogConfigError(f"watchdog.safety_margin: expected an integer, got {margin!r}")
    if margin < -1:
        raise WatchdogConfigError(f"watchdog.safety_margin: must be >= 0 (or -1 for ttl/2), got {margin}")
    driver = raw.get("driver", "default")
    if driver not in DRIVERS:
        raise WatchdogConfigError(f"watchdog.driver: expected one of default, testing, got {driver!r}")
    return WatchdogSettings(mode=mode, device=device, safety_margin=margin, driver=driver)


def timing_problem(settings: WatchdogSettings, ttl: int, loop_wait: int) -> str | None:
    """Why this ttl/loop_wait cannot be protected by the watchdog, or None."""
    timeout = settings.timeout(ttl)
    if timeout < 1:
        return (f"watchdog timeout ttl - safety_margin = {timeout} s is too small "
                f"(ttl {ttl}, safety_margin {settings.safety_margin})")
    if timeout <= loop_wait:
        return (f"watchdog timeout {timeout} s (ttl - safety_margin) is not longer than loop_wait "
                f"{loop_wait} s: the HA loop could not keep it alive")
    return None


FAILSAFE_CONSENT = 3.0  # seconds the primary may wait for the members' consent (failsafe_keeper: CALL_TIMEOUT + 1)


def timing_warning(settings: WatchdogSettings, ttl: int, loop_wait: int, retry_timeout: float,
                   failsafe_mode: bool) -> str | None:
    """Why this timing, although valid, fences a healthy primary on one slow DCS request, or None.

    The watchdog is fed after each renewal of the leader key. The next cycle starts up to
    loop_wait later; a DCS request that hangs takes up to retry_timeout before the cycle
    knows; with failsafe_mode the members' consent takes up to FAILSAFE_CONSENT more. If the
    watchdog's timeout is shorter than all that, a DCS hiccup resets the primary instead of
    leaving the decision to the HA loop (safe, but an outage the HA loop would have avoided)."""
    timeout = settings.timeout(ttl)
    needed = loop_wait + retry_timeout + (FAILSAFE_CONSENT if failsafe_mode else 0.0)
    if timeout >= needed:
        return None
    parts = f"loop_wait {loop_wait} + retry_timeout {retry_timeout:g}" + (
        f" + failsafe consent {FAILSAFE_CONSENT:g}" if failsafe_mode else "")
    margin = ttl - needed
    advice = (f"lower safety_margin to at most {int(margin)}" if margin >= 1
              else "raise ttl or lower loop_wait/retry_timeout")
    return (f"watchdog timeout {timeout} s (ttl {ttl} - safety_margin {settings.safety_margin}) is shorter than "
            f"{parts} = {needed:g} s: one DCS request that hangs fences the primary"
            f"{' before failsafe_mode can keep it' if failsafe_mode else ''}; {advice}")
