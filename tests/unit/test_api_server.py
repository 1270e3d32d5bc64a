"""The REST API server on a free port with a FakeBackend over a FakeDCS: every endpoint
and method, auth, config PATCH/PUT, switchover validation and waiting, TLS, stop()."""
from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_ha.api import RestApiServer
from pg_ha.config.settings import RestApiSettings

from tests.fakes import FakeBackend, FakeDCS, make_config, replica_status, self_signed_certs, three_member_dcs

MB = 1024 * 1024
BASIC = "Basic " + base64.b64encode(b"admin:secret").decode()


class Api:
    """A running server and a tiny raw HTTP caller (independent of pg_ha.client)."""

    def __init__(self, backend: FakeBackend, settings: RestApiSettings) -> None:
        self.backend = backend
        self.dcs: FakeDCS = backend.dcs
        self.server = RestApiServer(backend, settings)
        self.server.start()

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None, timeout: float = 30) -> tuple[int, http.client.HTTPResponse, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=timeout)
        try:
            payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            conn.request(method, path, body=payload, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            content_type = response.getheader("Content-Type") or ""
            decoded: Any = data.decode()
            if "json" in content_type and data:
                decoded = json.loads(data)
            return response.status, response, decoded
        finally:
            conn.close()


def _start(backend: FakeBackend, **settings: Any) -> Api:
    return Api(backend, RestApiSettings(listen_host="127.0.0.1", listen_port=0, **settings))


@pytest.fixture()
def api() -> Iterator[Api]:
    backend = FakeBackend(three_member_dcs())
    server = _start(backend)
    yield server
    server.server.stop()


@pytest.fixture()
def auth_api() -> Iterator[Api]:
    server = _start(FakeBackend(three_member_dcs()), username="admin", password="secret")
    yield server
    server.server.stop()


# -- reads ----------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "code"), [
    ("/", 200), ("/primary", 200), ("/master", 200), ("/read-write", 200), ("/leader", 200),
    ("/standby-leader", 503), ("/replica", 503), ("/read-only", 200), ("/health", 200), ("/sync", 503),
    ("/async", 503), ("/primary?tag_x=y", 200),
])
def test_health_paths_on_primary(api: Api, path: str, code: int) -> None:
    for method in ("GET", "HEAD", "OPTIONS"):
        status, response, body = api.call(method, path)
        assert status == code, (method, path)
        if method == "GET":
            assert body["role"] == "primary" and body["patroni"]["name"] == "pg0"
        else:
            assert body == ""
    assert api.call("OPTIONS", path)[1].getheader("Content-Length") == "0"


def test_health_paths_on_replica() -> None:
    dcs = three_member_dcs(leader="pg1")
    backend = FakeBackend(dcs, status=replica_status(make_config(), received=48 * MB, replayed=40 * MB))
    dcs.set_json("optime/leader", str(48 * MB))
    backend.refresh()
    api = _start(backend)
    try:
        assert api.call("GET", "/replica")[0] == 200
        assert api.call("GET", "/replica?lag=16MB")[0] == 200
        assert api.call("GET", "/replica?lag=4MB")[0] == 503
        assert api.call("OPTIONS", "/replica?lag=1MB")[0] == 503
        assert api.call("GET", "/primary")[0] == 503
        assert api.call("GET", "/async")[0] == 200
        assert api.call("GET", "/replica?tag_nofailover=false")[0] == 200
        assert api.call("GET", "/replica?tag_dc=east")[0] == 503
        assert api.call("GET", "/readiness")[0] == 503  # 8MB behind, maximum_lag_on_failover 1MB
        assert api.call("GET", "/readiness?lag=10MB")[0] == 200
    finally:
        api.server.stop()


def test_http10_options_for_haproxy(api: Api) -> None:
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=5) as sock:
        sock.sendall(b"OPTIONS /primary HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n")  # no body, and the server closed the connection


def test_keep_alive_serves_several_requests(api: Api) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=5)
    try:
        for path in ("/patroni", "/health", "/cluster"):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()


