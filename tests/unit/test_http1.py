"""pg_ha.http1, the daemon's small HTTP/1.1 client, against raw local sockets."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from pg_ha.http1 import Connection, HttpError


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes], list[bytes]]]:
    """Answers each connection with the next canned bytes; records what it received."""
    answers: list[bytes] = []
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                received.append(data)
                if answers:
                    conn.sendall(answers.pop(0))
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], answers, received
    listener.close()


def get(port: int, body: bytes | None = None) -> tuple[Connection, object]:
    conn = Connection("127.0.0.1", port, 5)
    conn.request("POST", "/v3/kv/range", body, {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def test_content_length_body_and_request_head(raw_server: tuple[int, list[bytes], list[bytes]]) -> None:
    port, answers, received = raw_server
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello trailing junk")
    conn, resp = get(port, b'{"k":1}')
    assert resp.status == 200 and resp.headers["x-a"] == "b" and resp.read() == b"hello"  # type: ignore[attr-defined]
    conn.close()
    head = received[0].decode()
    assert head.startswith("POST /v3/kv/range HTTP/1.1\r\n") and f"Host: 127.0.0.1:{port}\r\n" in head
    assert "Content-Length: 7\r\n" in head and head.endswith('\r\n\r\n{"k":1}')


def test_chunked_stream_line_by_line(raw_server: tuple[int, list[bytes], list[bytes]]) -> None:
    port, answers, _ = raw_server
    # a line split over chunks, two lines in one chunk, chunk extensions, a trailer
    answers.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"4\r\n{\"a\"\r\n6;x=y\r\n:1}\n{}\r\n3\r\n\n\n\n\r\n0\r\nT: v\r\n\r\n")
    conn, resp = get(port)
    lines = []
    while True:
        line = resp.readline()  # type: ignore[attr-defined]
        if not line:
            break
        lines.append(line)
    assert lines == [b'{"a":1}\n', b"{}\n", b"\n", b"\n"]
    conn.close()


def test_chunked_read_and_close_delimited(raw_server: tuple[int, list[bytes], list[bytes]]) -> None:
    port, answers, _ = raw_server
    answers.append(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    answers.append(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    conn, resp = get(port)
    assert resp.status == 503 and resp.read() == b"{}"  # type: ignore[attr-defined]
    conn.close()
    conn, resp = get(port)
    assert resp.read() == b"until close"  # type: ignore[attr-defined]
    conn.close()


@pytest.mark.parametrize("answer", [
    b"", b"garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_broken_answers(raw_server: tuple[int, list[bytes], list[bytes]], answer: bytes) -> None:
    port, answers, _ = raw_server
    answers.append(answer)
    conn = Connection("127.0.0.1", port, 5)
    conn.request("POST", "/x", b"{}")
    with pytest.raises(HttpError):
        conn.getresponse().read()
    conn.close()


def test_refused_and_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        Connection("127.0.0.1", port, 1).request("GET", "/")
    with socket.socket() as silent:  # accepts (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        conn = Connection("127.0.0.1", silent.getsockname()[1], 0.3)
        conn.request("GET", "/")
        with pytest.raises(TimeoutError):
            conn.getresponse("GET")
        conn.close()


def keepalive_server(answers: int, close_after: bool) -> tuple[socket.socket, threading.Thread, list[bytes]]:
    """One connection: answers `answers` requests on it, then closes it if `close_after`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for i in range(answers):
                data = b""
                while not data.endswith(b"{}"):
                    data += conn.recv(65536)
                received.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(i)), i))
            if not close_after:
                conn.recv(1)  # hold the connection until the client closes it
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread, received


def test_connection_carries_several_requests() -> None:
    listener, thread, received = keepalive_server(3, close_after=False)
    conn = Connection("127.0.0.1", listener.getsockname()[1], 5)
    try:
        for i in range(3):
            if i:
                assert conn.usable_again(5)
            conn.request("POST", "/x", b"{}")
            resp = conn.getresponse()
            assert resp.read() == str(i).encode() and resp.keeps_connection
        assert len(received) == 3 and conn.requests == 3
    finally:
        conn.close()
        thread.join(5)
        listener.close()


def test_connection_closed_by_the_server_is_not_reused() -> None:
    listener, thread, _ = keepalive_server(1, close_after=True)
    conn = Connection("127.0.0.1", listener.getsockname()[1], 5)
    try:
        conn.request("POST", "/x", b"{}")
        assert conn.getresponse().read() == b"0"
        thread.join(5)  # the server has closed its end
        assert not conn.usable_again(5)
    finally:
        conn.close()
        listener.close()


@pytest.mark.parametrize(("answer", "keeps"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", True),
])
def test_keeps_connection_only_after_a_whole_http11_response(
        raw_server: tuple[int, list[bytes], list[bytes]], answer: bytes, keeps: bool) -> None:
    port, answers, _ = raw_server
    answers.append(answer)
    conn, resp = get(port)
    try:
        assert not resp.keeps_connection  # type: ignore[attr-defined]  # body not read yet
        assert resp.read() == b"{}"  # type: ignore[attr-defined]
        assert resp.keeps_connection is keeps  # type: ignore[attr-defined]
    finally:
        conn.close()
