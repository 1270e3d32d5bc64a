"""Watchdog: settings and timeout, the Linux ioctl driver against a fake device file, the
arm/keepalive/disarm sequencing of the controller, the loop's step table, the fencing timer."""
from __future__ import annotations

import array
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pg_ha.config.load import ConfigError, build_config
from pg_ha.core.ha import Action, Decision
from pg_ha.watchdog import Watchdog, WatchdogError, WatchdogSettings, make_device, parse_watchdog
from pg_ha.watchdog.fence import Timer
from pg_ha.watchdog.linux import (
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETTIMEOUT,
    WDIOF_KEEPALIVEPING,
    WDIOF_MAGICCLOSE,
    WDIOF_SETTIMEOUT,
    LinuxWatchdog,
)
from pg_ha.watchdog.loop import Step, after_cycle
from pg_ha.watchdog.settings import FAILSAFE_CONSENT, timing_problem, timing_warning

from tests.fakes import make_config

# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("margin", "ttl", "timeout"), [(5, 30, 25), (5, 10, 5), (0, 30, 30), (-1, 30, 15),
                                                        (-1, 11, 5), (10, 30, 20)])
def test_timeout_is_ttl_minus_safety_margin(margin: int, ttl: int, timeout: int) -> None:
    assert WatchdogSettings(mode="required", safety_margin=margin).timeout(ttl) == timeout


def test_ioctl_numbers_match_linux_watchdog_h() -> None:
    assert (WDIOC_GETSUPPORT, WDIOC_KEEPALIVE, WDIOC_SETTIMEOUT, WDIOC_GETTIMEOUT) == \
        (0x80285700, 0x80045705, 0xC0045706, 0x80045707)


@pytest.mark.parametrize(("raw", "expected"), [
    (None, WatchdogSettings()),
    ({}, WatchdogSettings()),
    ({"mode": False}, WatchdogSettings(mode="off")),          # YAML `mode: off`
    ({"mode": True}, WatchdogSettings(mode="automatic")),     # YAML `mode: on`
    ({"mode": "Required", "device": "/dev/watchdog1", "safety_margin": "-1", "driver": "testing"},
     WatchdogSettings(mode="required", device="/dev/watchdog1", safety_margin=-1, driver="testing")),
    ({"device": "/dev/watchdog"}, WatchdogSettings(mode="automatic")),  # Patroni's default mode
])
def test_parse_watchdog(raw: Any, expected: WatchdogSettings) -> None:
    assert parse_watchdog(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ({"mode": "sometimes"}, "watchdog.mode: expected one of off, automatic, required, got 'sometimes'"),
    ({"mode": "required", "safety_margin": -2}, "watchdog.safety_margin: must be >= 0 (or -1 for ttl/2), got -2"),
    ({"mode": "required", "safety_margin": "five"}, "watchdog.safety_margin: expected an integer, got 'five'"),
    ({"mode": "required", "driver": "magic"}, "watchdog.driver: expected one of default, testing, got 'magic'"),
    ({"mode": "required", "device": ""}, "watchdog.device: expected a path, got ''"),
])
def test_bad_watchdog_config_is_refused_naming_the_key(raw: dict[str, Any], message: str) -> None:
    config = {"scope": "s", "name": "n", "etcd3": {"hosts": ["127.0.0.1:2379"]},
              "restapi": {"listen": "127.0.0.1:8008"},
              "postgresql": {"data_dir": "/tmp/x", "listen": "127.0.0.1:5432"}, "watchdog": raw}
    with pytest.raises(ConfigError) as err:
        build_config(config, environ={})
    assert str(err.value) == message


