"""The REST API's own request-head parsing, single-write responses and reused connection
threads (api/wire.py, api/workers.py), against the real server with a FakeBackend."""
from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest
from pg_ha.api import RestApiServer
from pg_ha.api import workers as workers_mod
from pg_ha.api.wire import HeadError, format_http_date, parse_request_line, read_headers, render
from pg_ha.config.settings import RestApiSettings

from tests.fakes import FakeBackend, three_member_dcs


@pytest.mark.parametrize("line, expected", [
    (b"GET /primary HTTP/1.1\r\n", ("GET", "/primary", (1, 1))),
    (b"OPTIONS /primary HTTP/1.0\r\n", ("OPTIONS", "/primary", (1, 0))),
    (b"GET //evil.example/x HTTP/1.1\n", ("GET", "/evil.example/x", (1, 1))),
])
def test_request_line(line: bytes, expected: tuple[str, str, tuple[int, int]]) -> None:
    assert parse_request_line(line) == expected


@pytest.mark.parametrize("line, code", [
    (b"GET /primary\r\n", 400),  # HTTP/0.9
    (b"GET /primary HTTX/1.1\r\n", 400),
    (b"GET /primary HTTP/1\r\n", 400),
    (b"GET /primary HTTP/a.b\r\n", 400),
    (b"GET /primary HTTP/2.0\r\n", 505),
    (b"GET / x HTTP/1.1\r\n", 400),
])
def test_bad_request_line(line: bytes, code: int) -> None:
    with pytest.raises(HeadError) as info:
        parse_request_line(line)
    assert info.value.code == code


def test_headers() -> None:
    head = io.BytesIO(b"Host: x\r\ncontent-LENGTH:  12 \r\nX-Long: a\r\n  b\r\nHost: y\r\n\r\nbody")
    headers = read_headers(head)
    assert headers.get("Content-Length") == "12" and headers["host"] == "x"  # the first one, as email
    assert headers.get("X-Long") == "a b" and "x-long" in headers and headers.get("Missing") is None
    assert head.read() == b"body"  # the body is left for the handler


@pytest.mark.parametrize("head, code", [
    (b"NoColon\r\n\r\n", 400),
    (b" Name: x\r\n\r\n", 400),  # continuation without a field
    (b"Name : x\r\n\r\n", 400),
    (b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"H: " + b"x" * 70000 + b"\r\n\r\n", 431),
])
def test_bad_headers(head: bytes, code: int) -> None:
    with pytest.raises(HeadError) as info:
        read_headers(io.BytesIO(head))
    assert info.value.code == code


def test_http_date() -> None:
    from email.utils import formatdate
    for epoch in (0, 784111777, 1795000000, 1795999999):
        assert format_http_date(epoch) == formatdate(epoch, usegmt=True)


def test_render() -> None:
    assert render(200, "OK", [("Content-Length", "2")], b"{}") == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
def server() -> Iterator[RestApiServer]:
    api = RestApiServer(FakeBackend(three_member_dcs()), RestApiSettings(listen_host="127.0.0.1", listen_port=0))
    api.start()
    yield api
    api.stop()


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_answers_over_the_wire(server: RestApiServer) -> None:
    answer = exchange(server.port, b"OPTIONS /primary HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and b"Content-Length: 0" in lines and b"Connection: close" in lines
    assert any(line.startswith(b"Date: ") for line in lines) and body == b""
    answer = exchange(server.port, b"GET /patroni HTTP/1.1\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Type: application/json" in head and body.startswith(b"{")
    answer = exchange(server.port, b"HEAD /patroni HTTP/1.0\r\n\r\n")
    assert answer.endswith(b"\r\n\r\n") and b"Content-Length: 0" not in answer  # length of the GET answer
    assert exchange(server.port, b"GET /primary HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505")
    assert exchange(server.port, b"GET /primary\r\n\r\n").startswith(b"HTTP/1.1 400")
    # no body to wait for: the answer at once, without 100 Continue (tests/unit/test_api_limits.py)
    answer = exchange(server.port, b"GET /patroni HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_connection_threads_are_reused(server: RestApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        if self.name == "pg_ha-restapi-conn":
            started.append(self.name)
        real_start(self)
    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(20):  # one connection after the other, as a load balancer's checks
        assert exchange(server.port, b"OPTIONS /primary HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert len(started) <= 2  # not one thread per connection
    # a kept-alive connection holds its worker: another client still gets an answer at once
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as held:
        held.sendall(b"GET /patroni HTTP/1.1\r\n\r\n")
        assert held.recv(65536).startswith(b"HTTP/1.1 200")
        assert exchange(server.port, b"OPTIONS /primary HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_idle_workers_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_mod, "IDLE_EXIT", 0.2)
    api = RestApiServer(FakeBackend(three_member_dcs()), RestApiSettings(listen_host="127.0.0.1", listen_port=0))
    api.start()
    try:
        exchange(api.port, b"OPTIONS /primary HTTP/1.0\r\n\r\n")

        def workers() -> list[threading.Thread]:
            return [t for t in api.worker_threads() if t.is_alive()]
        for _ in range(100):
            if not workers():
                break
            threading.Event().wait(0.05)
        assert not workers()
        assert exchange(api.port, b"OPTIONS /primary HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")  # a new one
    finally:
        api.stop()


def test_workers_busy_at_stop_end_with_their_connection() -> None:
    api = RestApiServer(FakeBackend(three_member_dcs()), RestApiSettings(listen_host="127.0.0.1", listen_port=0))
    api.start()
    try:
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as held:
            held.sendall(b"GET /patroni HTTP/1.1\r\n\r\n")
            assert held.recv(65536).startswith(b"HTTP/1.1 200")
            busy = api.worker_threads()
            assert busy
            api.stop()  # the kept-alive connection is closed by the server; its worker must not idle on
            for thread in busy:
                thread.join(timeout=5)
            assert not [t for t in busy if t.is_alive()]
    finally:
        api.stop()
