"""pg_ha.node.peers: the other members' /patroni answers, fetched with http.client."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pg_ha.config.settings import RestApiSettings
from pg_ha.core.model import Cluster, Member
from pg_ha.node.peers import client_context, fetch_one, fetch_peers, name_in_use, peer_from_status

from tests.harness.common import free_port


class Peer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers: dict[str, tuple[int, bytes]] = {}
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.paths.append(self.path)
        code, body = self.answers.get(self.path, (404, b"not found"))
        if code == 0:  # never answers within the caller's timeout
            time.sleep(1.5)
            code = 200
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[str, type[Peer]]]:
    handler = type("P", (Peer,), {"answers": {}, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


REPLICA = {"state": "running", "role": "replica", "timeline": 3,
           "xlog": {"received_location": 500, "replayed_location": 400}, "tags": {"nofailover": True}}
PRIMARY = {"state": "running", "role": "primary", "timeline": 2, "xlog": {"location": 900}}


def member(name: str, api_url: str | None) -> Member:
    return Member(name, 1, {"api_url": api_url} if api_url else {})


def test_fetch_one_reads_any_status(peer: tuple[str, type[Peer]]) -> None:
    url, handler = peer
    handler.answers["/patroni"] = (503, json.dumps(REPLICA).encode())  # a replica answers 503 with its status
    handler.answers["/primary?x=1"] = (200, json.dumps(PRIMARY).encode())
    info = fetch_one(member("b", f"{url}/patroni"), 2)
    assert info.reachable and info.running and info.in_recovery and info.wal_lsn == 500
    assert info.timeline == 3 and info.nofailover
    info = fetch_one(member("c", f"{url}/primary?x=1"), 2)
    assert info.reachable and not info.in_recovery and info.wal_lsn == 900 and not info.nofailover
    assert handler.paths == ["/patroni", "/primary?x=1"]


def test_fetch_one_unreachable_or_garbage(peer: tuple[str, type[Peer]]) -> None:
    url, handler = peer
    handler.answers["/garbage"] = (200, b"<html>")
    assert not fetch_one(member("b", f"{url}/garbage"), 2).reachable
    assert not fetch_one(member("b", f"http://127.0.0.1:{free_port()}/patroni"), 2).reachable
    assert not fetch_one(member("b", None), 2).reachable
    assert not fetch_one(member("b", "ftp://127.0.0.1/x"), 2).reachable


def test_fetch_peers_one_deadline(peer: tuple[str, type[Peer]]) -> None:
    url, handler = peer
    handler.answers["/fast"] = (200, json.dumps(REPLICA).encode())
    handler.answers["/slow"] = (0, json.dumps(REPLICA).encode())
    cluster = Cluster(members=(member("me", f"{url}/x"), member("b", f"{url}/fast"), member("c", f"{url}/slow")))
    started = time.monotonic()
    peers = fetch_peers(cluster, "me", 0.5)
    assert time.monotonic() - started < 1.4
    assert set(peers) == {"b", "c"} and peers["b"].reachable and not peers["c"].reachable


@pytest.mark.parametrize("body, reachable, lsn, running", [
    ({"state": "running", "role": "replica", "xlog": {"received_location": 10, "replayed_location": 20}},
     True, 20, True),
    ({"state": "running", "role": "primary", "xlog": {"location": 30}}, True, 30, True),
    ({"state": "running", "role": "replica", "xlog": {"received_location": "abc", "replayed_location": [1]}},
     True, 0, True),
    ({"role": "primary", "xlog": {"location": -5}}, True, 0, False),
    ({"role": "primary", "xlog": {"location": {"x": 1}}, "tags": "garbage", "timeline": "2"}, True, 0, False),
    ({"xlog": "garbage"}, True, 0, False),
    ("garbage", False, 0, False),
    ([1, 2], False, 0, False),
    (None, False, 0, False),
])
def test_peer_from_status(body: Any, reachable: bool, lsn: int, running: bool) -> None:
    info = peer_from_status("pg1", body)
    assert (info.reachable, info.wal_lsn, info.running) == (reachable, lsn, running)


def test_no_tls_context_without_certfile() -> None:
    assert client_context(None) is None
    assert client_context(RestApiSettings()) is None


def test_name_in_use_needs_a_key_and_an_answering_api(peer: tuple[str, type[Peer]]) -> None:
    """Patroni: "Can't start; there is already a node named '...' running"; a key left by
    a crashed daemon (its API gone) does not block a restart."""
    url, handler = peer
    handler.answers["/patroni"] = (200, json.dumps(PRIMARY).encode())
    live = Cluster(members=(member("pg0", f"{url}/patroni"),))
    assert name_in_use(live, "pg0", 2)
    assert not name_in_use(live, "pg1", 2)
    crashed = Cluster(members=(member("pg0", f"http://127.0.0.1:{free_port()}/patroni"),))
    assert not name_in_use(crashed, "pg0", 2)
    assert not name_in_use(Cluster(members=(member("pg0", None),)), "pg0", 2)
