"""A locked-down REST API on real members (real etcd, real PostgreSQL 15):

- basic auth on every unsafe method (401 + WWW-Authenticate without it), reads stay open;
- restapi.allowlist + allowlist_include_members: unsafe requests from other sources get 403
  (sources are picked with the client's source address inside 127.0.0.0/8);
- TLS with a CA made by the openssl CLI and verify_client: required: no client certificate,
  no connection; pg_hactl with the ctl section's certificates and credentials works;
- secrets: the superuser/replication passwords never appear on a command line (sampled from
  /proc while a replica is cloned), in the daemon logs, in REST answers, in primary_conninfo.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pg_ha.client import PgHaClient, PgHaClientError

from tests.harness.cluster import REPLICATION_PASSWORD, SUPERUSER_PASSWORD, Member, TestCluster, running_cluster
from tests.harness.common import REPO, SYSTEM_PYTHON, wait_for
from tests.harness.tls import Pair, TestCA

pytestmark = pytest.mark.integration
API_USER, API_PASSWORD = "hauser", "api-Secret-42"
SECRETS = (SUPERUSER_PASSWORD, REPLICATION_PASSWORD, API_PASSWORD)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


GOOD = basic(API_USER, API_PASSWORD)


def call(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         source: str = "127.0.0.1", context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], str]:
    """One request from the given source address (any of 127.0.0.0/8 works on lo)."""
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=20, source_address=(source, 0))
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, source_address=(source, 0),
                                           context=context)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        conn.close()


def ctl_run(config: dict[str, Any], path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump(config))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(path.parent), "LANG": "C.UTF-8"}
    return subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", "-c", str(path), *args], capture_output=True,
                          text=True, timeout=120, env=env)


class CmdlineSampler:
    """Reads every process's command line from /proc until stopped; keeps the distinct ones."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        raw = fh.read()
                except OSError:
                    continue
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(0.02)

    def __enter__(self) -> CmdlineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


# -- basic auth + allowlist on a 2-member cluster -------------------------------------------
@pytest.fixture(scope="module")
def auth_cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, "locked", size=2, start=False, log_tail=15000) as c:
        for m in c.members:
            m.config["restapi"].update(authentication={"username": API_USER, "password": API_PASSWORD},
                                       allowlist=["127.0.0.2/32"], allowlist_include_members=True)
            m.write_config()
        pg0, pg1 = c.members
        pg0.start()
        c.wait_leader(120)
        with CmdlineSampler() as sampler:
            pg1.start()
            c.wait_streaming([pg1], 180)
        c.cmdlines = sampler.seen  # type: ignore[attr-defined]
        yield c


def test_unsafe_methods_need_basic_auth(auth_cluster: TestCluster) -> None:
    port = auth_cluster.members[0].api_port
    for method, path, body in [("POST", "/reload", None), ("PATCH", "/config", {"loop_wait": 3}),
                               ("PUT", "/config", {"ttl": 10}), ("DELETE", "/switchover", None),
                               ("POST", "/switchover", {"leader": "x"}), ("POST", "/restart", {}),
                               ("DELETE", "/restart", None), ("POST", "/reinitialize", {}),
                               ("POST", "/failover", {"candidate": "x"})]:
        for headers in ({}, basic(API_USER, "wrong"), basic("nobody", API_PASSWORD), {"Authorization": "Bearer x"}):
            code, answer_headers, _ = call(port, method, path, body, headers)
            assert code == 401, (method, path, headers, code)
            assert answer_headers.get("WWW-Authenticate", "").startswith("Basic realm="), answer_headers
    code, _, _ = call(port, "POST", "/reload", headers=GOOD)
    assert code == 202
    code, _, text = call(port, "PATCH", "/config", {"loop_wait": 3}, headers=GOOD)
    assert code == 200, text
    # reads need no credentials; GET /config shows what the last HA cycle read
    wait_for(lambda: json.loads(call(port, "GET", "/config")[2]).get("loop_wait") == 3, 30,
             "GET /config to show the patched loop_wait")
    for path in ("/patroni", "/cluster", "/primary", "/health", "/metrics"):
        assert call(port, "GET", path)[0] == 200, path
    assert call(port, "PATCH", "/config", {"loop_wait": 2}, headers=GOOD)[0] == 200