@pytest.mark.parametrize(("margin", "ttl", "loop_wait", "problem"), [
    (5, 30, 10, None),
    (5, 10, 2, None),
    (5, 10, 5, "is not longer than loop_wait"),
    (10, 10, 2, "too small"),
    (-1, 10, 4, None),
])
def test_timing_problem(margin: int, ttl: int, loop_wait: int, problem: str | None) -> None:
    found = timing_problem(WatchdogSettings(mode="required", safety_margin=margin), ttl, loop_wait)
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.parametrize(("margin", "ttl", "loop_wait", "retry", "failsafe", "warning"), [
    (5, 30, 10, 10, False, None),  # Patroni's defaults: 25 >= 20
    (5, 30, 10, 10, True, None),  # 25 >= 23
    (5, 30, 10, 13, True, "shorter than loop_wait 10 + retry_timeout 13 + failsafe consent 3 = 26 s"),
    (5, 10, 2, 3, False, None),  # 5 >= 5
    (5, 10, 2, 3, True, "before failsafe_mode can keep it; lower safety_margin to at most 2"),
    (2, 10, 2, 3, True, None),  # 8 >= 8
    (5, 10, 2, 4, False, "lower safety_margin to at most 4"),
    (-1, 10, 4, 5, False, "lower safety_margin to at most 1"),  # ttl/2 = 5 < 9
    (-1, 10, 4, 6, False, "raise ttl or lower loop_wait/retry_timeout"),  # 5 < 10: no margin fits
])
def test_timing_warning(margin: int, ttl: int, loop_wait: int, retry: float, failsafe: bool,
                        warning: str | None) -> None:
    found = timing_warning(WatchdogSettings(mode="required", safety_margin=margin), ttl, loop_wait, retry, failsafe)
    assert (found is None) if warning is None else (warning in (found or "")), found


def test_failsafe_consent_time_matches_the_keeper() -> None:
    from pg_ha.node.failsafe_keeper import CALL_TIMEOUT
    assert FAILSAFE_CONSENT == CALL_TIMEOUT + 1.0


# -- the Linux driver against a fake device file --------------------------------------------------

class FakeIoctl:
    """Plays the kernel: records every request, answers like a watchdog driver would."""

    def __init__(self, options: int = WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING,
                 max_timeout: int = 65535, identity: bytes = b"Software Watchdog") -> None:
        self.options = options
        self.max_timeout = max_timeout
        self.identity = identity
        self.timeout = 60
        self.calls: list[tuple[str, int]] = []

    def __call__(self, fd: int, request: int, arg: Any, mutate: bool = True) -> Any:
        if request == WDIOC_GETSUPPORT:
            arg[0:4] = self.options.to_bytes(4, "little")
            arg[8:8 + len(self.identity)] = self.identity
            self.calls.append(("GETSUPPORT", 0))
        elif request == WDIOC_SETTIMEOUT:
            assert isinstance(arg, array.array)
            self.timeout = min(arg[0], self.max_timeout)
            arg[0] = self.timeout
            self.calls.append(("SETTIMEOUT", self.timeout))
        elif request == WDIOC_GETTIMEOUT:
            arg[0] = self.timeout
            self.calls.append(("GETTIMEOUT", self.timeout))
        elif request == WDIOC_KEEPALIVE:
            self.calls.append(("KEEPALIVE", 0))
        else:
            raise OSError(25, "Inappropriate ioctl for device")
        return 0


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    return path


def test_linux_driver_sequence_and_magic_close(device: Path) -> None:
    ioctl = FakeIoctl()
    dev = LinuxWatchdog(str(device), ioctl=ioctl)
    assert dev.usable() is None
    dev.open()
    assert dev.identity == "Software Watchdog"
    assert dev.set_timeout(25) == 25
    dev.keepalive()
    dev.close()
    assert [c[0] for c in ioctl.calls] == ["GETSUPPORT", "SETTIMEOUT", "GETTIMEOUT", "KEEPALIVE"]
    assert device.read_bytes() == b"V"  # magic close: the timer is stopped
    assert not dev.is_open


def test_linux_driver_without_keepalive_ioctl_writes(device: Path) -> None:
    ioctl = FakeIoctl(options=WDIOF_MAGICCLOSE)  # no SETTIMEOUT, no KEEPALIVEPING
    dev = LinuxWatchdog(str(device), ioctl=ioctl)
    dev.open()
    assert dev.set_timeout(25) == 60  # cannot be changed: the device's own timeout
    dev.keepalive()
    dev.close(magic=False)
    assert [c[0] for c in ioctl.calls] == ["GETSUPPORT", "GETTIMEOUT"]
    assert device.read_bytes() == b"1"  # a write is a keepalive; no 'V': the timer keeps running


