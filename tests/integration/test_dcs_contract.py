"""The DCS contract, once per backend (etcd3 = v3 gateway, etcd = v2 via python-etcd, zookeeper
= kazoo), against a real etcd / ZooKeeper. Every test has its own scope; waits have deadlines,
never fixed sleeps."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pg_ha.dcs.base import AbstractDCS, DCSError

from tests.harness.common import free_port, wait_for
from tests.harness.etcd import EtcdServer, b64, enable_auth, keys, put, v2_keys, v3_keys, v3_lease_ttl, v3_post
from tests.harness.zookeeper import ZooKeeperServer, zk_put, znodes

pytestmark = pytest.mark.integration
NS = "/service"
Make = Callable[..., AbstractDCS]
Server = EtcdServer | ZooKeeperServer


@pytest.fixture(params=["etcd3", "etcd", "zookeeper"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(kind: str, request: pytest.FixtureRequest) -> Server:
    """The session's etcd, or its ZooKeeper, as the backend needs."""
    return request.getfixturevalue("zk_server" if kind == "zookeeper" else "etcd_server")  # type: ignore[no-any-return]


@pytest.fixture
def own_server(kind: str, request: pytest.FixtureRequest) -> Server:
    """A private etcd / ZooKeeper for tests that pause, stop or reconfigure it."""
    return request.getfixturevalue("own_zk" if kind == "zookeeper" else "own_etcd")  # type: ignore[no-any-return]


def raw_keys(server: Server, kind: str, prefix: str) -> dict[str, str]:
    """key -> value under `prefix` as an operator sees it (etcdctl, zkCli)."""
    if isinstance(server, ZooKeeperServer):
        return {path: value for path, (value, _) in znodes(server, prefix).items()}
    return keys(server, kind, prefix)


def raw_put(server: Server, kind: str, key: str, value: str) -> None:
    if isinstance(server, ZooKeeperServer):
        zk_put(server, key, value)
    else:
        put(server, kind, key, value)


@pytest.fixture
def scope(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "-", request.node.name)[:40] + "-" + uuid.uuid4().hex[:6]


@pytest.fixture
def make(kind: str, scope: str, server: Server) -> Iterator[Make]:
    created: list[AbstractDCS] = []
    default = server

    def factory(name: str = "a", ttl: int = 10, retry_timeout: float = 3, server: Server | None = None,
                scope_: str | None = None, namespace: str = NS, hosts: list[str] | None = None,
                **kwargs: Any) -> AbstractDCS:
        if kind == "etcd3":
            from pg_ha.dcs.etcd3 import Etcd3 as cls
        elif kind == "etcd":
            from pg_ha.dcs.etcd import Etcd as cls  # type: ignore[assignment]
        else:
            from pg_ha.dcs.zookeeper import ZooKeeper as cls  # type: ignore[assignment]
        hosts = hosts or [(server or default).host_port]
        dcs = cls(namespace, scope_ or scope, name, ttl, retry_timeout, hosts, **kwargs)
        created.append(dcs)
        return dcs

    yield factory
    for dcs in created:
        try:
            dcs.close()
        except Exception:  # noqa: BLE001 - best effort (the server may be gone)
            pass


def in_background(func: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=func, daemon=True)
    thread.start()
    return thread


