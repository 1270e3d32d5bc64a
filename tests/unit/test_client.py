"""pg_ha.client against the real REST API server (FakeBackend) and against broken peers."""
from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pg_ha.api import RestApiServer
from pg_ha.client import PgHaClient, PgHaClientError, base_url_from_api_url
from pg_ha.config.settings import RestApiSettings

from tests.fakes import FakeBackend, FakeDCS, self_signed_certs, three_member_dcs


class Running:
    def __init__(self, **settings: Any) -> None:
        self.backend = FakeBackend(three_member_dcs())
        self.dcs: FakeDCS = self.backend.dcs
        self.server = RestApiServer(self.backend, RestApiSettings(listen_host="127.0.0.1", listen_port=0,
                                                                  **settings))
        self.server.start()

    @property
    def url(self) -> str:
        return f"{self.server.settings.scheme}://127.0.0.1:{self.server.port}"


@pytest.fixture()
def running() -> Iterator[Running]:
    node = Running()
    yield node
    node.server.stop()


@pytest.fixture()
def client(running: Running) -> PgHaClient:
    return PgHaClient(running.url, timeout=5)


@pytest.mark.parametrize(("api_url", "base"), [
    ("http://h:8008/patroni", "http://h:8008"),
    ("https://10.0.0.1:8443/patroni", "https://10.0.0.1:8443"),
    ("http://[::1]:8008/patroni", "http://[::1]:8008"),
    ("h:8008/patroni", "http://h:8008"),
    ("http://h:8008", "http://h:8008"),
])
def test_base_url_from_api_url(api_url: str, base: str) -> None:
    assert base_url_from_api_url(api_url) == base


@pytest.mark.parametrize("url", ["ftp://h:1", "http://", "http://h:notaport"])
def test_invalid_base_url(url: str) -> None:
    with pytest.raises(PgHaClientError):
        PgHaClient(url)


def test_reads(client: PgHaClient) -> None:
    status, body = client.get_status()
    assert status == 200 and body["role"] == "primary"
    status, body = client.get_cluster()
    assert status == 200 and [m["name"] for m in body["members"]] == ["pg0", "pg1", "pg2"]
    assert client.get_config()[1]["ttl"] == 30
    assert client.get_history() == (200, [])
    assert client.health("/primary") == 200
    assert client.health("/replica?lag=1MB") == 503
    status, text = client.request("GET", "/metrics")
    assert status == 200 and isinstance(text, str) and "patroni_primary" in text
    assert client.request("GET", "/nowhere") == (404, "unknown path: /nowhere")


def test_config_changes(running: Running, client: PgHaClient) -> None:
    assert client.patch_config({"ttl": 40})[1]["ttl"] == 40
    assert running.dcs.value("config")["ttl"] == 40
    assert client.patch_config({"ttl": "5"}) == (400, "ttl must be an integer, got '5'")
    # Patroni runs with ttl 5 (raised to 20, the others adjusted by every member): stored as given
    assert client.patch_config({"ttl": 5})[1]["ttl"] == 5
    new = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
    assert client.put_config(new) == (200, new)


def test_switchover_and_failover(running: Running, client: PgHaClient) -> None:
    def hook(dcs: FakeDCS, key: str, value: str) -> None:
        if key == "failover" and value and "scheduled_at" not in value:
            def flip() -> None:
                target = "pg1" if dcs.value("leader") == "pg0" else "pg0"
                old = dcs.value("leader")
                dcs.set_member(old, role="replica")
                dcs.set_member(target, role="primary")
                dcs.set_leader(target)
                dcs.delete("failover")
            threading.Timer(0.2, flip).start()

    running.dcs.on_write.append(hook)
    assert client.switchover("pg0", "pg1") == (200, 'Successfully switched over to "pg1"')
    assert client.failover("pg0", timeout=20) == (200, 'Successfully failed over to "pg0"')
    assert client.switchover("pg1") == (412, "leader name does not match")
    when = datetime(2999, 1, 1, tzinfo=UTC)
    assert client.switchover("pg0", "pg2", scheduled_at=when) == (202, "Switchover scheduled")
    assert running.dcs.value("failover")["scheduled_at"] == "2999-01-01T00:00:00+00:00"
    assert client.cancel_switchover() == (200, "scheduled switchover deleted")
    assert client.cancel_switchover() == (404, "no switchover is scheduled")


