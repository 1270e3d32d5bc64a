"""DCS pieces that need no etcd: snapshot parsing, hosts, the watch notifier, the v3 gateway
client's retry/deadline rules (against tiny local sockets), watch event filters, get_dcs."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from pg_ha.config.settings import DcsSettings, DynamicSettings
from pg_ha.dcs import get_dcs
from pg_ha.dcs.base import DCSError, Node, WatchNotifier, cluster_from_nodes, parse_hosts
from pg_ha.dcs.etcd3 import Etcd3
from pg_ha.dcs.etcd3_client import Etcd3Client, EtcdError, b64, error_from, prefix_end, unb64
from pg_ha.dcs.etcd3_watch import Etcd3Watcher

from tests.harness.common import PKG_SRC, free_port


def nodes(**values: str) -> dict[str, Node]:
    return {k.replace("__", "/"): Node(v, i + 1) for i, (k, v) in enumerate(values.items())}


def test_full_snapshot() -> None:
    cluster = cluster_from_nodes({
        "config": Node('{"ttl": 30, "pause": true}', 5),
        "initialize": Node("7300000000000000001", 2),
        "leader": Node("pg1", 9, 12345),
        "optime/leader": Node("1000", 10),
        "status": Node('{"optime": 2000, "slots": {"pg2": 1900}}', 11),
        "members/pg1": Node('{"role": "primary", "xlog_location": 2000, "timeline": 3, "tags": {"a": 1}}', 7),
        "members/pg0": Node('{"role": "replica", "state": "streaming"}', 8),
        "failover": Node('{"leader": "pg1", "member": "pg0", "scheduled_at": "2030-01-01T00:00:00+00:00"}', 12),
        "sync": Node('{"leader": "pg1", "sync_standby": "pg0"}', 13),
        "history": Node('[[1, 100, "reason", "2024-01-01T00:00:00+00:00", "pg0"], [2, 200, "r"]]', 14),
        "failsafe": Node('{"pg1": "http://pg1:8008/patroni"}', 15),
    })
    assert cluster.initialize == "7300000000000000001" and cluster.paused
    assert cluster.leader is not None and (cluster.leader.name, cluster.leader.version) == ("pg1", 9)
    assert cluster.leader.session == 12345
    assert cluster.last_lsn == 2000  # the newer of status.optime and optime/leader
    assert [m.name for m in cluster.members] == ["pg0", "pg1"]
    assert cluster.leader_member is not None and cluster.leader_member.timeline == 3
    assert cluster.failover is not None and cluster.failover.candidate == "pg0"
    assert cluster.failover.scheduled_at is not None and cluster.failover.version == 12
    assert cluster.sync is not None and cluster.sync.sync_standby == ("pg0",)
    assert cluster.history is not None and cluster.history.lines[1] == (2, 200, "r")
    assert cluster.status == {"optime": 2000, "slots": {"pg2": 1900}}
    assert cluster.failsafe == {"pg1": "http://pg1:8008/patroni"}


def test_empty_snapshot() -> None:
    cluster = cluster_from_nodes({})
    assert cluster.is_unlocked and cluster.members == () and cluster.last_lsn == 0
    assert cluster.config is None and cluster.initialize is None


@pytest.mark.parametrize("optime, status, expected", [
    ("500", None, 500),
    (None, '{"optime": 700}', 700),
    ("900", '{"optime": 700}', 900),  # stale status, fresh optime/leader
    ("abc", '{"optime": "x"}', 0),
    ("-5", '{"optime": true}', 0),
    ("12", "[1]", 12),
])
def test_last_lsn(optime: str | None, status: str | None, expected: int) -> None:
    raw = {}
    if optime is not None:
        raw["optime/leader"] = Node(optime, 1)
    if status is not None:
        raw["status"] = Node(status, 2)
    assert cluster_from_nodes(raw).last_lsn == expected


GARBAGE = ["", "null", "not json", "[1, 2", "123", '"str"', "[]", "{}", "[" * 50000 + "]" * 50000,
           '{"leader": 5, "member": [1], "scheduled_at": 7}', '{"sync_standby": 5, "leader": null}',
           '[[1], "x", {"a": 1}, [null, null]]', '{"xlog_location": "9", "timeline": [], "tags": "x"}']


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_never_raises(value: str) -> None:
    keys = ["config", "initialize", "leader", "optime/leader", "status", "failover", "sync", "history",
            "failsafe", "members/m", "members/", "members/a/b"]
    cluster = cluster_from_nodes({k: Node(value, 3) for k in keys})
    assert [m.name for m in cluster.members] == ["m"]
    member = cluster.members[0]
    assert isinstance(member.lsn, int) and isinstance(member.tags, dict) and isinstance(member.state, str)
    assert cluster.config is not None and isinstance(cluster.config.data, dict)
    assert cluster.status is None or isinstance(cluster.status, dict)
    assert isinstance(cluster.last_lsn, int)


@pytest.mark.parametrize("hosts, expected", [
    (["127.0.0.1:2379"], [("127.0.0.1", 2379)]),
    ("h1:1,h2:2", [("h1", 1), ("h2", 2)]),
    (["http://h3:23790/", "h4"], [("h3", 23790), ("h4", 2379)]),
    (["[::1]:2380", "[fe80::1]"], [("::1", 2380), ("fe80::1", 2379)]),
])
def test_parse_hosts(hosts: Any, expected: list[tuple[str, int]]) -> None:
    assert parse_hosts(hosts) == expected


@pytest.mark.parametrize("hosts", [[], "", ["h:port"]])
def test_parse_hosts_rejects(hosts: Any) -> None:
    with pytest.raises(ValueError):
        parse_hosts(hosts)


def test_notifier() -> None:
    notifier = WatchNotifier()
    notifier.snapshot(10)
    notifier.fire(9)  # already in the snapshot
    started = time.monotonic()
    assert not notifier.wait(0.1)
    assert 0.09 <= time.monotonic() - started < 1
    notifier.fire(11)
    assert notifier.wait(5)  # fired after the snapshot, before wait()
    assert not notifier.wait(0)  # consumed
    notifier.snapshot(20)
    notifier.fire(15)
    assert not notifier.wait(0)  # a later snapshot already covers it
    threading.Timer(0.1, notifier.wakeup).start()
    started = time.monotonic()
    assert notifier.wait(5) and time.monotonic() - started < 1
    notifier.fire(None)  # "may have missed something"
    assert notifier.wait(0)


def test_base64_helpers() -> None:
    assert unb64(b64("/service/x/leader")) == "/service/x/leader"
    assert unb64(None) == "" and unb64("!!!") == "" and unb64(b64(b"\xff")) == "\ufffd"
    assert prefix_end("/service/x/") == b"/service/x0"
    assert prefix_end("a\xff") == "a\xff".encode()[:-1] + b"\xc0"
    assert prefix_end("") == b"\0"


def test_error_classification() -> None:
    assert error_from({"header": {}}, 200) is None
    no_leader = error_from({"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": 14}, 503)
    assert no_leader is not None and no_leader.transient and no_leader.not_applied
    token = error_from({"error": {"grpc_code": 16, "message": "etcdserver: invalid auth token"}}, 200)
    assert token is not None and token.invalid_token and not token.transient
    lease = EtcdError("etcdserver: requested lease not found", 5)
    assert lease.lease_not_found and not lease.transient
    assert error_from("garbage", 502) is not None and error_from({}, 500) is not None


def fake_etcd3() -> Etcd3:
    return Etcd3("/service", "s", "me", 10, 1, ["127.0.0.1:1"])


@pytest.mark.parametrize("event, fires", [
    ({"type": "DELETE", "kv": {"key": b64("/service/s/leader"), "mod_revision": "8"}}, True),
    ({"kv": {"key": b64("/service/s/leader"), "mod_revision": "8", "value": b64("a")},
      "prev_kv": {"value": b64("a")}}, False),  # re-put by the same owner
    ({"kv": {"key": b64("/service/s/leader"), "mod_revision": "8", "value": b64("b")},
      "prev_kv": {"value": b64("a")}}, True),
    ({"kv": {"key": b64("/service/s/leader"), "mod_revision": "8", "value": b64("b")}}, True),  # created
    ({"kv": {"key": b64("/service/s/failover"), "mod_revision": "8", "value": b64("{}")}}, True),
    ({"type": "DELETE", "kv": {"key": b64("/service/s/failover"), "mod_revision": "8"}}, True),
    ({"kv": {"key": b64("/service/s/history"), "mod_revision": "8", "value": b64("[]")}}, False),
    ({"kv": {"key": b64("/service/s/failover"), "mod_revision": "3", "value": b64("{}")}}, False),  # old
])
def test_etcd3_watch_filter(event: dict[str, Any], fires: bool) -> None:
    dcs = fake_etcd3()
    dcs.cache.reset({}, 5)
    dcs._notifier.snapshot(5)
    watcher = Etcd3Watcher(dcs)
    watcher._handle({"result": {"header": {"revision": "8"}, "events": [event]}})
    assert dcs._notifier.wait(0) is fires
    assert dcs.cache.revision == max(5, int(event["kv"]["mod_revision"]))  # older events are not applied


def test_etcd3_watch_compacted() -> None:
    dcs = fake_etcd3()
    dcs.cache.reset({}, 30)
    watcher = Etcd3Watcher(dcs)
    with pytest.raises(EtcdError):  # the watcher's loop then invalidates the cache
        watcher._handle({"result": {"canceled": True, "compact_revision": "40"}})
    assert dcs._notifier.wait(0)


@pytest.mark.parametrize("doc, fires", [
    ({"action": "expire", "node": {"key": "/service/s/leader", "modifiedIndex": 9}}, True),
    ({"action": "compareAndDelete", "node": {"key": "/service/s/leader", "modifiedIndex": 9}}, True),
    ({"action": "compareAndSwap", "node": {"key": "/service/s/leader", "value": "a", "modifiedIndex": 9},
      "prevNode": {"value": "a"}}, False),
    ({"action": "create", "node": {"key": "/service/s/leader", "value": "b", "modifiedIndex": 9}}, True),
    ({"action": "set", "node": {"key": "/service/s/failover", "value": "{}", "modifiedIndex": 9}}, True),
    ({"action": "set", "node": {"key": "/service/s/members/b", "value": "{}", "modifiedIndex": 9}}, False),
    ({"action": "delete", "node": {"key": "/service/s", "dir": True, "modifiedIndex": 9}}, True),
    ({"action": "delete", "node": {"key": "/service/s2", "dir": True, "modifiedIndex": 9}}, False),
    ({"action": "set", "node": "garbage"}, False),
])
def test_etcd_v2_watch_filter(doc: dict[str, Any], fires: bool) -> None:
    pytest.importorskip("etcd")
    from pg_ha.dcs.etcd import Etcd
    from pg_ha.dcs.etcd import _Watcher as V2Watcher
    dcs = Etcd("/service", "s", "me", 10, 1, ["127.0.0.1:1"])
    dcs._notifier.snapshot(5)
    watcher = V2Watcher(dcs)
    watcher.handle(doc, 6)
    assert dcs._notifier.wait(0) is fires
    assert watcher.index >= 6


# -- the v3 gateway client against local sockets ------------------------------------------
class Gateway(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, Any]]] = []
    seen: list[tuple[str, str | None, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers.get("Authorization"), body))
        status, doc = self.answers.pop(0) if self.answers else (200, {"header": {"revision": "1"}})
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, type[Gateway]]]:
    handler = type("H", (Gateway,), {"answers": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_client_fails_over_and_sticks(gateway: tuple[str, type[Gateway]]) -> None:
    address, handler = gateway
    client = Etcd3Client([f"127.0.0.1:{free_port()}", address], retry_timeout=3)
    assert client.call("/v3/kv/range", {})["header"]["revision"] == "1"
    started = time.monotonic()
    client.call("/v3/kv/range", {})
    assert time.monotonic() - started < 0.5 and len(handler.seen) == 2


def test_client_deadline_refused() -> None:
    client = Etcd3Client([f"127.0.0.1:{free_port()}"], retry_timeout=1)
    started = time.monotonic()
    with pytest.raises(DCSError, match="within 1s"):
        client.call("/v3/kv/range", {})
    assert 0.9 <= time.monotonic() - started < 2


def test_client_deadline_silent_server() -> None:
    with socket.socket() as listener:  # accepts (backlog) but never answers, like a SIGSTOPped etcd
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        client = Etcd3Client([f"127.0.0.1:{listener.getsockname()[1]}"], retry_timeout=1)
        started = time.monotonic()
        with pytest.raises(DCSError):
            client.call("/v3/kv/range", {})
        assert time.monotonic() - started < 2
        started = time.monotonic()
        with pytest.raises(DCSError, match="outcome unknown"):  # a CAS is not blindly re-sent
            client.call("/v3/kv/txn", {}, idempotent=False)
        assert time.monotonic() - started < 2


def test_client_retries_no_leader_then_reauthenticates(gateway: tuple[str, type[Gateway]]) -> None:
    address, handler = gateway
    handler.answers += [
        (200, {"token": "t1"}),
        (503, {"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": 14}),
        (401, {"error": "etcdserver: invalid auth token", "message": "etcdserver: invalid auth token", "code": 16}),
        (200, {"token": "t2"}),
        (200, {"succeeded": True}),
    ]
    client = Etcd3Client([address], username="root", password="pw", retry_timeout=3)
    assert client.call("/v3/kv/txn", {}, idempotent=False) == {"succeeded": True}
    paths = [(path, auth) for path, auth, _ in handler.seen]
    assert paths == [("/v3/auth/authenticate", None), ("/v3/kv/txn", "t1"), ("/v3/kv/txn", "t1"),
                     ("/v3/auth/authenticate", None), ("/v3/kv/txn", "t2")]
    handler.answers.append((400, {"error": "etcdserver: key not found", "message": "x", "code": 3}))
    with pytest.raises(EtcdError):  # a definite error is not retried
        client.call("/v3/kv/put", {})


# -- factory ---------------------------------------------------------------------------------
def config(kind: str) -> Any:
    return SimpleNamespace(namespace="/service", scope="demo", name="pg0", dynamic=DynamicSettings(ttl=20),
                           dcs=DcsSettings(kind=kind, hosts=("127.0.0.1:2379",)))


def test_get_dcs() -> None:
    dcs = get_dcs(config("etcd3"))
    assert isinstance(dcs, Etcd3) and dcs.ttl == 20 and dcs.leader_path == "/service/demo/leader"
    pytest.importorskip("etcd")
    from pg_ha.dcs.etcd import Etcd
    assert isinstance(get_dcs(config("etcd")), Etcd)
    with pytest.raises(DCSError):
        get_dcs(config("consul"))


def test_import_is_lazy() -> None:
    code = "import sys, pg_ha.dcs; assert 'etcd' not in sys.modules and 'pg_ha.dcs.etcd' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, env={"PYTHONPATH": str(PKG_SRC.parent)})


def test_etcd_v2_never_resends_a_cas() -> None:
    """python-etcd over urllib3 must not retry on its own: a re-sent CAS could report failure."""
    pytest.importorskip("etcd")
    from pg_ha.dcs.etcd import Etcd
    with socket.socket() as listener:  # accepts but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        dcs = Etcd("/service", "s", "me", 10, 1.5, [f"127.0.0.1:{listener.getsockname()[1]}"])
        started = time.monotonic()
        with pytest.raises(DCSError, match="outcome unknown"):
            dcs.set_config_value("{}", 7)
        assert time.monotonic() - started < 2.5
        accepted = []
        while True:
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                break
        for conn in accepted:
            conn.close()
        assert len(accepted) == 1
