"""What one client may hold of the REST API (api/limits.py): connections beyond the cap close
the longest-waiting ones, a request must arrive whole within its deadline, and the body of an
unsafe request is read only from a client allowed to send it. Against the real server."""
from __future__ import annotations

import base64
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from pg_ha.api import RestApiServer, limits, protocol
from pg_ha.api import server as server_mod
from pg_ha.config.settings import RestApiSettings

from tests.fakes import FakeBackend, three_member_dcs

AUTH = b"Authorization: Basic " + base64.b64encode(b"admin:secret") + b"\r\n"


@pytest.fixture
def server() -> Iterator[RestApiServer]:
    api = RestApiServer(FakeBackend(three_member_dcs()),
                        RestApiSettings(listen_host="127.0.0.1", listen_port=0, username="admin", password="secret"))
    api.start()
    yield api
    api.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def timed_check(port: int, request: bytes) -> float:
    started = time.perf_counter()
    with connect(port) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return time.perf_counter() - started


def test_the_body_of_an_unsafe_request_is_read_only_after_the_access_check(server: RestApiServer) -> None:
    # no credentials: 401 at once, no 100 Continue, the announced megabyte never read
    with connect(server.port) as sock:
        sock.sendall(b"POST /restart HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
        answer = read_all(sock)  # the server closes: the unread body is not taken for a request
    assert answer.startswith(b"HTTP/1.1 401") and b"100 Continue" not in answer
    # with them: 100 Continue, then the body is read and answered
    with connect(server.port) as sock:
        sock.sendall(b"POST /reload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n" + AUTH
                     + b"Connection: close\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        assert not read_all(sock).startswith((b"HTTP/1.1 401", b"HTTP/1.1 400", b"HTTP/1.1 408"))


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> float:
    for module in (limits, protocol, server_mod):
        monkeypatch.setattr(module, "REQUEST_DEADLINE", 1.0)
    return 1.0


@pytest.mark.parametrize("request_bytes", [
    b"GET /patroni HTTP/1.1\r\nHost: a\r\n",  # a head that never ends (slowloris)
    b"POST /reload HTTP/1.1\r\nContent-Length: 10\r\n" + AUTH + b"\r\n{}",  # a body that stops short
])
def test_a_request_not_whole_within_its_deadline_gets_408(server: RestApiServer, short_deadline: float,
                                                          request_bytes: bytes) -> None:
    with connect(server.port) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes)
        sock.settimeout(0.2)
        answer = b""
        while time.monotonic() - started < short_deadline + 3:
            try:
                sock.sendall(b"X" if b"\r\n\r\n" not in request_bytes else b" ")  # a byte now and then
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            answer += data
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert short_deadline <= took < short_deadline + 1.5


def test_an_idle_keep_alive_connection_has_no_deadline(server: RestApiServer, short_deadline: float) -> None:
    """The deadline runs from a request's first byte: silence between requests is the idle timeout's."""
    with connect(server.port) as sock:
        sock.sendall(b"GET /patroni HTTP/1.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + short_deadline + 0.5
        while time.monotonic() < deadline:  # the client thinks, longer than a request may take
            time.sleep(0.05)
        sock.sendall(b"GET /patroni HTTP/1.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


class FakeConn:
    def __init__(self) -> None:
        self.shut = False

    def shutdown(self, how: int) -> None:
        self.shut = True


def test_the_table_closes_the_longest_waiting_and_never_a_busy_connection() -> None:
    table = limits.ConnectionTable(cap=3)
    a, b, c, d, e = (FakeConn() for _ in range(5))
    for conn in (a, b, c):
        assert table.admit(conn)
    table.busy(a)
    assert table.admit(d) and b.shut and not a.shut and len(table) == 3  # b waited longest
    table.busy(c)
    table.busy(d)
    assert not table.admit(e) and not e.shut and len(table) == 3  # all busy: the new one is refused
    table.waiting(a)
    assert table.admit(e) and a.shut
    table.discard(e)
    assert len(table) == 2


def test_health_checks_answer_while_a_thousand_idle_and_slowloris_connections_are_held(
        server: RestApiServer) -> None:
    port = server.port
    idle = [connect(port) for _ in range(1000)]
    slow = [connect(port) for _ in range(250)]  # more than the cap: requests arriving slowly do not hold it
    stop = threading.Event()

    def drip() -> None:  # slowloris: a header byte per connection every 200 ms, never the end
        for sock in slow:
            sock.sendall(b"GET /patroni HTTP/1.1\r\n")
        while not stop.wait(0.2):
            for sock in slow:
                try:
                    sock.sendall(b"X")
                except OSError:
                    pass

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        # held: all 1,250 accepted, which closed the 1,050 that waited longest (the first ones)
        held = idle + slow
        last_closed = held[len(held) - limits.MAX_CONNECTIONS - 1]
        last_closed.settimeout(10)
        assert last_closed.recv(1) == b""
        times = []
        for i in range(60):
            request = (b"OPTIONS /primary HTTP/1.0\r\n\r\n", b"GET /patroni HTTP/1.1\r\nConnection: close\r\n\r\n",
                       b"GET /health HTTP/1.1\r\n\r\n")[i % 3]  # inline, and two that take a worker
            times.append(timed_check(port, request))
        slowest, median = max(times) * 1000, statistics.median(times) * 1000
        assert slowest < 100, f"slowest check {slowest:.0f} ms (median {median:.1f} ms)"
        httpd = server._httpd
        assert httpd is not None and len(httpd.connections) <= limits.MAX_CONNECTIONS
        # not a thread per connection held (1,250): the cap, and workers of closed ones on their way to reuse
        assert len(server.worker_threads()) < 1.2 * limits.MAX_CONNECTIONS
    finally:
        stop.set()
        dripper.join(5)
        for sock in idle + slow:
            sock.close()