def test_linux_driver_refuses_a_file_that_is_no_watchdog(device: Path) -> None:
    dev = LinuxWatchdog(str(device))  # the real fcntl.ioctl on a regular file: ENOTTY
    with pytest.raises(WatchdogError, match="is not a watchdog device"):
        dev.open()
    assert not dev.is_open


def test_linux_driver_missing_or_unwritable(tmp_path: Path) -> None:
    assert LinuxWatchdog(str(tmp_path / "nope")).usable() == f"{tmp_path / 'nope'} does not exist"
    with pytest.raises(WatchdogError, match="cannot open"):
        LinuxWatchdog(str(tmp_path / "nope")).open()


# -- the controller: arm / keepalive / disarm ---------------------------------------------------

def controller(device: Path, ioctl: FakeIoctl, mode: str = "required", ttl: int = 30, loop_wait: int = 10,
               margin: int = 5) -> Watchdog:
    wd = Watchdog(WatchdogSettings(mode=mode, device=str(device), safety_margin=margin),
                  lambda s: LinuxWatchdog(s.device, ioctl=ioctl))
    wd.set_timing(ttl, loop_wait)
    return wd


def test_arm_keepalive_disarm(device: Path) -> None:
    ioctl = FakeIoctl()
    wd = controller(device, ioctl)
    assert wd.usable() and not wd.armed
    assert wd.arm() is True and wd.armed
    assert ioctl.timeout == 25
    wd.keepalive()
    wd.keepalive()
    wd.disarm()
    assert not wd.armed
    assert [c[0] for c in ioctl.calls] == ["GETSUPPORT", "SETTIMEOUT", "GETTIMEOUT", "KEEPALIVE",
                                           "KEEPALIVE", "KEEPALIVE"]
    assert device.read_bytes() == b"V"
    wd.keepalive()  # disarmed: nothing happens
    wd.disarm()
    assert len(ioctl.calls) == 6


def test_arm_twice_only_keeps_alive(device: Path) -> None:
    ioctl = FakeIoctl()
    wd = controller(device, ioctl)
    wd.arm()
    wd.arm()
    assert [c[0] for c in ioctl.calls].count("GETSUPPORT") == 1
    assert ioctl.calls[-1][0] == "KEEPALIVE"


def test_ttl_change_resets_the_timeout_at_the_next_keepalive(device: Path) -> None:
    ioctl = FakeIoctl()
    wd = controller(device, ioctl)
    wd.arm()
    wd.set_timing(20, 5)
    wd.keepalive()
    assert ioctl.timeout == 15
    assert ioctl.calls[-3:] == [("SETTIMEOUT", 15), ("GETTIMEOUT", 15), ("KEEPALIVE", 0)]


def test_safety_margin_minus_one_is_half_the_ttl(device: Path) -> None:
    ioctl = FakeIoctl()
    wd = controller(device, ioctl, margin=-1)
    assert wd.arm()
    assert ioctl.timeout == 15


def test_required_refuses_when_the_device_keeps_a_longer_timeout(device: Path) -> None:
    ioctl = FakeIoctl(options=WDIOF_MAGICCLOSE)  # fixed 60 s > 25 s
    wd = controller(device, ioctl)
    assert wd.arm() is False and not wd.armed
    assert device.read_bytes() == b"V"  # opened (which starts it), so stopped again


def test_required_missing_device_is_unusable_and_refuses(tmp_path: Path) -> None:
    wd = controller(tmp_path / "missing", FakeIoctl())
    assert wd.usable() is False
    assert wd.arm() is False


def test_automatic_missing_device_warns_and_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wd = controller(tmp_path / "missing", FakeIoctl(), mode="automatic")
    assert wd.usable() is True
    assert wd.arm() is True and not wd.armed
    wd.arm()
    warnings = [r.getMessage() for r in caplog.records if "watchdog could not be activated" in r.getMessage()]
    assert len(warnings) == 1 and "going on without it (watchdog mode is automatic)" in warnings[0]