def test_key_layout(kind: str, scope: str, make: Make, server: Server) -> None:
    a = make("a")
    assert a.initialize(True, "7123456789")
    assert a.set_config_value(json.dumps({"ttl": 10, "loop_wait": 10}))
    assert a.touch_member({"conn_url": "postgres://a:5432/postgres", "api_url": "http://a:8008/patroni",
                           "state": "running", "role": "primary", "xlog_location": 100, "timeline": 1})
    assert a.attempt_to_acquire_leader()
    leader = a.get_cluster().leader
    assert leader is not None and leader.name == "a"
    assert a.update_leader(leader, 123)
    assert a.set_history_value("[[1,25165984,\"no recovery target specified\"]]")
    assert a.set_sync_state_value(json.dumps({"leader": "a", "sync_standby": "b"}))
    assert a.manual_failover("a", "b")
    assert a.write_status({"optime": 150, "slots": {"b": 140}})
    assert a.write_failsafe({"a": "http://a:8008/patroni"})
    base = f"{NS}/{scope}/"
    raw = raw_keys(server, kind, base)
    assert set(raw) == {base + k for k in ("config", "initialize", "leader", "members/a", "optime/leader",
                                          "history", "sync", "failover", "status", "failsafe")}
    assert raw[base + "leader"] == "a"
    assert raw[base + "initialize"] == "7123456789"
    assert raw[base + "optime/leader"] == "150"
    assert json.loads(raw[base + "members/a"])["conn_url"] == "postgres://a:5432/postgres"
    assert json.loads(raw[base + "failover"]) == {"leader": "a", "member": "b"}
    assert json.loads(raw[base + "status"]) == {"optime": 150, "slots": {"b": 140}}
    session_keys = {base + "leader", base + "members/a"}
    if isinstance(server, ZooKeeperServer):  # leader and member: ephemerals of one session of ttl
        owners = {k: stat.ephemeralOwner for k, (_, stat) in znodes(server, base).items()}
        assert owners[base + "leader"] == owners[base + "members/a"] != 0
        assert all(owners[k] == 0 for k in owners if k not in session_keys)
        assert server.sessions()[owners[base + "leader"]] == 10000
    elif kind == "etcd3":  # leader and member ride on one lease, nothing else does
        table = v3_keys(server, base)
        leases = {k: v["lease"] for k, v in table.items()}
        assert leases[base + "leader"] == leases[base + "members/a"] != 0
        assert all(leases[k] == 0 for k in leases if k not in session_keys)
        assert v3_lease_ttl(server, leases[base + "leader"])[0] == 10
    else:  # the ttl sits on the keys themselves
        table = v2_keys(server, base)
        assert all(0 < table[k]["ttl"] <= 10 for k in session_keys)
        assert all(table[k]["ttl"] is None for k in table if k not in session_keys)
    cluster = a.get_cluster()
    assert cluster.initialize == "7123456789" and cluster.last_lsn == 150
    assert cluster.config is not None and cluster.config.data["loop_wait"] == 10
    assert [m.name for m in cluster.members] == ["a"] and cluster.members[0].lsn == 100
    assert cluster.sync is not None and cluster.sync.sync_standby == ("b",)
    assert cluster.history is not None and cluster.history.lines[0][0] == 1
    assert cluster.failover is not None and (cluster.failover.leader, cluster.failover.candidate) == ("a", "b")
    assert cluster.status == {"optime": 150, "slots": {"b": 140}}
    assert cluster.failsafe == {"a": "http://a:8008/patroni"}
    assert a.delete_cluster()
    assert raw_keys(server, kind, base) == {}
    assert a.get_cluster().members == ()


def test_initialize_race(make: Make) -> None:
    a, b = make("a"), make("b")
    barrier = threading.Barrier(2)
    results: dict[str, bool] = {}

    def race(dcs: AbstractDCS) -> None:
        barrier.wait()
        results[dcs.name] = dcs.initialize(True, dcs.name)
    threads = [in_background(lambda d=d: race(d)) for d in (a, b)]  # type: ignore[misc]
    for t in threads:
        t.join(10)
    assert sorted(results.values()) == [False, True]
    winner = next(name for name, ok in results.items() if ok)
    assert a.get_cluster().initialize == winner
    assert not b.initialize(True, "other")
    assert a.initialize(False, "6999")  # write the system identifier
    assert b.get_cluster().initialize == "6999"
    assert a.cancel_initialization()
    assert b.get_cluster().initialize is None
    assert b.initialize(True, "b")