def test_switchover_timeout_is_sent(running: Running, client: PgHaClient) -> None:
    status, body = client.switchover("pg0", "pg1", timeout=0.5)
    assert status == 503 and body.startswith("Switchover failed: no result after 0.5s")


def test_local_operations(running: Running, client: PgHaClient) -> None:
    assert client.restart(restart_pending=True, role="replica", postgres_version="15.2", timeout=30) == \
        (200, "restarted successfully")
    assert running.backend.calls[-1] == ("restart", (None, "15.2", "replica", True, 30.0))
    client.restart(schedule=datetime(2999, 1, 1, tzinfo=UTC))
    assert running.backend.calls[-1][1][0] == datetime(2999, 1, 1, tzinfo=UTC)
    assert client.cancel_restart() == (404, "no restarts are scheduled")
    assert client.reload() == (202, "reload scheduled")
    assert client.reinitialize(force=True, from_leader=True) == (200, "reinitialize started")
    assert running.backend.calls[-1] == ("reinitialize", (True, True))


def test_basic_auth() -> None:
    node = Running(username="admin", password="s3cret")
    try:
        assert PgHaClient(node.url).reload() == (401, "no auth header received")
        assert PgHaClient(node.url, "admin", "wrong").reload() == (401, "not authenticated")
        assert PgHaClient(node.url, "admin", "s3cret").reload() == (202, "reload scheduled")
    finally:
        node.server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    port = _free_port()
    with pytest.raises(PgHaClientError) as err:
        PgHaClient(f"http://127.0.0.1:{port}").get_status()
    assert err.value.message == f"cannot connect to http://127.0.0.1:{port}: connection refused"
    assert "\n" not in str(err.value)


def test_unresolvable_host() -> None:
    with pytest.raises(PgHaClientError, match="cannot resolve no-such-host.invalid"):
        PgHaClient("http://no-such-host.invalid:8008", timeout=5).get_status()


class SilentPeer:
    """Accepts connections; answers nothing, or a fixed garbage line."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                if self.answer is not None:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                    conn.close()
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_timeout() -> None:
    peer = SilentPeer()
    try:
        with pytest.raises(PgHaClientError) as err:
            PgHaClient(f"http://127.0.0.1:{peer.port}", timeout=0.3).get_status()
        assert err.value.message == f"GET http://127.0.0.1:{peer.port}/patroni timed out after 0.3s"
    finally:
        peer.close()


def test_garbage_answer() -> None:
    peer = SilentPeer(b"SSH-2.0-OpenSSH_9.2\r\n")
    try:
        with pytest.raises(PgHaClientError, match="invalid HTTP answer from"):
            PgHaClient(f"http://127.0.0.1:{peer.port}", timeout=2).get_status()
    finally:
        peer.close()


def test_text_and_bad_json_bodies() -> None:
    assert PgHaClient._decode(b'{"a": 1}', "application/json") == {"a": 1}
    assert PgHaClient._decode(b"{broken", "application/json") == "{broken"
    assert PgHaClient._decode(b"ok", "text/plain") == "ok"
    assert PgHaClient._decode(b"", "application/json") == ""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    return self_signed_certs(tmp_path_factory.mktemp("client-certs"))


def test_https(certs: dict[str, str]) -> None:
    node = Running(certfile=certs["server.crt"], keyfile=certs["server.key"], cafile=certs["client.crt"],
                   verify_client="optional")
    try:
        assert PgHaClient(node.url, cafile=certs["server.crt"]).get_status()[0] == 200
        assert PgHaClient(node.url, verify=False).get_status()[0] == 200
        with pytest.raises(PgHaClientError, match="TLS error talking to"):
            PgHaClient(node.url, cafile=certs["client.crt"]).get_status()  # wrong CA
        assert PgHaClient(node.url, verify=False).reload() == (403, "client certificate required")
        with_cert = PgHaClient(node.url, cafile=certs["server.crt"], certfile=certs["client.crt"],
                               keyfile=certs["client.key"])
        assert with_cert.reload() == (202, "reload scheduled")
        with pytest.raises(PgHaClientError, match="cannot load the TLS files"):
            PgHaClient(node.url, cafile="/nonexistent/ca.crt").get_status()
    finally:
        node.server.stop()


def test_client_module_imports_only_stdlib() -> None:
    import ast
    import sys
    from pathlib import Path

    import pg_ha.client as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