def test_required_with_loop_wait_not_below_timeout_refuses(device: Path) -> None:
    wd = controller(device, FakeIoctl(), ttl=10, loop_wait=5)  # timeout 5 s == loop_wait
    assert wd.usable() is False
    assert wd.arm() is False
    assert device.read_bytes() == b""  # never opened


def test_mode_off_never_touches_the_device(device: Path) -> None:
    ioctl = FakeIoctl()
    wd = controller(device, ioctl, mode="off")
    assert wd.arm() is True and not wd.armed
    wd.keepalive()
    wd.disarm()
    assert ioctl.calls == []


def test_failing_keepalive_drops_the_device_without_magic_close(device: Path) -> None:
    ioctl = FakeIoctl()
    wd = controller(device, ioctl)
    wd.arm()

    def broken(fd: int, request: int, arg: Any, mutate: bool = True) -> Any:
        raise OSError(5, "Input/output error")
    assert wd._device is not None
    wd._device._ioctl = broken  # type: ignore[attr-defined]
    wd.keepalive()
    assert not wd.armed
    assert device.read_bytes() == b""


def test_executor_arms_before_promote_and_keeps_alive_after_refresh(device: Path) -> None:
    from pg_ha.core.model import Cluster, Leader
    from pg_ha.node.executor import Executor

    from tests.fakes import FakeDCS

    events: list[str] = []

    class Pg:
        def is_running(self) -> bool:
            return True

        def promote(self) -> bool:
            events.append("promote")
            return True

    class Dev(LinuxWatchdog):
        def open(self) -> None:
            events.append("arm")
            super().open()

        def keepalive(self) -> None:
            events.append("keepalive")
            super().keepalive()

    dcs = FakeDCS("pg0")
    executor = Executor(make_config("pg0"), dcs, Pg())  # type: ignore[arg-type]
    executor.watchdog = Watchdog(WatchdogSettings(mode="required", device=str(device)),
                                 lambda s: Dev(s.device, ioctl=FakeIoctl()))
    executor.watchdog.set_timing(30, 10)
    executor.lease.renewed(time.monotonic(), 30)  # as after taking or refreshing the leader key
    assert executor.promote(Cluster()) is True
    executor.join(5)  # pre_promote and pg_ctl promote run in the background
    assert events == ["arm", "keepalive", "promote"]
    assert dcs.attempt_to_acquire_leader()
    leader = dcs.get_cluster().leader
    assert isinstance(leader, Leader)
    events.clear()
    assert executor.refresh_lock(Cluster(leader=leader), 0)
    assert events == ["keepalive"]


def test_executor_required_unarmable_does_not_promote(tmp_path: Path) -> None:
    from pg_ha.node.executor import Executor

    from tests.fakes import FakeDCS

    class Pg:
        def is_running(self) -> bool:
            return True

        def promote(self) -> bool:
            raise AssertionError("must not promote")

    dcs = FakeDCS("pg0")
    assert dcs.attempt_to_acquire_leader()
    executor = Executor(make_config("pg0"), dcs, Pg())  # type: ignore[arg-type]
    executor.watchdog = controller(tmp_path / "missing", FakeIoctl())
    assert executor.promote(dcs.get_cluster()) is None
    assert dcs.get_cluster().leader is None  # the lock was given back


# -- the loop's step after each cycle ------------------------------------------------------------

D = Decision


