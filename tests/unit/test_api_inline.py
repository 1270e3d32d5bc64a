"""pg_ha.api.inline: which accepted connections the accept loop answers itself."""
from __future__ import annotations

import socket
import threading

import pytest
from pg_ha.api import RestApiServer
from pg_ha.api import server as server_mod
from pg_ha.api.inline import answer_inline
from pg_ha.config.settings import RestApiSettings

from tests.fakes import FakeBackend, three_member_dcs


@pytest.mark.parametrize(("peeked", "inline"), [
    (b"OPTIONS /primary HTTP/1.0\r\n\r\n", True),  # HAProxy's check
    (b"OPTIONS /primary HTTP/1.0\r\nHost: a\r\n\r\n", True),
    (b"GET /replica?lag=10MB HTTP/1.0\r\n\r\n", True),
    (b"HEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n", True),
    (b"GET /patroni HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", True),
    (b"GET /liveness HTTP/1.0\r\n\r\n", True),
    (b"GET /readiness HTTP/1.0\r\n\r\n", True),
    (b"GET /primary HTTP/1.1\r\nHost: a\r\n\r\n", False),  # keep-alive: a worker holds it
    (b"GET /primary HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
    (b"OPTIONS /primary HTTP/1.0\r\n", False),  # head not complete yet
    (b"", False),
    (b"GET /primary HTTP/1.0\r\n\r\nGET /primary HTTP/1.0\r\n\r\n", False),  # pipelined
    (b"GET /cluster HTTP/1.0\r\n\r\n", False),  # not a check
    (b"GET /config HTTP/1.0\r\n\r\n", False),
    (b"GET /metrics HTTP/1.0\r\n\r\n", False),
    (b"POST /switchover HTTP/1.0\r\n\r\n", False),
    (b"DELETE /primary HTTP/1.0\r\n\r\n", False),
    (b"GET /primary HTTP/1.0\r\nContent-Length: 5\r\n\r\n", False),
    (b"GET /primary HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    (b"GET /primary HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", False),
    (b"GET /nothing HTTP/1.0\r\n\r\n", False),
    (b"GET /primary HTTP/9.0\r\n\r\n", False),  # errors go the usual way
    (b"GET /primary\r\n\r\n", False),
    (b"GET /primary HTTP/1.0\r\nX: " + b"a" * 5000 + b"\r\n\r\n", False),
])
def test_answer_inline(peeked: bytes, inline: bool) -> None:
    assert answer_inline(peeked) is inline


def test_checks_are_answered_by_the_accept_loop_and_kept_alive_clients_by_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    to_workers: list[object] = []
    real = server_mod._HttpServer.process_request
    real_accept = server_mod._HttpServer.get_request
    sent = threading.Semaphore(0)  # the accept waits until the client's bytes were sent

    def counting(self: server_mod._HttpServer, request: object, client_address: object) -> None:
        to_workers.append(request)
        real(self, request, client_address)

    def accept_after_send(self: server_mod._HttpServer) -> object:
        assert sent.acquire(timeout=5)
        return real_accept(self)
    monkeypatch.setattr(server_mod._HttpServer, "process_request", counting)
    monkeypatch.setattr(server_mod._HttpServer, "get_request", accept_after_send)
    api = RestApiServer(FakeBackend(three_member_dcs()), RestApiSettings(listen_host="127.0.0.1", listen_port=0))
    api.start()
    try:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
                s.sendall(b"OPTIONS /primary HTTP/1.0\r\n\r\n")
                sent.release()
                answer = b""
                while chunk := s.recv(4096):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
        # a check received whole before the accept is answered by the accept loop itself
        assert to_workers == []
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as held:
            held.sendall(b"GET /patroni HTTP/1.1\r\n\r\n")
            sent.release()
            assert held.recv(65536).startswith(b"HTTP/1.1 200")
            assert len(to_workers) == 1  # the kept-alive connection went to a worker
            # which does not stop the accept loop from answering the next check at once
            with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
                s.sendall(b"OPTIONS /replica HTTP/1.0\r\n\r\n")
                sent.release()
                assert s.recv(4096).startswith(b"HTTP/1.1 ")
            assert len(to_workers) == 1
            held.sendall(b"GET /patroni HTTP/1.1\r\n\r\n")
            assert held.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        api.stop()
    assert not [t for t in threading.enumerate() if t.name == "pg_ha-restapi"]