def test_patroni_cluster_history_config_metrics(api: Api) -> None:
    code, _, status = api.call("GET", "/patroni")
    assert code == 200 and status["state"] == "running"
    code, _, cluster = api.call("GET", "/cluster")
    assert code == 200 and [m["name"] for m in cluster["members"]] == ["pg0", "pg1", "pg2"]
    assert cluster["members"][0]["role"] == "leader" and cluster["members"][1]["lag"] == 0
    api.dcs.set_json("history", [[1, 50331808, "no recovery target specified", "2024-05-01T10:00:00+00:00", "pg1"]])
    api.backend.refresh()
    assert api.call("GET", "/history")[2] == [[1, 50331808, "no recovery target specified",
                                              "2024-05-01T10:00:00+00:00", "pg1"]]
    code, _, config = api.call("GET", "/config")
    assert code == 200 and config["ttl"] == 30
    code, response, text = api.call("GET", "/metrics")
    assert code == 200 and response.getheader("Content-Type").startswith("text/plain")
    assert 'patroni_primary{scope="demo",name="pg0"} 1' in text


def test_reads_before_the_first_cycle(api: Api) -> None:
    api.backend.forget_cluster()
    assert api.call("GET", "/cluster")[0] == 503
    assert api.call("GET", "/history")[0] == 503
    assert api.call("GET", "/config")[0] == 502
    assert api.call("GET", "/primary")[0] == 503
    assert api.call("GET", "/health")[0] == 200
    assert api.call("GET", "/metrics")[0] == 200


def test_config_absent_in_dcs_is_502(api: Api) -> None:
    api.dcs.delete("config")
    api.backend.refresh()
    assert api.call("GET", "/config")[0] == 502


def test_liveness(api: Api) -> None:
    assert api.call("GET", "/liveness")[0] == 200
    api.backend.cycle_age = 31
    assert api.call("GET", "/liveness")[0] == 503
    assert api.call("HEAD", "/liveness")[0] == 503


def test_unknown_path_and_method(api: Api) -> None:
    code, _, body = api.call("GET", "/no/such/thing")
    assert code == 404 and body == "unknown path: /no/such/thing"
    code, response, _ = api.call("GET", "/switchover")
    assert code == 405 and response.getheader("Allow") == "DELETE, POST"
    assert api.call("POST", "/patroni", {})[0] == 405


# -- authentication and access ----------------------------------------------------------
def test_unsafe_methods_need_basic_auth(auth_api: Api) -> None:
    code, response, body = auth_api.call("POST", "/reload")
    assert code == 401 and body == "no auth header received"
    assert response.getheader("WWW-Authenticate") == 'Basic realm="pg_ha"'
    wrong = "Basic " + base64.b64encode(b"admin:nope").decode()
    assert auth_api.call("POST", "/reload", headers={"Authorization": wrong})[0] == 401
    assert auth_api.call("POST", "/reload", headers={"Authorization": "Bearer x"})[0] == 401
    assert auth_api.call("POST", "/reload", headers={"Authorization": "Basic !!"})[0] == 401
    assert auth_api.call("PATCH", "/config", {"ttl": 40}, headers={"Authorization": wrong})[0] == 401
    assert auth_api.call("DELETE", "/switchover")[0] == 401
    assert auth_api.backend.calls == []
    assert auth_api.call("POST", "/reload", headers={"Authorization": BASIC}) [0] == 202
    assert auth_api.backend.calls == [("reload", ())]
    # reads stay open
    assert auth_api.call("GET", "/patroni")[0] == 200
    assert auth_api.call("OPTIONS", "/primary")[0] == 200


def test_unauthenticated_bad_json_is_401_not_400(auth_api: Api) -> None:
    assert auth_api.call("PATCH", "/config", raw=b"{nope")[0] == 401


@pytest.mark.parametrize(("allowlist", "code"), [(("10.0.0.0/8",), 403), (("127.0.0.0/8",), 202),
                                                 (("127.0.0.1", "10.1.1.1"), 202), (("localhost",), 202)])
def test_allowlist(allowlist: tuple[str, ...], code: int) -> None:
    api = _start(FakeBackend(three_member_dcs()), allowlist=allowlist)
    try:
        status, _, body = api.call("POST", "/reload")
        assert status == code
        if code == 403:
            assert body == "Access is denied"
        assert api.call("GET", "/patroni")[0] == 200
    finally:
        api.server.stop()


# -- config -----------------------------------------------------------------------------
def test_patch_config_merges_and_deletes(api: Api) -> None:
    api.dcs.set_config({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True,
                        "postgresql": {"parameters": {"max_connections": 100, "work_mem": "4MB"}}})
    code, _, body = api.call("PATCH", "/config", {"ttl": 40, "pause": None,
                                                 "postgresql": {"parameters": {"work_mem": None, "x": 1}}})
    assert code == 200
    expected = {"ttl": 40, "loop_wait": 10, "retry_timeout": 10,
                "postgresql": {"parameters": {"max_connections": 100, "x": 1}}}
    assert body == expected and api.dcs.value("config") == expected
    assert api.backend.wakeups == 1