@pytest.mark.parametrize(("applied", "paused", "running", "in_recovery", "step"), [
    (D(Action.UPDATE_LOCK, "no action. I am (pg0), the leader with the lock"), False, True, False, Step.ARM),
    (D(Action.UPDATE_LOCK, "updated leader lock during starting"), False, False, True, Step.ARM),
    (D(Action.PROMOTE, "promoted self", refresh_lock=True), False, True, True, Step.ARM),
    (D(Action.ACQUIRE, "promoted self to leader by acquiring session lock"), False, True, True, Step.ARM),
    (D(Action.START_PRIMARY, "starting primary after failure", refresh_lock=True), False, False, True, Step.ARM),
    (D(Action.CLEAR_FAILOVER, "manual failover: ...", refresh_lock=True), False, True, False, Step.ARM),
    (D(Action.UPDATE_LOCK, "PAUSE: no action"), True, True, False, Step.DISARM),
    (D(Action.NOOP, "PAUSE: continue to run as primary without lock"), True, True, False, Step.DISARM),
    (D(Action.DEMOTE, "demoting self because I do not have the lock"), False, True, False, Step.DISARM),
    (D(Action.DEMOTE, "failed to update leader lock: demoting self"), False, True, False, Step.DISARM),
    (D(Action.SWITCHOVER, "manual failover: demoting myself", refresh_lock=True), False, True, False,
     Step.DISARM),
    (D(Action.RELEASE_LOCK, "primary failed to start"), False, False, True, Step.DISARM),
    (D(Action.NOOP, "no action. I am (pg1), a secondary"), False, True, True, Step.DISARM),
    (D(Action.NOOP, "failed to acquire the leader lock: another member won"), False, True, True, Step.DISARM),
    (D(Action.START_REPLICA, "starting as a secondary"), False, False, True, Step.DISARM),
    # a primary whose lease refresh failed: no keepalive, no disarm: it runs down and fences
    (D(Action.NOOP, "failed to update leader lock: not acting on '...'"), False, True, False, Step.KEEP),
])
def test_after_cycle(applied: Decision, paused: bool, running: bool, in_recovery: bool, step: Step) -> None:
    assert after_cycle(applied, paused, running, in_recovery) == step


# -- the fencing process's timer -----------------------------------------------------------------

def test_fence_timer() -> None:
    timer = Timer(60, now=0)
    assert timer.deadline == 60
    timer.feed(b"Ctime", now=1)  # split write: the timeout arrives in two reads
    assert timer.deadline == 60
    timer.feed(b"out=25\n1", now=2)
    assert timer.timeout == 25 and timer.deadline == 27
    timer.feed(b"11", now=10)
    assert timer.deadline == 35 and not timer.magic
    timer.feed(b"Cunknown=3\n", now=10)  # a command it does not know changes nothing
    assert timer.timeout == 25 and timer.deadline == 35
    timer.feed(b"V", now=11)
    assert timer.magic and timer.deadline == 35
    timer.feed(b"1", now=12)
    assert not timer.magic and timer.deadline == 37


def test_testing_driver_with_a_device_writes_patronis_protocol_to_it(tmp_path) -> None:
    """Patroni's `testing` driver: ioctls become writes to `device` (its features read a FIFO)."""
    import threading

    from pg_ha.watchdog.testing import DeviceFileWatchdog
    fifo = str(tmp_path / "watchdog.fifo")
    os.mkfifo(fifo)
    device = make_device(WatchdogSettings(mode="required", driver="testing", device=fifo), str(tmp_path))
    assert isinstance(device, DeviceFileWatchdog) and device.usable() is None
    with pytest.raises(WatchdogError, match="nobody reads the named pipe"):
        device.open()  # no reader: an error, not a blocked loop
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:
            received.append(fh.read())

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 10
    while not device.is_open:
        try:
            device.open()
        except WatchdogError:
            assert time.monotonic() < deadline, "the reader never opened the FIFO"
            time.sleep(0.01)
    assert device.set_timeout(15) == 15
    device.keepalive()
    device.keepalive()
    device.close(magic=True)
    reader.join(10)
    assert received == [b"Ctimeout=15\n11V"]
    assert not device.fired()
    missing = make_device(WatchdogSettings(driver="testing", device=str(tmp_path / "none")), str(tmp_path))
    assert missing.usable() == f"{tmp_path / 'none'} does not exist"


def test_testing_driver_without_a_device_is_the_fencing_process(tmp_path) -> None:
    from pg_ha.watchdog.testing import TestingWatchdog
    assert isinstance(make_device(WatchdogSettings(driver="testing"), str(tmp_path)), TestingWatchdog)


def test_default_executor_watchdog_is_off() -> None:
    from pg_ha.node.executor import Executor

    from tests.fakes import FakeDCS
    executor = Executor(make_config("pg0"), FakeDCS("pg0"), object())  # type: ignore[arg-type]
    assert executor.watchdog.settings.mode == "off"
    assert executor.watchdog.arm() is True and not executor.watchdog.armed