def test_allowlist_refuses_unsafe_requests_from_other_sources(auth_cluster: TestCluster) -> None:
    pg0 = auth_cluster.members[0]
    code, _, text = call(pg0.api_port, "POST", "/reload", headers=GOOD, source="127.0.0.3")
    assert (code, text.strip()) == (403, "Access is denied")
    assert call(pg0.api_port, "GET", "/patroni", source="127.0.0.3")[0] == 200  # reads stay open
    assert call(pg0.api_port, "POST", "/reload", headers=GOOD, source="127.0.0.2")[0] == 202  # allowlist
    assert call(pg0.api_port, "POST", "/reload", headers=GOOD, source="127.0.0.1")[0] == 202  # a member's host
    assert "refused POST /reload from 127.0.0.3: not in restapi.allowlist" in pg0.log()


def test_pg_hactl_uses_the_configured_credentials(auth_cluster: TestCluster) -> None:
    base = {"scope": auth_cluster.scope, "etcd3": {"hosts": [auth_cluster.etcd_hostport]}}
    path = auth_cluster.root / "ctl.yml"
    good = ctl_run({**base, "ctl": {"authentication": {"username": API_USER, "password": API_PASSWORD}}},
                   path, "reload", auth_cluster.scope, "--force")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("Reload request received for member") == 2, good.stdout
    bad = ctl_run({**base, "ctl": {"authentication": {"username": API_USER, "password": "wrong"}}},
                  path, "reload", auth_cluster.scope, "--force")
    assert "Reload request received" not in bad.stdout and "401" in bad.stdout + bad.stderr, bad.stdout + bad.stderr


def test_secrets_stay_out_of_command_lines_logs_and_rest(auth_cluster: TestCluster) -> None:
    pg0, pg1 = auth_cluster.members
    cmdlines: set[str] = auth_cluster.cmdlines  # type: ignore[attr-defined]
    assert any("pg_basebackup" in line for line in cmdlines), "the sampler missed the clone"
    leaked = [line for line in cmdlines if any(secret in line for secret in SECRETS)]
    assert leaked == []
    assert "initialized a new cluster" in pg0.log() and "running pg_basebackup" in pg1.log()  # real logs
    for m in auth_cluster.members:
        log = m.log()
        for secret in SECRETS:
            assert secret not in log, f"{m.name}'s log shows a password"
        for path in ("/patroni", "/cluster", "/config", "/history", "/metrics", "/health"):
            text = call(m.api_port, "GET", path)[2]
            assert not any(secret in text for secret in SECRETS), f"GET {path} on {m.name} shows a password"
        pgpass = Path(m.config["postgresql"]["pgpass"])
        assert pgpass.exists() and pgpass.stat().st_mode & 0o777 == 0o600
    conninfo = pg1.sql("SHOW primary_conninfo")[0][0]
    assert "password" not in conninfo and "passfile" in conninfo, conninfo


# -- TLS with client certificates -------------------------------------------------------------
class TlsApi:
    """GETs to members' TLS REST API with the admin client certificate."""

    def __init__(self, ca: TestCA, client: Pair) -> None:
        self.ca, self.client = ca, client

    def get(self, member: Member, path: str) -> tuple[int, Any]:
        rest = PgHaClient(f"https://127.0.0.1:{member.api_port}", cafile=str(self.ca.cert),
                          certfile=str(self.client.cert), keyfile=str(self.client.key), timeout=5)
        try:
            return rest.request("GET", path)
        except PgHaClientError:
            return 0, None

    def primaries(self, members: list[Member]) -> list[Member]:
        return [m for m in members if m.running and self.get(m, "/primary")[0] == 200]

    def streaming(self, member: Member) -> bool:
        code, body = self.get(member, "/replica")
        return code == 200 and isinstance(body, dict) and body.get("replication_state") == "streaming"