def test_patch_config_unchanged_does_not_write(api: Api) -> None:
    writes = len(api.dcs.writes)
    assert api.call("PATCH", "/config", {"ttl": 30})[0] == 200
    assert len(api.dcs.writes) == writes


def test_patch_config_cas_conflict_is_409(api: Api) -> None:
    dcs = api.dcs
    original = dcs.set_config_value

    def racing(value: str, version: int | None = None) -> bool:
        dcs.set_config({"ttl": 60, "loop_wait": 10, "retry_timeout": 10})  # someone else wrote first
        return original(value, version)

    dcs.set_config_value = racing  # type: ignore[method-assign]
    code, _, body = api.call("PATCH", "/config", {"ttl": 45})
    assert code == 409 and "changed by someone else" in body
    assert dcs.value("config")["ttl"] == 60


@pytest.mark.parametrize(("body", "raw", "code", "message"), [
    ({"ttl": 10 ** 31}, None, 400, "config.ttl: must be <= 1000000000"),
    ({"loop_wait": "10"}, None, 400, "loop_wait must be an integer, got '10'"),
    ({"maximum_lag_on_failover": 1.5}, None, 400, "maximum_lag_on_failover must be an integer, got 1.5"),
    (None, b"{not json", 400, "request body is not valid JSON"),
    (None, b"[1, 2]", 400, "request body must be a JSON object"),
    (None, b"{}", 400, "request body must be a non-empty JSON object"),
    (None, b"", 400, "request body must be a JSON object"),
    (None, b"\xff\xfe", 400, "request body is not valid JSON"),
])
def test_patch_config_bad_input(api: Api, body: Any, raw: bytes | None, code: int, message: str) -> None:
    status, _, text = api.call("PATCH", "/config", body, raw=raw)
    assert status == code and text.startswith(message)
    assert api.dcs.value("config")["ttl"] == 30


def test_patch_config_without_config_key_is_503(api: Api) -> None:
    api.dcs.delete("config")
    assert api.call("PATCH", "/config", {"ttl": 40})[0] == 503


def test_put_config_replaces(api: Api) -> None:
    new = {"ttl": 20, "loop_wait": 2, "retry_timeout": 5, "postgresql": {"use_pg_rewind": True}}
    code, _, body = api.call("PUT", "/config", new)
    assert code == 200 and body == new and api.dcs.value("config") == new
    assert api.call("PUT", "/config", {"ttl": "ten"})[0] == 400
    # a ttl Patroni runs with (raised to 20, loop_wait and retry_timeout adjusted) is stored as given
    assert api.call("PUT", "/config", {"ttl": 10})[0] == 200 and api.dcs.value("config") == {"ttl": 10}
    api.dcs.delete("config")
    assert api.call("PUT", "/config", new)[0] == 200 and api.dcs.value("config") == new


def test_dcs_error_in_unsafe_handler_is_503(api: Api) -> None:
    api.dcs.fail_with = "etcd cluster unavailable"
    code, _, body = api.call("PATCH", "/config", {"ttl": 40})
    assert (code, body) == (503, "DCS error: etcd cluster unavailable")
    assert api.call("POST", "/switchover", {"leader": "pg0"})[0] == 503
    assert api.call("GET", "/patroni")[0] == 200  # reads use the last snapshot


def test_unexpected_exception_is_500_and_server_keeps_serving(api: Api) -> None:
    def boom() -> tuple[int, str]:
        raise RuntimeError("kaput\nsecond line")

    api.backend.reload = boom  # type: ignore[method-assign]
    code, _, body = api.call("POST", "/reload")
    assert (code, body) == (500, "internal error: RuntimeError: kaput second line")
    assert api.call("GET", "/health")[0] == 200


