"""VIP: config schema, the lease rule, the ip command sequence (fake runner), the ARP frame,
and its hooks in the executor (released before a primary stops) and the HA loop."""
from __future__ import annotations

import logging
import socket
import struct
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pg_ha.config.load import ConfigError, build_config
from pg_ha.core.ha import Action, Decision
from pg_ha.node import lease_effects as lease_duties
from pg_ha.node.daemon import Daemon
from pg_ha.node.executor import Executor
from pg_ha.vip import VipManager, VipSettings, arp_frame, holds_lease, parse_vip

from tests.fakes import FakeDCS, make_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seeds_demo_postgres0.yml"
VIP = VipSettings("10.0.0.10/24", "eth0")


def demo(vip: Any) -> dict[str, Any]:
    text = FIXTURE.read_text().replace("@API_PORT@", "8008").replace("@PG_PORT@", "5432") \
        .replace("@ETCD@", "127.0.0.1:2379").replace("@DIR@", "/tmp/demo")
    raw = yaml.safe_load(text)
    raw["vip"] = vip
    return raw


# -- config ------------------------------------------------------------------------
def test_vip_section_is_parsed_and_normalised() -> None:
    config, warnings = build_config(demo({"address": "10.0.0.10/24", "interface": "eth0"}), environ={})
    assert config.vip == VipSettings("10.0.0.10/24", "eth0")
    assert not any("vip" in w for w in warnings)
    assert parse_vip({"address": "192.0.2.5", "interface": "ens3"}) == VipSettings("192.0.2.5/32", "ens3")
    assert parse_vip({"address": "2001:db8::5/64", "interface": "eth1"}).is_ipv4 is False


@pytest.mark.parametrize("vip", [None, {}])
def test_no_vip_section_means_no_vip(vip: Any) -> None:
    config, _ = build_config(demo(vip), environ={})
    assert config.vip is None