def test_leader_acquire_refresh_cas(make: Make) -> None:
    a, b = make("a"), make("b")
    assert a.get_cluster().is_unlocked
    assert a.attempt_to_acquire_leader()
    assert not b.attempt_to_acquire_leader()
    assert not a.attempt_to_acquire_leader()  # already exists, even for the owner
    leader = b.get_cluster().leader
    assert leader is not None and leader.name == "a"
    assert not b.update_leader(leader, 10)  # not ours
    assert a.update_leader(leader, 20)
    assert a.update_leader(leader, None)
    cluster = b.get_cluster()
    assert cluster.leader is not None and cluster.leader.name == "a" and cluster.last_lsn == 20
    assert not b.delete_leader(cluster.leader)  # only the owner deletes
    assert b.get_cluster().leader is not None
    assert a.delete_leader(cluster.leader, 30)
    cluster = b.get_cluster()
    assert cluster.leader is None and cluster.last_lsn == 30
    assert not a.delete_leader(None)  # nothing left to delete
    assert not a.update_leader(leader, None)  # lost the lock
    assert b.attempt_to_acquire_leader()
    assert not a.update_leader(leader, None)


# A process holding the lock through the ZooKeeper backend until it is killed
HOLDER = """
import sys, time
from pg_ha.dcs.zookeeper import ZooKeeper
dcs = ZooKeeper(sys.argv[2], sys.argv[3], "a", int(sys.argv[4]), 3, [sys.argv[1]])
assert dcs.touch_member({"state": "running"}) and dcs.attempt_to_acquire_leader()
print("ready", flush=True)
time.sleep(600)
"""