@pytest.fixture(scope="module")
def tls_cluster(etcd_server) -> Iterator[tuple[TestCluster, TestCA, Pair]]:
    """3 members, each with TLS and verify_client: required (they ask each other with their
    server certificate, which is also a client certificate of the same CA)."""
    with running_cluster(etcd_server, "tlsapi", size=3, start=False, log_tail=15000) as c:
        ca = TestCA(c.root / "pki", owner="postgres")
        server = ca.issue("server")
        client = ca.issue("admin", client=True)
        for m in c.members:
            m.config["restapi"].update(certfile=str(server.cert), keyfile=str(server.key), cafile=str(ca.cert),
                                       verify_client="required",
                                       authentication={"username": API_USER, "password": API_PASSWORD})
            m.write_config()
            m.start()
        api = TlsApi(ca, client)
        leader = wait_for(lambda: (api.primaries(c.members) or [None])[0], 120, "a TLS member to become the primary")
        for m in c.members:
            if m is not leader:
                wait_for(lambda m=m: api.streaming(m), 180, f"{m.name} to stream (checked over TLS)")
        yield c, ca, client


def tls_context(ca: TestCA, client: Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def test_tls_requires_a_client_certificate(tls_cluster: tuple[TestCluster, TestCA, Pair]) -> None:
    c, ca, client = tls_cluster
    port = c.members[0].api_port
    primary_port = TlsApi(ca, client).primaries(c.members)[0].api_port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(port, "GET", "/patroni", context=tls_context(ca, None))
    rogue_ca = TestCA(c.root / "rogue", name="rogue")
    rogue = rogue_ca.issue("intruder", client=True)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(port, "GET", "/patroni", context=tls_context(ca, rogue))
    with pytest.raises(ssl.SSLError):  # and the server is verified by the client too
        call(port, "GET", "/patroni", context=tls_context(rogue_ca, client))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):  # plain HTTP
        call(port, "GET", "/patroni")
    good = tls_context(ca, client)
    code, _, text = call(port, "GET", "/patroni", context=good)
    assert code == 200 and json.loads(text)["state"] == "running"
    assert call(primary_port, "GET", "/primary", context=good)[0] == 200
    assert call(port, "POST", "/reload", context=good)[0] == 401
    assert call(port, "POST", "/reload", headers=GOOD, context=good)[0] == 202


def test_pg_hactl_over_tls(tls_cluster: tuple[TestCluster, TestCA, Pair]) -> None:
    c, ca, client = tls_cluster
    base = {"scope": c.scope, "etcd3": {"hosts": [c.etcd_hostport]}}
    path = c.root / "ctl.yml"
    ctl = {"certfile": str(client.cert), "keyfile": str(client.key), "cacerts": str(ca.cert),
           "authentication": {"username": API_USER, "password": API_PASSWORD}}
    good = ctl_run({**base, "ctl": ctl}, path, "reload", c.scope, "--force")
    assert good.returncode == 0 and "Reload request received for member" in good.stdout, good.stdout + good.stderr
    no_cert = ctl_run({**base, "ctl": {"cacerts": str(ca.cert), "authentication": ctl["authentication"]}},
                      path, "reload", c.scope, "--force")
    assert "Reload request received" not in no_cert.stdout, no_cert.stdout
    assert no_cert.returncode != 0 or "fail" in (no_cert.stdout + no_cert.stderr).lower()


def test_failover_over_tls_asks_the_live_peer(tls_cluster: tuple[TestCluster, TestCA, Pair]) -> None:
    """kill -9 of the TLS leader: the survivors compare WAL positions over TLS with client
    certificates (no 'request failed' for the live peer) and exactly one of them takes over."""
    c, ca, client = tls_cluster
    api = TlsApi(ca, client)
    leader = api.primaries(c.members)[0]
    survivors = [m for m in c.members if m is not leader]
    leader.kill9()
    new = wait_for(lambda: (api.primaries(survivors) or [None])[0], 90, "a survivor to take over over TLS")
    other = next(m for m in survivors if m is not new)
    wait_for(lambda: api.streaming(other), 120, f"{other.name} to follow {new.name}")
    assert api.primaries(survivors) == [new]
    for m in survivors:
        peer = next(p for p in survivors if p is not m)
        assert f"request failed: GET https://127.0.0.1:{peer.api_port}" not in m.log(), m.log()[-3000:]