@pytest.mark.parametrize("vip, message", [
    ("10.0.0.10/24", "vip: expected a mapping with address and interface, got str"),
    ({"interface": "eth0"}, "vip.address: expected an IP address"),
    ({"address": 10, "interface": "eth0"}, "vip.address: expected an IP address"),
    ({"address": "10.0.0.300/24", "interface": "eth0"}, "vip.address: not an IP address with prefix length"),
    ({"address": "10.0.0.10/33", "interface": "eth0"}, "vip.address: not an IP address with prefix length"),
    ({"address": "127.0.0.1/8", "interface": "eth0"}, "vip.address: 127.0.0.1 cannot be a virtual IP"),
    ({"address": "0.0.0.0/0", "interface": "eth0"}, "vip.address: 0.0.0.0 cannot be a virtual IP"),
    ({"address": "10.0.0.10/24"}, "vip.interface: expected a network interface name"),
    ({"address": "10.0.0.10/24", "interface": "eth0 up"}, "vip.interface: invalid interface name"),
    ({"address": "10.0.0.10/24", "interface": "averyveryverylongname"}, "vip.interface: invalid interface"),
])
def test_bad_vip_is_one_clear_config_error(vip: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(demo(vip), environ={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_vip_key_warns() -> None:
    _, warnings = build_config(demo({"address": "10.0.0.10/24", "interface": "eth0", "lable": "x"}),
                               environ={})
    assert "unknown configuration key vip.lable (ignored)" in warnings


# -- the lease rule -------------------------------------------------------------------
@pytest.mark.parametrize("action, busy, held", [
    (Action.UPDATE_LOCK, False, True),       # leader refreshed its lease
    (Action.PROMOTE, False, True),           # promoted while holding the lock
    (Action.ACQUIRE, False, True),           # won the race
    (Action.START_PRIMARY, False, True),     # lock refreshed (the start itself makes us busy)
    (Action.CLEAR_FAILOVER, False, True),    # lock refreshed, staying leader
    (Action.UPDATE_LOCK, True, False),       # "updated leader lock during restarting": PostgreSQL may be down
    (Action.NOOP, False, False),             # replica, or the replacement of a failed refresh/race
    (Action.DEMOTE, False, False),
    (Action.SWITCHOVER, False, False),
    (Action.RELEASE_LOCK, False, False),
    (Action.FOLLOW, False, False),
    (Action.REJOIN, False, False),
])
def test_holds_lease(action: Action, busy: bool, held: bool) -> None:
    assert holds_lease(action.value, busy) is held


# -- the ip command sequence ----------------------------------------------------------
class FakeIp:
    """`ip` on one interface: the addresses it holds; records every command."""

    def __init__(self, addresses: list[str] | None = None, fail: set[str] | None = None) -> None:
        self.addresses = list(addresses or [])
        self.fail = fail or set()
        self.commands: list[str] = []

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        cmd = " ".join(argv)
        self.commands.append(cmd)
        verb = argv[2] if argv[1] == "addr" else argv[3]
        if verb in self.fail:
            return 2, f"RTNETLINK answers: Operation not permitted ({verb})"
        if argv[:3] == ["ip", "-o", "addr"]:
            return 0, "\n".join(f"2: eth0    inet {a} brd 10.0.0.255 scope global eth0\\       valid_lft forever"
                                if ":" not in a else f"2: eth0    inet6 {a} scope global \\       valid_lft forever"
                                for a in ["10.0.0.5/24", *self.addresses])
        if argv[2] == "add":
            self.addresses.append(argv[3])
        elif argv[2] == "del":
            self.addresses.remove(argv[3])
        return 0, ""


def manager(ip: FakeIp, settings: VipSettings = VIP, arp_result: str | None = None
            ) -> tuple[VipManager, list[tuple[str, str]]]:
    announced: list[tuple[str, str]] = []

    def announce(interface: str, addr: str) -> str | None:
        announced.append((interface, addr))
        return arp_result
    return VipManager(settings, runner=ip, announce=announce), announced


LIST = "ip -o addr show dev eth0"


def test_acquire_adds_then_announces(caplog: pytest.LogCaptureFixture) -> None:
    ip = FakeIp()
    vip, announced = manager(ip)
    with caplog.at_level(logging.INFO, logger="pg_ha"):
        assert vip.acquire() is True
    assert ip.commands == [LIST, "ip addr add 10.0.0.10/24 dev eth0"]
    assert announced == [("eth0", "10.0.0.10")]
    assert "VIP 10.0.0.10/24 added on eth0: I hold the leader lock" in caplog.text


def test_acquire_when_present_does_nothing() -> None:
    ip = FakeIp(["10.0.0.10/24"])
    vip, announced = manager(ip)
    assert vip.acquire() is True
    assert ip.commands == [LIST]
    assert announced == []


def test_acquire_re_adds_an_address_someone_removed(caplog: pytest.LogCaptureFixture) -> None:
    ip = FakeIp()
    vip, announced = manager(ip)
    vip.acquire()
    ip.addresses.clear()  # `ip addr del` by an operator
    with caplog.at_level(logging.INFO, logger="pg_ha"):
        assert vip.acquire() is True
    assert ip.addresses == ["10.0.0.10/24"]
    assert len(announced) == 2
    assert "VIP 10.0.0.10/24 re-added (it had been removed) on eth0" in caplog.text


def test_failed_arp_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    ip = FakeIp()
    vip, _ = manager(ip, arp_result="raw socket: [Errno 1] Operation not permitted")
    with caplog.at_level(logging.INFO, logger="pg_ha"):
        assert vip.acquire() is True
    assert ip.addresses == ["10.0.0.10/24"]
    assert "gratuitous ARP not sent (raw socket: [Errno 1] Operation not permitted)" in caplog.text


def test_no_arp_for_ipv6() -> None:
    ip = FakeIp()
    vip, announced = manager(ip, VipSettings("2001:db8::10/64", "eth0"))
    assert vip.acquire() is True
    assert ip.commands[-1] == "ip addr add 2001:db8::10/64 dev eth0"
    assert announced == []


def test_failed_add_is_reported_once_and_not_announced(caplog: pytest.LogCaptureFixture) -> None:
    ip = FakeIp(fail={"add"})
    vip, announced = manager(ip)
    with caplog.at_level(logging.INFO, logger="pg_ha"):
        assert vip.acquire() is False
        assert vip.acquire() is False
    assert announced == []
    assert caplog.text.count("VIP: failed to add 10.0.0.10/24 on eth0: RTNETLINK answers") == 1


def test_release_removes_what_is_configured_even_with_another_prefix(caplog: pytest.LogCaptureFixture) -> None:
    ip = FakeIp(["10.0.0.10/32"])
    vip, _ = manager(ip)
    with caplog.at_level(logging.INFO, logger="pg_ha"):
        assert vip.release("demoting") is True
    assert ip.commands == [LIST, "ip addr del 10.0.0.10/32 dev eth0"]
    assert ip.addresses == []
    assert "VIP 10.0.0.10/24 removed from eth0: demoting" in caplog.text


def test_release_when_absent_only_looks() -> None:
    ip = FakeIp()
    vip, _ = manager(ip)
    assert vip.release("startup") is True
    assert ip.commands == [LIST]


def test_release_failure_and_listing_failure_return_false() -> None:
    vip, _ = manager(FakeIp(["10.0.0.10/24"], fail={"del"}))
    assert vip.release("x") is False
    vip, _ = manager(FakeIp(fail={"show"}))
    assert vip.release("x") is False
    assert vip.acquire() is False


def test_prefix_of_another_address_does_not_match() -> None:
    ip = FakeIp(["10.0.0.100/24"])
    vip, _ = manager(ip)
    assert vip.acquire() is True
    assert ip.commands[-1] == "ip addr add 10.0.0.10/24 dev eth0"


# -- gratuitous ARP frame --------------------------------------------------------------
def test_arp_frame_layout() -> None:
    mac = bytes.fromhex("02fc00000001")
    frame = arp_frame(mac, "10.0.0.10", 1)
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac
    assert struct.unpack("!H", frame[12:14])[0] == 0x0806
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert frame[22:28] == mac
    assert frame[28:32] == frame[38:42] == socket.inet_aton("10.0.0.10")  # sender IP == target IP
    assert struct.unpack("!H", arp_frame(mac, "10.0.0.10", 2)[20:22])[0] == 2


# -- executor: released before a primary stops --------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []


class FakePg:
    def __init__(self, rec: Recorder, running: bool = True, in_recovery: bool = False) -> None:
        self.rec = rec
        self.running = running
        self.in_recovery = in_recovery

    def update_settings(self, settings: Any) -> str:
        return "unchanged"

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool:
        self.rec.calls.append(f"stop:{mode}")
        self.running = False
        return True

    def state(self) -> Any:
        return SimpleNamespace(running=self.running, in_recovery=self.in_recovery, wal_lsn=0, timeline=1,
                               server_version=150004)

    def start(self, role: str, *args: Any) -> bool:
        self.rec.calls.append(f"start:{role}")
        self.running = True
        return True

    def is_running(self) -> bool:
        return self.running

    def local_timeline_lsn(self) -> tuple[int, int]:
        return 1, 1234

    def data_dir_empty(self) -> bool:
        return True


class FakeVip:
    settings = VIP

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def acquire(self) -> bool:
        self.rec.calls.append("vip:acquire")
        return True

    def release(self, reason: str) -> bool:
        self.rec.calls.append("vip:release")
        return True


class RecordingDCS(FakeDCS):
    rec: Recorder

    def delete_leader(self, leader: Any = None, last_lsn: int | None = None) -> bool:
        self.rec.calls.append("delete_leader")
        return super().delete_leader(leader, last_lsn)


def setup(leader: str | None = "pg0") -> tuple[Executor, RecordingDCS, Recorder]:
    rec = Recorder()
    dcs = RecordingDCS(name="pg0")
    dcs.rec = rec
    if leader:
        dcs.set_leader(leader)
    config = replace(make_config("pg0"), vip=VIP)
    ex = Executor(config, dcs, FakePg(rec))  # type: ignore[arg-type]
    ex.vip = FakeVip(rec)  # type: ignore[assignment]
    return ex, dcs, rec


def test_executor_builds_a_manager_from_the_config() -> None:
    ex = Executor(replace(make_config("pg0"), vip=VIP), FakeDCS(), FakePg(Recorder()))  # type: ignore[arg-type]
    assert isinstance(ex.vip, VipManager) and ex.vip.settings == VIP
    assert Executor(make_config("pg0"), FakeDCS(), FakePg(Recorder())).vip.settings is None  # type: ignore[arg-type]


@pytest.mark.parametrize("decision, expected", [
    (Decision(Action.SWITCHOVER, "manual failover: demoting myself", target="pg1"),
     ["vip:release", "stop:fast", "delete_leader"]),
    (Decision(Action.DEMOTE, "demoting self because I do not have the lock and I was a leader"),
     ["vip:release", "stop:immediate"]),
    (Decision(Action.RELEASE_LOCK, "removed leader key after trying and failing to start postgres"),
     ["vip:release", "delete_leader"]),
])
def test_vip_leaves_before_postgres_stops_and_the_lock_goes(decision: Decision, expected: list[str]) -> None:
    ex, dcs, rec = setup()
    ex.execute(decision, dcs.get_cluster(), 0)
    assert rec.calls == expected


def test_failed_lock_refresh_demotes_after_releasing_the_vip() -> None:
    ex, dcs, rec = setup(leader="pg1")  # someone else took the lease
    lost = Decision(Action.UPDATE_LOCK, "no action. I am (pg0), the leader with the lock",
                    on_failure=Decision(Action.DEMOTE, "failed to update leader lock: demoting self (pg0)"))
    stale = dcs.get_cluster().__class__(leader=None)
    applied = ex.execute(lost, stale, 0)
    assert applied.action == Action.DEMOTE
    assert rec.calls == ["vip:release", "stop:immediate"]


# -- HA loop: the VIP follows the lease every cycle ----------------------------------------
def daemon(running: bool = True, in_recovery: bool = False) -> tuple[Daemon, Recorder]:
    rec = Recorder()
    config = replace(make_config("pg0"), vip=VIP)
    d = Daemon(config, FakeDCS(name="pg0"), FakePg(rec, running, in_recovery))
    d.executor.vip = FakeVip(rec)  # type: ignore[assignment]
    return d, rec


@pytest.mark.parametrize("action, busy, running, in_recovery, expected", [
    (Action.UPDATE_LOCK, None, True, False, "vip:acquire"),   # leader: present (re-added if gone)
    (Action.PROMOTE, None, True, False, "vip:acquire"),       # just promoted
    (Action.ACQUIRE, None, True, True, "vip:release"),        # lock taken, promotion postponed (sync)
    (Action.PROMOTE, None, True, True, "vip:release"),        # promotion vetoed/failed
    (Action.UPDATE_LOCK, "restarting", True, False, "vip:release"),
    (Action.UPDATE_LOCK, None, False, True, "vip:release"),
    (Action.NOOP, None, True, True, "vip:release"),           # a replica (also at startup)
    (Action.NOOP, None, True, False, "vip:release"),          # PAUSE: primary without the lock
])
def test_loop_keeps_the_vip_with_the_lease(action: Action, busy: str | None, running: bool,
                                           in_recovery: bool, expected: str) -> None:
    d, rec = daemon(running, in_recovery)
    if busy:
        assert d.executor.try_begin(busy)
    d._manage_vip(Decision(action, "x"))
    assert rec.calls == [expected]


def test_shutdown_releases_the_vip_before_stopping_postgres() -> None:
    d, rec = daemon()
    d.shutdown()
    assert rec.calls[:2] == ["vip:release", "stop:fast"]


def test_dcs_outage_releases_the_vip_before_demoting() -> None:
    d, rec = daemon(running=True, in_recovery=False)
    d.dcs.fail_with = "connection refused"  # type: ignore[attr-defined]
    d.cycle()
    assert rec.calls[:2] == ["vip:release", "stop:immediate"]


@pytest.mark.parametrize("consented, expected", [
    (True, ["watchdog:keepalive"]),   # every member consented (failsafe_mode): still the leader
    (False, ["vip:release"]),         # the lease is unknown: the address goes at once
])
def test_dcs_outage_keeps_the_vip_only_with_consent(consented: bool, expected: list[str]) -> None:
    rec = Recorder()
    watchdog = SimpleNamespace(keepalive=lambda: rec.calls.append("watchdog:keepalive"))
    lease_duties.during_outage(watchdog, FakeVip(rec), consented)  # type: ignore[arg-type]
    assert rec.calls == expected


def test_changed_vip_config_releases_the_old_address_and_manages_the_new_one() -> None:
    d, rec = daemon()
    new = VipSettings("10.0.0.11/24", "eth1")
    d._set_config(replace(d.config, vip=new))
    assert rec.calls == ["vip:release"]
    assert isinstance(d.executor.vip, VipManager) and d.executor.vip.settings == new
    d._set_config(replace(d.config, vip=None))
    assert d.executor.vip.settings is None
