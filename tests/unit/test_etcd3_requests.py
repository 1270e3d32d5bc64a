"""Which requests the etcd3 backend sends per HA cycle, against a tiny local fake of the v3
gateway (the real etcd is in tests/integration/test_dcs_contract.py): at idle one lease
keepalive, the cluster from the watch-fed cache, writes only when something changed."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from pg_ha.dcs.base import Node
from pg_ha.dcs.etcd3 import Etcd3
from pg_ha.dcs.etcd3_client import b64

LEASE = 7


class FakeGateway(BaseHTTPRequestHandler):
    seen: list[str] = []
    revision = [20]
    leader_value = ["me"]  # what the txn's compare on the leader key's value sees
    next_lease = [LEASE]

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(self.path)
        header = {"revision": str(self.revision[0])}
        if self.path == "/v3/lease/grant":
            doc: dict[str, Any] = {"ID": str(self.next_lease[0]), "TTL": "10"}
            self.next_lease[0] += 1
        elif self.path == "/v3/lease/keepalive":
            doc = {"result": {"ID": str(LEASE), "TTL": "10"}}
        elif self.path == "/v3/kv/put":
            self.revision[0] += 1
            doc = {"header": {"revision": str(self.revision[0])}}
        elif self.path == "/v3/kv/txn":
            compare = body["compare"][0]
            ok = compare.get("value") == b64(self.leader_value[0])
            if ok and body["success"]:
                self.revision[0] += 1
            doc = {"succeeded": ok, "header": {"revision": str(self.revision[0])}}
        elif self.path == "/v3/kv/range":
            doc = {"header": header, "kvs": [{"key": b64("/service/s/leader"), "value": b64("me"),
                                              "mod_revision": "3", "lease": str(LEASE)}]}
        else:
            doc = {"header": header}
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[Etcd3, type[FakeGateway]]]:
    handler = type("H", (FakeGateway,), {"seen": [], "revision": [20], "leader_value": ["me"],
                                         "next_lease": [LEASE]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dcs = Etcd3("/service", "s", "me", 10, 2, [f"127.0.0.1:{server.server_address[1]}"])
    yield dcs, handler
    server.shutdown()
    server.server_close()


def stream(dcs: Etcd3, revision: int, **nodes: Node) -> None:
    """What the watcher does: the cache holds these keys at `revision` and streams."""
    dcs.cache.reset({k.replace("__", "/"): v for k, v in nodes.items()}, revision)
    dcs.cache.set_streaming(True)
    dcs._watcher = SimpleNamespace(is_alive=lambda: True, stop=lambda: None)  # type: ignore[assignment]


MEMBER = {"state": "running", "xlog_location": 100}
VALUE = json.dumps(MEMBER, separators=(",", ":"))


def test_idle_cycle_is_one_keepalive(fake: tuple[Etcd3, type[FakeGateway]]) -> None:
    dcs, gw = fake
    assert dcs.touch_member(MEMBER)  # first cycle: a lease and the key
    assert gw.seen == ["/v3/lease/grant", "/v3/kv/put"]
    stream(dcs, 21, members__me=Node(VALUE, 21, LEASE), leader=Node("me", 5, LEASE),
           optime__leader=Node("100", 6))
    for _ in range(3):  # idle cycles of a leader: read, refresh the lock, publish
        gw.seen.clear()
        dcs._keepalive_at = 0.0  # the previous cycle's keepalive is older than KEEPALIVE_REUSE
        cluster = dcs.get_cluster()
        assert cluster.leader is not None and cluster.leader.name == "me" and cluster.last_lsn == 100
        assert dcs.update_leader(cluster.leader, 100)
        assert dcs.touch_member(MEMBER)
        assert gw.seen == ["/v3/lease/keepalive"]
    assert dcs.get_cluster() is dcs.get_cluster()  # nothing changed: the snapshot is reused


def test_changes_are_written_and_read_back(fake: tuple[Etcd3, type[FakeGateway]]) -> None:
    dcs, gw = fake
    dcs.touch_member(MEMBER)
    stream(dcs, 21, members__me=Node(VALUE, 21, LEASE), leader=Node("me", 5, LEASE),
           optime__leader=Node("100", 6))
    gw.seen.clear()
    dcs._keepalive_at = 0.0
    cluster = dcs.get_cluster()
    assert dcs.update_leader(cluster.leader, 200)  # type: ignore[arg-type] # the optime moved
    assert dcs.touch_member({**MEMBER, "xlog_location": 200})
    assert gw.seen == ["/v3/lease/keepalive", "/v3/kv/txn", "/v3/kv/put"]
    # the watch has not delivered our writes yet: get_cluster waits for them, then reads etcd
    gw.seen.clear()
    dcs._keepalive_at = 0.0
    dcs.get_cluster()
    assert gw.seen == ["/v3/lease/keepalive", "/v3/kv/range"]


def test_the_lock_is_checked_by_a_cas_when_the_cache_says_otherwise(fake: tuple[Etcd3, type[FakeGateway]]) -> None:
    dcs, gw = fake
    dcs.touch_member(MEMBER)
    stream(dcs, 21, leader=Node("other", 21, 9))
    gw.leader_value[0] = "other"
    gw.seen.clear()
    assert not dcs.update_leader(None, 100)  # type: ignore[arg-type]
    assert gw.seen[-1] == "/v3/kv/txn"


def test_without_a_streaming_watch_every_read_and_write_goes_to_etcd(fake: tuple[Etcd3, type[FakeGateway]]) -> None:
    dcs, gw = fake
    dcs.touch_member(MEMBER)
    dcs.cache.reset({"members/me": Node(VALUE, 21, LEASE), "leader": Node("me", 5, LEASE)}, 21)
    dcs._watcher = SimpleNamespace(is_alive=lambda: True, stop=lambda: None)  # type: ignore[assignment]
    gw.seen.clear()
    dcs._keepalive_at = 0.0
    cluster = dcs.get_cluster()
    assert dcs.update_leader(cluster.leader, None)  # type: ignore[arg-type]
    assert dcs.touch_member(MEMBER)
    assert gw.seen == ["/v3/kv/range", "/v3/lease/keepalive", "/v3/kv/txn", "/v3/kv/put"]


def test_keepalive_of_a_member_that_is_not_the_leader_every_third_of_the_ttl(
        fake: tuple[Etcd3, type[FakeGateway]]) -> None:
    dcs, gw = fake
    dcs.touch_member(MEMBER)
    stream(dcs, 21, members__me=Node(VALUE, 21, LEASE), leader=Node("other", 5, 9))
    assert dcs.keepalive_interval() == pytest.approx(10 / 3)
    gw.seen.clear()
    dcs._keepalive_at = time.monotonic() - 10 / 3 + 1  # younger than ttl/3: the cache serves
    dcs.get_cluster()
    dcs.touch_member(MEMBER)
    assert gw.seen == []
    dcs._keepalive_at = time.monotonic() - 10 / 3 - 0.01  # ttl/3 old: keep the member key alive
    dcs.get_cluster()
    dcs.touch_member(MEMBER)  # reuses it
    assert gw.seen == ["/v3/lease/keepalive"]


def test_leader_keepalive_every_cycle_and_a_ttl_change_grants_a_new_lease(
        fake: tuple[Etcd3, type[FakeGateway]]) -> None:
    dcs, gw = fake
    dcs.touch_member(MEMBER)
    stream(dcs, 21, members__me=Node(VALUE, 21, LEASE), leader=Node("me", 5, LEASE))
    assert dcs.keepalive_interval() == 0
    gw.seen.clear()
    dcs.get_cluster()  # always a keepalive of its own: the lock refresh, and the check that etcd answers
    dcs.touch_member(MEMBER)  # reuses it
    assert gw.seen == ["/v3/lease/keepalive"]
    dcs.set_ttl(2)  # ttl/4 = 0.5 s; a changed ttl means a new lease anyway
    dcs.touch_member(MEMBER)
    assert gw.seen[1:] == ["/v3/lease/grant", "/v3/kv/put"]
