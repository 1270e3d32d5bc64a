# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local leader-lease deadline (pure arithmetic, no clock of its own).

A renewal request that etcd answered was *sent* at ``sent_at`` (time.monotonic()); etcd
resets the lease's ttl when it *processes* the request, later than we sent it, so the lease
cannot expire in etcd before ``sent_at + ttl``. The primary stops accepting writes (and
``/primary`` answers 503) at

    deadline = sent_at + ttl - margin(ttl)

The margin is what the demotion needs to be done before the lease can expire: waking the
guard thread, ``pg_ctl stop -m immediate`` and the postmaster going away on a loaded host
(measured below a second here; we allow several), and the clock rates of two hosts that
differ by far less than that. It is MARGIN (5 s, Patroni's default watchdog
safety_margin: at ttl 30 the deadline is 25 s after the renewal was sent), and at most a
quarter of the ttl, so a short ttl keeps three quarters of the lease usable (ttl 10: 2.5 s).

With failsafe_mode, every member's consent (POST /failsafe accepted) is what lets the primary
run without the DCS: a member that accepted does not take the leader key for ttl seconds
after it got the call, so a consent asked for at ``sent_at`` moves the deadline like a
renewal sent then."""
from __future__ import annotations

MARGIN = 5.0


def margin(ttl: float) -> float:
    """Seconds before the lease can expire at which the primary is demoted."""
    return min(MARGIN, ttl / 4)


def deadline(sent_at: float, ttl: float) -> float:
    """The deadline after a renewal (or a failsafe consent) sent at `sent_at`."""
    return sent_at + ttl - margin(ttl)


def ahead(until: float | None, now: float) -> bool:
    """True while `until` (a deadline, None = no lease) is in the future."""
    return until is not None and now < until


def later(current: float | None, new: float) -> float:
    """A renewal never moves the deadline back (requests may finish out of order)."""
    return new if current is None else max(current, new)


def timing_warning(ttl: float, loop_wait: float, retry_timeout: float) -> str | None:
    """A healthy primary renews every loop_wait, one slow DCS call later by up to
    retry_timeout; a deadline closer than that demotes it on one hiccup."""
    usable = ttl - margin(ttl)
    if usable > loop_wait + retry_timeout:
        return None
    return (f"ttl {ttl:g} leaves {usable:g} s of the lease to the primary (margin {margin(ttl):g} s), "
            f"not more than loop_wait + retry_timeout = {loop_wait + retry_timeout:g} s: one slow DCS "
            f"request demotes it; raise ttl")
