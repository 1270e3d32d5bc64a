"""docs/openapi.yaml against the server: same routes, documented status codes, and live
responses that match the documented content types and JSON schemas."""
from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pg_ha.api import RestApiServer, routes
from pg_ha.config.settings import RestApiSettings

from tests.fakes import FakeBackend, make_config, replica_status, three_member_dcs

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "head", "options", "patch", "put", "post", "delete")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(DOC_PATH.read_text())


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """``node`` with every local $ref inlined (the document has no recursive schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(doc, target)
        return {key: _resolve(doc, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, value) for value in node]
    return node


def test_document_basics(doc: dict[str, Any]) -> None:
    assert str(doc["openapi"]).startswith("3.0")
    assert doc["info"]["title"] and doc["info"]["version"]
    for method, path, operation in _operations(doc):
        assert operation["responses"], (method, path)
        for code in operation["responses"]:
            assert str(code).isdigit() and len(str(code)) == 3, (method, path, code)
    _resolve(doc, doc["paths"])  # every $ref resolves


def test_every_route_is_documented_and_vice_versa(doc: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in _operations(doc)}
    implemented = set(routes.ROUTES)
    assert implemented - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - implemented == set(), "documented routes the server does not implement"


def test_unsafe_operations_document_auth_errors(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        if method in routes.UNSAFE_METHODS:
            assert {"401", "403"} <= set(map(str, operation["responses"])), (method, path)
            assert operation.get("security"), (method, path)


def test_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    import openapi_spec_validator as validator
    validator.validate(doc)


# -- live responses --------------------------------------------------------------------------
class Live:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.backend = FakeBackend(three_member_dcs())
        self.server = RestApiServer(self.backend, RestApiSettings(listen_host="127.0.0.1", listen_port=0))
        self.server.start()
        self.checked: set[tuple[str, str, int]] = set()

    def check(self, method: str, target: str, body: Any = None) -> tuple[int, Any]:
        """Send the request; assert the status code, content type and JSON schema are documented."""
        import jsonschema
        path = routes.normalize_path(target.split("?", 1)[0])
        operation = self.doc["paths"][path][method.lower()]
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, target, body=None if body is None else json.dumps(body).encode())
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        code = response.status
        responses = operation["responses"]
        assert str(code) in map(str, responses), f"{method} {target} answered undocumented {code}"
        documented = _resolve(self.doc, responses.get(code) or responses.get(str(code)))
        content = documented.get("content", {})
        if not raw:
            return code, None
        assert content, f"{method} {target} {code}: body sent but none documented"
        content_type = (response.getheader("Content-Type") or "").split(";")[0]
        assert content_type in content, f"{method} {target} {code}: {content_type} not in {list(content)}"
        payload: Any = raw.decode()
        if content_type == "application/json":
            payload = json.loads(raw)
        jsonschema.validate(payload, content[content_type]["schema"])
        self.checked.add((method, path, code))
        return code, payload


@pytest.fixture()
def live(doc: dict[str, Any]) -> Iterator[Live]:
    node = Live(doc)
    yield node
    node.server.stop()


def test_live_reads(live: Live) -> None:
    for target in routes.HEALTH_PATHS + ("/replica?lag=1MB&tag_dc=x", "/patroni", "/cluster", "/history",
                                         "/config", "/metrics", "/liveness", "/readiness"):
        for method in ("GET", "HEAD", "OPTIONS"):
            live.check(method, target)
    live.backend.replace_status(replica_status(make_config(), received=10, replayed=5))
    assert live.check("GET", "/readiness")[0] == 503
    assert live.check("GET", "/replica")[0] == 503  # still in the leader key: pg0 holds the lock
    live.backend.forget_cluster()
    assert live.check("GET", "/cluster")[0] == 503
    assert live.check("GET", "/history")[0] == 503
    assert live.check("GET", "/config")[0] == 502
    assert live.check("GET", "/failsafe")[0] == 502  # failsafe_mode off
    live.backend.config = live.backend.config.with_dynamic(replace(live.backend.config.dynamic, failsafe_mode=True))
    assert live.check("GET", "/failsafe")[0] == 502  # on, but no failsafe key yet
    live.backend.dcs.write_failsafe({"pg0": "http://127.0.0.1:8008/patroni"})
    live.backend.refresh()
    assert live.check("GET", "/failsafe") == (200, {"pg0": "http://127.0.0.1:8008/patroni"})
    for method in ("HEAD", "OPTIONS"):
        assert live.check(method, "/failsafe")[0] == 200
    live.backend.cycle_age = 1000
    assert live.check("GET", "/liveness")[0] == 503


def test_live_cluster_schema_with_everything(live: Live) -> None:
    dcs = live.backend.dcs
    dcs.set_config({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": True, "synchronous_mode": True})
    dcs.set_json("sync", {"leader": "pg0", "sync_standby": "pg1"})
    dcs.set_member("pg2", lsn=0, tags={"nofailover": True}, pending_restart=True)
    dcs.manual_failover("pg0", "pg1", scheduled_at=None)
    live.backend.refresh()
    code, body = live.check("GET", "/cluster")
    assert code == 200 and body["pause"] is True
    assert {m["role"] for m in body["members"]} == {"leader", "sync_standby", "replica"}


def test_live_writes(live: Live) -> None:
    assert live.check("PATCH", "/config", {"ttl": 40, "pause": True})[0] == 200
    assert live.check("PATCH", "/config", {"ttl": "one"})[0] == 400
    assert live.check("PATCH", "/config", {"ttl": 1})[0] == 200  # adjusted as Patroni does, not refused
    assert live.check("PATCH", "/config", [1])[0] == 400
    assert live.check("PUT", "/config", {"ttl": 30, "loop_wait": 10, "retry_timeout": 10})[0] == 200
    assert live.check("POST", "/switchover", {"leader": "pg9"})[0] == 412
    assert live.check("POST", "/switchover", {"leader": "pg0", "scheduled_at": "2000-01-01T00:00:00+00:00"})[0] == 422
    assert live.check("POST", "/switchover", {"leader": "pg0", "scheduled_at": "2999-01-01T00:00:00+00:00"})[0] == 202
    assert live.check("DELETE", "/switchover")[0] == 200
    assert live.check("DELETE", "/switchover")[0] == 404
    assert live.check("POST", "/switchover?timeout=0.3", {"leader": "pg0", "candidate": "pg1"})[0] == 503
    live.backend.dcs.delete("failover")
    assert live.check("POST", "/failover", {"leader": "pg0"})[0] == 400
    assert live.check("POST", "/failover", {"candidate": "pg7"})[0] == 412
    assert live.check("POST", "/restart", {"role": "replica"})[0] == 200
    assert live.check("POST", "/restart", {"nope": 1})[0] == 400
    assert live.check("DELETE", "/restart")[0] == 404
    assert live.check("POST", "/reload")[0] == 202
    assert live.check("POST", "/reinitialize", {"force": True})[0] == 200
    assert live.check("POST", "/failsafe", {"name": "pg1"})[0] == 502  # failsafe_mode off
    live.backend.config = live.backend.config.with_dynamic(replace(live.backend.config.dynamic, failsafe_mode=True))
    assert live.check("POST", "/failsafe", {"name": "pg1", "lsn": 5})[0] == 500  # we run as a primary
    live.backend.replace_status(replica_status(make_config()))
    accepted = live.check("POST", "/failsafe", {"name": "pg1", "api_url": "http://127.0.0.1:1/patroni"})
    assert accepted == (200, "Accepted")
    assert live.check("POST", "/failsafe", {"lsn": 5})[0] == 400
    assert live.check("POST", "/failsafe")[0] == 400
    live.backend.dcs.fail_with = "etcd down"
    assert live.check("PATCH", "/config", {"ttl": 40})[0] == 503