def hold_until_killed(server: Server, scope: str, ttl: int, b: AbstractDCS) -> float:
    """ZooKeeper: the session is the lease. It lasts, without refreshes, as long as its
    process lives; kill -9 it and return when. The leader key must go ttl after that."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, server.host_port, NS, scope, str(ttl)],
                              stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        started = time.monotonic()
        while time.monotonic() - started < 2 * ttl:
            cluster = b.get_cluster()
            assert cluster.leader is not None and cluster.leader.name == "a"
            b.watch(0.5)
        os.kill(holder.pid, signal.SIGKILL)
        return time.monotonic()
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)


def test_leader_and_member_expire_with_session(kind: str, scope: str, server: Server, make: Make) -> None:
    ttl = 3
    a, b = make("a", ttl=ttl), make("b", ttl=ttl)
    if kind == "zookeeper":
        refreshed = hold_until_killed(server, scope, ttl, b)
    else:
        assert a.touch_member({"state": "running"}) and a.attempt_to_acquire_leader()
        acquired = time.monotonic()
        # refreshed, the lock outlives several ttls
        while time.monotonic() - acquired < 2 * ttl:
            cluster = b.get_cluster()
            assert cluster.leader is not None and cluster.leader.name == "a"
            assert a.update_leader(cluster.leader, None) and a.touch_member({"state": "running"})
            b.watch(0.5)  # paces the loop (returns early only on leader/failover changes)
        refreshed = time.monotonic()
    wait_for(lambda: b.get_cluster().leader is None, ttl + 5, "the leader key to expire")
    assert time.monotonic() - refreshed >= ttl - 1.5  # not before its ttl
    wait_for(lambda: b.get_cluster().get_member("a") is None, 5, "the member key to expire")
    assert b.attempt_to_acquire_leader()
    leader = a.get_cluster().leader
    assert leader is not None and leader.name == "b"
    assert not a.update_leader(leader, None)


def test_close_releases_session(kind: str, make: Make) -> None:
    a, b = make("a"), make("b")
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    a.watch(0.01)  # starts the watcher thread
    a.close()
    cluster = b.get_cluster()
    assert cluster.leader is None and cluster.members == ()
    if kind == "zookeeper":  # no watcher thread: kazoo's session is what close() ends
        assert a._session is None  # type: ignore[attr-defined]
    else:
        assert a._watcher is None  # type: ignore[attr-defined]


def test_ttl_change_moves_session(kind: str, scope: str, make: Make, server: Server) -> None:
    a = make("a", ttl=10)
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    a.set_ttl(20)
    leader = a.get_cluster().leader
    assert leader is not None
    assert a.update_leader(leader, None) and a.touch_member({})
    base = f"{NS}/{scope}/"
    if isinstance(server, ZooKeeperServer):
        owners = {k: stat.ephemeralOwner for k, (_, stat) in znodes(server, base).items()}
        session = owners[base + "leader"]
        assert session == owners[base + "members/a"] == a.get_cluster().leader.session  # type: ignore[union-attr]
        assert server.sessions()[session] == 20000
        assert a.get_cluster().get_member("a") is not None
    elif kind == "etcd3":
        table = v3_keys(server, base)
        lease = table[base + "leader"]["lease"]
        assert lease == table[base + "members/a"]["lease"] == a.get_cluster().leader.session  # type: ignore[union-attr]
        assert v3_lease_ttl(server, lease)[0] == 20
    else:
        table = v2_keys(server, base)
        assert table[base + "leader"]["ttl"] > 10 and table[base + "members/a"]["ttl"] > 10


def test_config_cas(make: Make) -> None:
    a, b = make("a"), make("b")
    assert a.set_config_value('{"ttl": 30}', 0)  # 0 = create, only if absent
    assert not b.set_config_value('{"ttl": 31}', 0)
    config = b.get_cluster().config
    assert config is not None and config.data == {"ttl": 30}
    assert a.set_config_value('{"ttl": 32}', config.version)
    assert not b.set_config_value('{"ttl": 33}', config.version)  # stale version
    assert b.get_cluster().config.data == {"ttl": 32}  # type: ignore[union-attr]
    assert b.set_config_value('{"ttl": 34}')  # unconditional
    assert a.get_cluster().config.raw == '{"ttl": 34}'  # type: ignore[union-attr]


def test_failover_key(make: Make) -> None:
    a, b = make("a"), make("b")
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert a.manual_failover("a", "b", scheduled_at=when)
    failover = b.get_cluster().failover
    assert failover is not None and (failover.leader, failover.candidate) == ("a", "b")
    assert failover.scheduled_at == when
    assert not b.set_failover_value("", failover.version + 1000)  # stale: not deleted
    assert b.get_cluster().failover is not None
    assert not b.manual_failover(None, "c", version=failover.version + 1000)
    assert b.manual_failover(None, "c", version=failover.version)
    failover = a.get_cluster().failover
    assert failover is not None and (failover.leader, failover.candidate) == (None, "c")
    assert a.set_failover_value("", failover.version)
    assert a.get_cluster().failover is None
    assert a.set_failover_value("")  # deleting what is gone is fine without a version
    assert a.set_failover_value('{"leader": "a"}') and a.set_failover_value("")
    assert a.get_cluster().failover is None


def test_sync_history_status_roundtrip(make: Make) -> None:
    a = make("a")
    assert a.set_sync_state_value(json.dumps({"leader": "a", "sync_standby": "b,c"}), 0)
    sync = a.get_cluster().sync
    assert sync is not None and sync.leader == "a" and sync.sync_standby == ("b", "c")
    assert not a.set_sync_state_value(json.dumps({"leader": "a", "sync_standby": None}), sync.version + 1000)
    assert a.set_sync_state_value(json.dumps({"leader": "a", "sync_standby": None}), sync.version)
    sync = a.get_cluster().sync
    assert sync is not None and sync.sync_standby == ()
    assert not a.delete_sync_state(sync.version + 1000)
    assert a.delete_sync_state(sync.version)
    assert a.get_cluster().sync is None
    history = [[1, 25165984, "no recovery target specified", "2024-01-01T00:00:00+00:00", "pg0"],
               [2, 50331744, "no recovery target specified"]]
    assert a.set_history_value(json.dumps(history))
    assert a.get_cluster().history.lines == tuple(tuple(x) for x in history)  # type: ignore[union-attr]
    assert a.write_status({"optime": 67108864, "slots": {"pg1": 67108000}, "retain_slots": ["pg1"]})
    cluster = a.get_cluster()
    assert cluster.last_lsn == 67108864 and cluster.status is not None
    assert cluster.status["slots"] == {"pg1": 67108000}


def test_watch(make: Make) -> None:
    a, b = make("a"), make("b")
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    cluster = b.get_cluster()
    assert not b.watch(0.3)  # nothing changed since the snapshot (also starts the watcher)

    # refreshes by the owner and member updates do not wake the watcher
    stop = threading.Event()

    def busy_owner() -> None:
        while not stop.is_set():
            a.update_leader(cluster.leader, 5)  # type: ignore[arg-type]
            a.touch_member({"xlog_location": 5})
            stop.wait(0.1)
    thread = in_background(busy_owner)
    started = time.monotonic()
    assert not b.watch(1.5)
    assert time.monotonic() - started >= 1.4
    stop.set()
    thread.join(10)

    # the leader key deleted by its owner
    b.get_cluster()
    started = time.monotonic()
    deleter = in_background(lambda: a.delete_leader(cluster.leader))
    assert b.watch(10)
    assert time.monotonic() - started < 1.0
    deleter.join(10)
    assert not b.watch(0.2)  # consumed

    # the failover key written, then deleted, by another client
    b.get_cluster()
    started = time.monotonic()
    in_background(lambda: a.manual_failover(None, "b"))
    assert b.watch(10) and time.monotonic() - started < 1.0
    failover = b.get_cluster().failover
    assert failover is not None
    started = time.monotonic()
    in_background(lambda: a.set_failover_value("", failover.version))
    assert b.watch(10) and time.monotonic() - started < 1.0

    # a change that happened before watch() was called, after the last snapshot, counts
    b.get_cluster()
    assert a.attempt_to_acquire_leader()
    started = time.monotonic()
    assert b.watch(10) and time.monotonic() - started < 1.0

    # wakeup() from another thread
    b.get_cluster()
    started = time.monotonic()
    in_background(b.wakeup)
    assert b.watch(10) and time.monotonic() - started < 1.0


def test_dcs_error_when_etcd_paused(own_server: Server, make: Make) -> None:
    retry_timeout = 2.0
    a = make("a", server=own_server, retry_timeout=retry_timeout)
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    a.get_cluster()
    a.watch(0.01)
    own_server.pause()
    try:
        for call in (a.get_cluster, lambda: a.touch_member({}), a.attempt_to_acquire_leader,
                     lambda: a.set_config_value("{}", 1)):
            started = time.monotonic()
            with pytest.raises(DCSError):
                call()
            assert time.monotonic() - started < retry_timeout + 1.5
        started = time.monotonic()
        assert a.watch(0.5) is False  # never raises
        assert time.monotonic() - started < 1.5
    finally:
        own_server.resume()
    cluster = wait_for(a.get_cluster, 10, "etcd to answer again")
    assert cluster.leader is not None and cluster.leader.name == "a"


def test_dcs_error_when_stopped_and_reconnect(own_server: Server, make: Make) -> None:
    retry_timeout = 2.0
    a = make("a", server=own_server, retry_timeout=retry_timeout, ttl=30)
    b = make("b", server=own_server, retry_timeout=retry_timeout, ttl=30)
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    leader = b.get_cluster().leader
    assert not b.watch(0.2)  # watcher running
    own_server.stop()
    started = time.monotonic()
    with pytest.raises(DCSError):
        b.get_cluster()
    assert time.monotonic() - started < retry_timeout + 1.5
    with pytest.raises(DCSError):
        a.update_leader(leader, 1)  # type: ignore[arg-type]
    own_server.start()
    cluster = wait_for(b.get_cluster, 10, "etcd to answer after the restart")
    assert cluster.leader is not None and cluster.leader.name == "a"
    assert a.update_leader(cluster.leader, 2) and a.touch_member({})
    # the watcher reconnected by itself: the leader going away wakes b
    b.get_cluster()
    started = time.monotonic()
    assert a.delete_leader(cluster.leader)
    assert b.watch(15)
    assert time.monotonic() - started < 10


def test_garbage_values_parse(kind: str, scope: str, make: Make, server: Server) -> None:
    base = f"{NS}/{scope}/"
    garbage = {
        "config": "not json {", "initialize": "", "leader": "", "optime/leader": "abc",
        "history": '{"not": "a list"}', "sync": "[1, 2]", "failover": '{"scheduled_at": "yesterday"}',
        "status": '"just a string"', "failsafe": "42", "members/x": "[1,2", "members/y": "123",
        "members/z": '{"xlog_location": "lots", "tags": [1], "timeline": "one", "state": null}',
        "members/": "nameless", "members/deep/er": "{}", "unknown": "whatever",
    }
    if kind != "etcd3":
        del garbage["members/"]  # v2 would make `members` a file; not a znode path
    for key, value in garbage.items():
        raw_put(server, kind, base + key, value)
    if kind == "etcd3":  # bytes that are not UTF-8, deep nesting
        v3_post(server, "/v3/kv/put", {"key": b64(base + "members/w"), "value": b64(b"\xff\xfe{")})
    elif isinstance(server, ZooKeeperServer):
        zk_put(server, base + "members/w", b"\xff\xfe{")
    raw_put(server, kind, base + "members/v", "[" * 100000 + "]" * 100000)
    cluster = make("a").get_cluster()
    assert cluster.config is not None and cluster.config.data == {}
    assert cluster.initialize == "" and cluster.last_lsn == 0
    assert cluster.history is None and cluster.sync is None and cluster.failover is None
    assert cluster.status is None and cluster.failsafe is None
    assert cluster.leader is not None and cluster.leader.name == ""
    names = {m.name for m in cluster.members}
    assert {"x", "y", "z", "v"} <= names and not {"", "deep", "deep/er"} & names
    z = cluster.get_member("z")
    assert z is not None and z.lsn == 0 and z.tags == {} and z.timeline is None
    assert all(m.data == {} for m in cluster.members if m.name != "z")


def _settle(dcs: AbstractDCS, deadline_s: float = 10.0) -> None:
    """Read the cluster until no wake-up is pending: a backend may deliver the event of the
    client's own write (ZooKeeper's callback thread) after the read that already saw it."""
    deadline = time.monotonic() + deadline_s
    dcs.get_cluster()
    while dcs.watch(0.3):
        assert time.monotonic() < deadline, "the watch never went quiet"
        dcs.get_cluster()


def test_second_scope_invisible(kind: str, scope: str, make: Make) -> None:
    a = make("a")
    other = make("a", scope_=scope + "2")  # a prefix of it: /service/<scope>2/
    elsewhere = make("a", namespace="/other")  # same scope, other namespace
    for dcs in (other, elsewhere):
        assert dcs.initialize(True, "1") and dcs.touch_member({}) and dcs.attempt_to_acquire_leader()
        assert dcs.set_config_value("{}") and dcs.manual_failover(None, "x")
    cluster = a.get_cluster()
    assert cluster.initialize is None and cluster.leader is None and cluster.members == ()
    assert cluster.config is None and cluster.failover is None
    assert a.initialize(True, "2") and a.attempt_to_acquire_leader()  # no conflict with the others
    _settle(a)  # the wake-up for its own leader key may come after the read that saw it
    assert not a.watch(0.3)
    assert other.set_failover_value("") and other.delete_leader(None)
    assert not a.watch(0.5)  # their events are not ours
    assert a.delete_cluster()
    assert other.get_cluster().initialize == "1" and elsewhere.get_cluster().leader is not None


def test_multiple_hosts(make: Make, server: Server) -> None:
    dead = f"127.0.0.1:{free_port()}"
    a = make("a", hosts=[dead, server.host_port], retry_timeout=5)
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    started = time.monotonic()
    for _ in range(5):
        a.get_cluster()
    assert time.monotonic() - started < 2  # sticks to the host that answered
    with pytest.raises(DCSError):
        make("b", hosts=[dead], retry_timeout=1).get_cluster()


@pytest.mark.parametrize("kind", ["etcd3", "etcd"])
def test_tls_client_certificates(kind: str, scope: str, make: Make) -> None:
    with EtcdServer(name="tls", tls=True) as server:
        tls = {"protocol": "https", "cacert": server.cacert, "cert": server.client_cert[0],
               "key": server.client_cert[1]}
        a, b = make("a", server=server, **tls), make("b", server=server, **tls)
        assert a.touch_member({}) and a.attempt_to_acquire_leader()
        assert keys(server, kind, f"{NS}/{scope}/leader") == {f"{NS}/{scope}/leader": "a"}
        leader = b.get_cluster().leader
        assert leader is not None and leader.name == "a"
        started = time.monotonic()
        in_background(lambda: a.delete_leader(leader))
        assert b.watch(10) and time.monotonic() - started < 1.0
        without_cert = make("c", server=server, retry_timeout=1, protocol="https", cacert=server.cacert)
        with pytest.raises(DCSError):
            without_cert.get_cluster()
        for dcs in (a, b, without_cert):
            dcs.close()


@pytest.mark.parametrize("kind", ["etcd3", "etcd"])
def test_authentication(kind: str, own_etcd: EtcdServer, make: Make) -> None:
    enable_auth(own_etcd, kind, "s3cret")
    a = make("a", server=own_etcd, username="root", password="s3cret")
    b = make("b", server=own_etcd, username="root", password="s3cret")
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    leader = b.get_cluster().leader
    assert leader is not None and leader.name == "a"
    started = time.monotonic()
    in_background(lambda: a.delete_leader(leader))
    assert b.watch(10) and time.monotonic() - started < 1.0
    if kind == "etcd3":  # an expired/invalid token is replaced transparently
        a._client._token = "bogus.token"  # type: ignore[attr-defined]
        assert a.attempt_to_acquire_leader()
    for creds in ({}, {"username": "root", "password": "wrong"}):
        started = time.monotonic()
        with pytest.raises(DCSError):
            make("c", server=own_etcd, retry_timeout=2, **creds).get_cluster()
        assert time.monotonic() - started < 3.5


def test_watch_behind_history(kind: str, own_server: Server, make: Make) -> None:
    """Events compacted (v3) / pushed out of the 1000-event history (v2) before the watcher
    read them: watch() must still wake up (the caller re-reads), not miss the change. ZooKeeper
    keeps no event history: the watch set by the snapshot's read delivers the change."""
    a, b = make("a", server=own_server), make("b", server=own_server)
    assert a.attempt_to_acquire_leader()
    leader = b.get_cluster().leader  # b's snapshot; b's watcher not started yet
    assert a.delete_leader(leader)
    own_etcd = own_server
    if kind == "etcd3":
        revision = int(v3_post(own_etcd, "/v3/kv/range", {"key": b64("x")})["header"]["revision"])
        v3_post(own_etcd, "/v3/kv/compaction", {"revision": str(revision), "physical": True})
    elif kind == "etcd":
        for i in range(1100):
            put(own_etcd, kind, f"/filler/{i % 10}", str(i))
    started = time.monotonic()
    assert b.watch(10)
    assert time.monotonic() - started < 2
    b.get_cluster()
    assert not b.watch(0.5)  # and it settles afterwards
    assert a.attempt_to_acquire_leader()
    started = time.monotonic()
    assert b.watch(10) and time.monotonic() - started < 1.0


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_etcd3_keeps_connections_alive(tls: bool, scope: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idempotent requests (the keepalive of every cycle, reads) reuse one connection, also
    after etcd restarted (the closed connection is noticed before it is used); a
    compare-and-swap always opens a new one."""
    from pg_ha.dcs.etcd3 import Etcd3
    from pg_ha.dcs.etcd3_client import Etcd3Client

    connects: list[int] = []
    real_connect = Etcd3Client._connect

    def counting_connect(self: Etcd3Client, index: int, timeout: float) -> Any:
        if threading.current_thread() is threading.main_thread():  # not the watcher's stream
            connects.append(index)
        return real_connect(self, index, timeout)
    monkeypatch.setattr(Etcd3Client, "_connect", counting_connect)
    with EtcdServer(name="keepalive", tls=tls) as server:
        options: dict[str, Any] = {}
        if tls:
            options = {"protocol": "https", "cacert": server.cacert, "cert": server.client_cert[0],
                       "key": server.client_cert[1]}
        dcs = Etcd3(NS, scope, "a", 10, 3, [server.host_port], **options)
        try:
            assert dcs.touch_member({"state": "running"})
            connects.clear()
            for _ in range(10):
                dcs.get_cluster()  # a lease keepalive each time
                dcs._refresh_lease(0)
            assert len(connects) == 0
            for _ in range(3):
                assert dcs.attempt_to_acquire_leader() in (True, False)
            assert len(connects) == 3  # one new connection per compare-and-swap
            server.stop()
            server.start()
            connects.clear()
            cluster = wait_for(dcs.get_cluster, 15, "etcd to answer after its restart")
            assert cluster.leader is not None and cluster.leader.name == "a"
            connects.clear()
            for _ in range(5):
                dcs._refresh_lease(0)
            assert len(connects) == 0
        finally:
            dcs.close()


@pytest.mark.parametrize("kind", ["zookeeper"])
def test_zookeeper_auth_data(kind: str, scope: str, make: Make, zk_server: ZooKeeperServer) -> None:
    """auth_data as Patroni passes it (add_auth): an operator protects the scope with a digest
    ACL; members with the credential work (and are woken), others get a DCSError in time."""
    from kazoo.security import make_digest_acl

    admin = zk_server.client(auth_data=[("digest", "root:s3cret")])
    try:
        admin.create(f"{NS}/{scope}", b"", acl=[make_digest_acl("root", "s3cret", all=True)], makepath=True)
    finally:
        admin.stop()
        admin.close()
    auth = {"auth_data": (("digest", "root:s3cret"),)}
    a, b = make("a", **auth), make("b", **auth)
    assert a.touch_member({}) and a.attempt_to_acquire_leader()
    leader = b.get_cluster().leader
    assert leader is not None and leader.name == "a"
    started = time.monotonic()
    in_background(lambda: a.delete_leader(leader))
    assert b.watch(10) and time.monotonic() - started < 1.0
    for creds in ({}, {"auth_data": (("digest", "root:wrong"),)}):
        started = time.monotonic()
        with pytest.raises(DCSError):
            make("c", retry_timeout=2, **creds).get_cluster()
        assert time.monotonic() - started < 3.5
    assert a.delete_cluster()


@pytest.mark.parametrize("kind", ["zookeeper"])
def test_zookeeper_tls_and_set_acls(kind: str, scope: str, make: Make) -> None:
    """use_ssl with a client certificate (the server requires one) and set_acls as Patroni
    gives them (x509 principal -> permissions): the znodes pg_ha creates are the principal's
    alone; a client with another certificate is refused them, one without a certificate is
    refused the connection, each with a DCSError within the retry timeout."""
    with ZooKeeperServer(name="tls", tls=True) as server:
        cert, key = server.client_cert("pg_ha")
        tls: dict[str, Any] = {"use_ssl": True, "cacert": server.cacert, "cert": cert, "key": key,
                               "set_acls": (("CN=pg_ha", ("ALL",)),)}
        a, b = make("a", server=server, **tls), make("b", server=server, **tls)
        assert a.touch_member({}) and a.attempt_to_acquire_leader()
        leader = b.get_cluster().leader
        assert leader is not None and leader.name == "a"
        admin = server.client()
        try:
            for path in (f"{NS}/{scope}", f"{NS}/{scope}/leader", f"{NS}/{scope}/members/a"):
                acl = admin.get_acls(path)[0]
                assert [(x.id.scheme, x.id.id, x.acl_list) for x in acl] == [("x509", "CN=pg_ha", ["ALL"])], path
        finally:
            admin.stop()
            admin.close()
        started = time.monotonic()
        in_background(lambda: a.delete_leader(leader))
        assert b.watch(10) and time.monotonic() - started < 1.0
        other_cert, other_key = server.client_cert("other")
        refused = ({**tls, "cert": other_cert, "key": other_key},
                   {"use_ssl": True, "cacert": server.cacert})
        for creds in refused:
            started = time.monotonic()
            with pytest.raises(DCSError):
                make("c", server=server, retry_timeout=2, **creds).get_cluster()
            assert time.monotonic() - started < 3.5
        assert a.delete_cluster()