def test_oversized_and_chunked_bodies(api: Api) -> None:
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=5) as sock:
        sock.sendall(b"PATCH /config HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 * MB))
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=5) as sock:
        sock.sendall(b"PATCH /config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b'b\r\n{"ttl": 40}\r\n0\r\n\r\n')
        assert sock.recv(4096).startswith(b"HTTP/1.1 411 ")
    assert api.dcs.value("config")["ttl"] == 30


# -- switchover / failover ----------------------------------------------------------------
def _promote_later(dcs: FakeDCS, name: str, delay: float = 0.3) -> None:
    """Play the HA loops: when the failover key appears, hand the lock to ``name``."""

    def flip() -> None:
        dcs.set_leader(None)
        dcs.set_member("pg0", role="replica")
        dcs.set_member(name, role="primary")
        dcs.set_leader(name)
        dcs.delete("failover")

    def hook(_dcs: FakeDCS, key: str, value: str) -> None:
        if key == "failover" and value:
            threading.Timer(delay, flip).start()

    dcs.on_write.append(hook)


def test_switchover_waits_for_the_new_leader(api: Api) -> None:
    _promote_later(api.dcs, "pg1")
    code, _, body = api.call("POST", "/switchover", {"leader": "pg0", "candidate": "pg1"})
    assert (code, body) == (200, 'Successfully switched over to "pg1"')
    assert api.backend.wakeups == 1
    assert ("failover", '{"leader":"pg0","member":"pg1"}') in api.dcs.writes


def test_switchover_without_candidate(api: Api) -> None:
    _promote_later(api.dcs, "pg2")
    assert api.call("POST", "/switchover", {"leader": "pg0"})[2] == 'Successfully switched over to "pg2"'


def test_failover_to_candidate(api: Api) -> None:
    _promote_later(api.dcs, "pg2")
    assert api.call("POST", "/failover", {"candidate": "pg2"}) [2] == 'Successfully failed over to "pg2"'


def test_switchover_timeout_is_503_with_what_was_seen(api: Api) -> None:
    code, _, body = api.call("POST", "/switchover?timeout=1", {"leader": "pg0", "candidate": "pg1"})
    assert code == 503
    assert body == ('Switchover failed: no result after 1s; "pg0" holds the leader lock'
                    " (state=running, role=primary); the failover key is still present")
    code, _, body = api.call("POST", "/switchover", {"leader": "pg0", "candidate": "pg1", "timeout": "1s"})
    assert code == 503 and "status unknown" not in body


@pytest.mark.parametrize(("path", "body", "code", "message"), [
    ("/switchover", {"leader": "pg1", "candidate": "pg2"}, 412, "leader name does not match"),
    ("/switchover", {"leader": "pg0", "candidate": "pg7"}, 412, "candidate pg7 does not exist"),
    ("/switchover", {"candidate": "pg1"}, 400, "Switchover could be performed only from a specific leader"),
    ("/switchover", {"leader": "pg0", "candidate": "pg0"}, 400, "Switchover target and source are the same"),
    ("/switchover", {"leader": "pg0", "scheduled_at": "2020-01-01T00:00:00+00:00"}, 422,
     "Cannot schedule switchover in the past"),
    ("/switchover", {"leader": "pg0", "scheduled_at": "2999-01-01T00:00:00"}, 400,
     "Timezone information is mandatory for the scheduled switchover"),
    ("/switchover", "leader", 400, "request body must be a JSON object"),
    ("/failover", {"leader": "pg0"}, 400, "Failover could be performed only to a specific candidate"),
    ("/failover", {"candidate": "pg9"}, 412, "candidate pg9 does not exist"),
])
def test_switchover_validation(api: Api, path: str, body: Any, code: int, message: str) -> None:
    assert api.call("POST", path, body)[0:3:2] == (code, message)
    assert "failover" not in api.dcs.keys


def test_switchover_to_unhealthy_candidate(api: Api) -> None:
    api.dcs.set_member("pg1", state="stopped")
    api.dcs.set_member("pg2", tags={"nofailover": True})
    assert api.call("POST", "/switchover", {"leader": "pg0", "candidate": "pg1"})[0:3:2] == \
        (412, "switchover is not possible: no good candidates have been found")  # Patroni's exact text
    assert api.call("POST", "/failover", {"candidate": "pg2"})[0:3:2] == \
        (412, "failover is not possible: no good candidates have been found")
    assert api.call("POST", "/switchover", {"leader": "pg0"})[0:3:2] == \
        (412, "switchover is not possible: no good candidates have been found")


def test_switchover_in_pause_needs_candidate(api: Api) -> None:
    api.dcs.set_config({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True})
    assert api.call("POST", "/switchover", {"leader": "pg0"})[0:3:2] == \
        (400, "Switchover is possible only to a specific candidate in a paused state")


def test_scheduled_switchover_and_delete(api: Api) -> None:
    code, _, body = api.call("POST", "/switchover", {"leader": "pg0", "candidate": "pg1",
                                                     "scheduled_at": "2999-01-01T10:00:00+02:00"})
    assert (code, body) == (202, "Switchover scheduled")
    assert api.dcs.value("failover") == {"leader": "pg0", "member": "pg1", "scheduled_at": "2999-01-01T10:00:00+02:00"}
    api.backend.refresh()
    assert api.call("GET", "/cluster")[2]["scheduled_switchover"] == {
        "at": "2999-01-01T10:00:00+02:00", "from": "pg0", "to": "pg1"}
    assert api.call("DELETE", "/switchover")[0:3:2] == (200, "scheduled switchover deleted")
    assert "failover" not in api.dcs.keys
    assert api.call("DELETE", "/switchover")[0:3:2] == (404, "no switchover is scheduled")


# -- restart / reload / reinitialize ---------------------------------------------------------
def test_restart_passes_filters(api: Api) -> None:
    code, _, body = api.call("POST", "/restart", {"restart_pending": True, "role": "master",
                                                  "postgres_version": "15.2", "timeout": "30s"})
    assert (code, body) == (200, "restarted successfully")
    assert api.backend.calls == [("restart", (None, "15.2", "primary", True, 30.0))]
    assert api.call("POST", "/restart")[0] == 200  # body optional
    assert api.backend.calls[-1] == ("restart", (None, None, None, False, None))
    code, _, _ = api.call("POST", "/restart", {"schedule": "2999-01-01T00:00:00+00:00"})
    scheduled = api.backend.calls[-1][1][0]
    assert code == 200 and scheduled.year == 2999 and scheduled.tzinfo is not None


@pytest.mark.parametrize(("body", "code", "message"), [
    ({"role": "leader"}, 400, "PostgreSQL role should be either primary, standby_leader, or replica"),
    ({"postgres_version": "fifteen"}, 400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: fifteen"),
    ({"timeout": -1}, 400, "Timeout should be a positive number of seconds"),
    ({"restart_pending": "perhaps"}, 400, "restart_pending must be a boolean"),
    ({"when": "now"}, 400, "Unknown filter for the scheduled restart: when"),
    ({"schedule": "2000-01-01T00:00:00+00:00"}, 422, "Cannot schedule restart in the past"),
    ({"schedule": "2999-01-01T00:00:00"}, 400, "Timezone information is mandatory for the scheduled restart"),
])
def test_restart_bad_input(api: Api, body: dict[str, Any], code: int, message: str) -> None:
    assert api.call("POST", "/restart", body)[0:3:2] == (code, message)
    assert api.backend.calls == []


def test_restart_schedule_refused_in_pause(api: Api) -> None:
    api.dcs.set_config({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True})
    api.backend.refresh()
    assert api.call("POST", "/restart", {"schedule": "2999-01-01T00:00:00+00:00"})[0:3:2] == \
        (400, "Can't schedule restart in the paused state")


def test_delete_restart_reload_reinitialize(api: Api) -> None:
    assert api.call("DELETE", "/restart")[0:3:2] == (404, "no restarts are scheduled")
    api.backend.answers["cancel_scheduled_restart"] = (200, "scheduled restart deleted")
    assert api.call("DELETE", "/restart")[0] == 200
    assert api.call("POST", "/reload")[0:3:2] == (202, "reload scheduled")
    assert api.call("POST", "/reinitialize", {"force": True})[0:3:2] == (200, "reinitialize started")
    assert api.call("POST", "/reinitialize")[0] == 200
    assert api.call("POST", "/reinitialize", {"force": "sure"})[0] == 400
    assert [c for c in api.backend.calls if c[0] == "reinitialize"] == [
        ("reinitialize", (True, False)), ("reinitialize", (False, False))]


# -- lifecycle and TLS ----------------------------------------------------------------------
def test_stop_closes_the_listener() -> None:
    api = _start(FakeBackend(three_member_dcs()))
    port = api.server.port
    assert api.call("GET", "/health")[0] == 200
    api.server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    api.server.stop()  # idempotent


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    return self_signed_certs(tmp_path_factory.mktemp("certs"))


def _tls_get(port: int, certs: dict[str, str], client_cert: bool, method: str = "GET",
             path: str = "/patroni") -> int:
    context = ssl.create_default_context(cafile=certs["server.crt"])
    if client_cert:
        context.load_cert_chain(certs["client.crt"], certs["client.key"])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request(method, path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_tls_server(certs: dict[str, str]) -> None:
    api = _start(FakeBackend(three_member_dcs()), certfile=certs["server.crt"], keyfile=certs["server.key"])
    try:
        assert _tls_get(api.server.port, certs, client_cert=False) == 200
        with pytest.raises(http.client.HTTPException):  # plain HTTP to a TLS port gets no HTTP answer
            api.call("GET", "/patroni", timeout=3)
    finally:
        api.server.stop()


def test_tls_client_certificate_required(certs: dict[str, str]) -> None:
    api = _start(FakeBackend(three_member_dcs()), certfile=certs["server.crt"], keyfile=certs["server.key"],
                 cafile=certs["client.crt"], verify_client="required")
    try:
        assert _tls_get(api.server.port, certs, client_cert=True) == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _tls_get(api.server.port, certs, client_cert=False)
        assert _tls_get(api.server.port, certs, client_cert=True) == 200  # still serving
    finally:
        api.server.stop()


def test_tls_client_certificate_optional(certs: dict[str, str]) -> None:
    api = _start(FakeBackend(three_member_dcs()), certfile=certs["server.crt"], keyfile=certs["server.key"],
                 cafile=certs["client.crt"], verify_client="optional")
    try:
        assert _tls_get(api.server.port, certs, client_cert=False) == 200  # reads stay open
        assert _tls_get(api.server.port, certs, client_cert=False, method="POST", path="/reload") == 403
        assert _tls_get(api.server.port, certs, client_cert=True, method="POST", path="/reload") == 202
    finally:
        api.server.stop()


def test_bad_verify_client_value(certs: dict[str, str]) -> None:
    server = RestApiServer(FakeBackend(three_member_dcs()), RestApiSettings(
        listen_port=0, certfile=certs["server.crt"], keyfile=certs["server.key"], verify_client="sometimes"))
    with pytest.raises(ValueError, match="verify_client must be none, optional or required"):
        server.start()


def test_tmp_cert_paths_exist(certs: dict[str, str]) -> None:
    assert all(Path(path).is_file() for path in certs.values())


def test_listen_errors() -> None:
    busy = _start(FakeBackend(three_member_dcs()))
    try:
        clash = RestApiServer(busy.backend, RestApiSettings(listen_host="127.0.0.1", listen_port=busy.server.port))
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{busy.server.port}"):
            clash.start()
    finally:
        busy.server.stop()
    unresolvable = RestApiServer(busy.backend, RestApiSettings(listen_host="no-such-host.invalid", listen_port=0))
    with pytest.raises(OSError, match="cannot resolve the REST API listen address no-such-host.invalid"):
        unresolvable.start()


@pytest.mark.parametrize(("allowlist", "member_host", "code"), [
    ((), "127.0.0.1", 202),              # the request comes from a member's REST API address
    ((), "10.9.9.9", 403),               # members only, and we are none of them
    (("10.0.0.0/8",), "10.9.9.9", 403),
    (("127.0.0.0/8",), "10.9.9.9", 202),  # the allowlist still counts
    ((), "localhost", 202),              # member host names are resolved
])
def test_allowlist_include_members(allowlist: tuple[str, ...], member_host: str, code: int) -> None:
    dcs = three_member_dcs()
    for index, name in enumerate(("pg0", "pg1", "pg2")):
        dcs.set_member(name, role="primary" if name == "pg0" else "replica", lsn=50331648,
                       api_url=f"http://{member_host}:{8008 + index}/patroni")
    backend = FakeBackend(dcs)
    backend.refresh()
    api = _start(backend, allowlist=allowlist, allowlist_include_members=True)
    try:
        assert api.call("POST", "/reload")[0] == code
        assert api.call("GET", "/patroni")[0] == 200
    finally:
        api.server.stop()


def test_put_config_stores_the_body_as_given_and_refuses_what_etcd_cannot_hold(api: Api) -> None:
    """As Patroni: PUT writes the body as it is (a null is a default, or a physical slot)."""
    with_null = {"ttl": 20, "loop_wait": 2, "retry_timeout": 5, "postgresql": {"use_slots": None},
                 "slots": {"s1": None}}
    code, _, body = api.call("PUT", "/config", with_null)
    stored = with_null
    assert code == 200 and body == stored and api.dcs.value("config") == stored
    code, _, body = api.call("PUT", "/config", {"ttl": 10 ** 31, "loop_wait": 2, "retry_timeout": 5})
    assert code == 400 and "config.ttl: must be <= 1000000000" in str(body)
    assert api.dcs.value("config") == stored
