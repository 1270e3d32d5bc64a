"""A real single-node etcd 3.4 (``/usr/bin/etcd``) run as a process for integration tests.

Pytest-independent: ``EtcdServer().start()`` ... ``.stop()`` / ``.cleanup()``, or a ``with``
block. The v2 API is enabled so both DCS backends can talk to the same server; ``tls=True``
serves https with client certificates from a throw-away CA. Every process is tracked by PID.
Raw access as an operator would have it: ``etcdctl()``, ``keys()``/``put()`` (either API),
``v3_keys``/``v3_post``/``v3_lease_ttl``, ``v2_keys``/``v2_put``, ``enable_auth()``.
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .common import free_port, spawn, wait_for
from .server import ServerProcess

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"


class EtcdServer(ServerProcess):
    """One etcd member on 127.0.0.1 with its own data dir and free ports."""

    def __init__(self, name: str = "etcd0", base_dir: Path | None = None,
                 extra_args: list[str] | None = None, tls: bool = False) -> None:
        """tls: serve clients over https, requiring client certificates signed by a fresh
        test CA (files in ``.tls``: ca.crt, server.*, client.crt/.key)."""
        self.name = name
        self.tls = tls
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="pg_ha_etcd_"))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "etcd.log"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.tls_dir = self.base_dir / "tls"
        if tls:
            make_test_certs(self.tls_dir)

    # -- addresses ------------------------------------------------------------
    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def protocol(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        return f"{self.protocol}://{self.host_port}"

    @property
    def cacert(self) -> str:
        return str(self.tls_dir / "ca.crt")

    @property
    def client_cert(self) -> tuple[str, str]:
        return str(self.tls_dir / "client.crt"), str(self.tls_dir / "client.key")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.cacert)
        ctx.load_cert_chain(*self.client_cert)
        return ctx

    def urlopen(self, req: urllib.request.Request | str, timeout: float = 10) -> Any:
        return urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context())

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    # -- lifecycle ------------------------------------------------------------
    def argv(self) -> list[str]:
        return [
            ETCD, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new", "--enable-v2=true",
            "--logger", "zap", "--log-outputs", "stderr", *self.tls_args(), *self.extra_args,
        ]

    def tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return ["--cert-file", str(self.tls_dir / "server.crt"), "--key-file", str(self.tls_dir / "server.key"),
                "--trusted-ca-file", self.cacert, "--client-cert-auth"]

    def start(self, timeout: float = 30) -> EtcdServer:
        if self.running:
            return self
        self.proc = spawn(self.argv(), self.log_path)
        self.paused = False
        wait_for(self.healthy, timeout, f"etcd {self.name} on {self.host_port} to be healthy")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        if not self.running:
            raise RuntimeError(f"etcd exited with {self.proc and self.proc.returncode}; "
                               f"see {self.log_path}")
        try:
            with self.urlopen(f"{self.client_url}/health", timeout=1) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except OSError:
            return False

    def restart(self, timeout: float = 30) -> EtcdServer:
        """Stop and start again with the same data dir and ports."""
        self.stop()
        return self.start(timeout)

def make_test_certs(directory: Path) -> None:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pg_ha test CA")
    # the v3 gateway dials etcd itself with the server certificate: it needs clientAuth too
    server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"
    for name, ext in (("server", server_ext), ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")


def etcdctl(server: EtcdServer, *args: str, api: int = 3, check: bool = True,
            timeout: float = 20) -> str:
    """Run etcdctl against `server` with ETCDCTL_API=`api`; returns stdout."""
    env = dict(os.environ, ETCDCTL_API=str(api))
    tls = []
    if server.tls:
        tls = ["--cacert", server.cacert, "--cert", server.client_cert[0], "--key", server.client_cert[1]]
        if api == 2:
            tls = ["--ca-file", server.cacert, "--cert-file", server.client_cert[0],
                   "--key-file", server.client_cert[1]]
    proc = subprocess.run([ETCDCTL, "--endpoints", server.client_url, *tls, *args], env=env, timeout=timeout,
                          capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"etcdctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def v3_keys(server: EtcdServer, prefix: str) -> dict[str, dict[str, Any]]:
    """Every key under `prefix` as etcdctl (v3) shows it: key -> {value, lease, mod_revision}."""
    out = etcdctl(server, "get", "--prefix", prefix, "-w", "json")
    result: dict[str, dict[str, Any]] = {}
    for kv in json.loads(out).get("kvs") or []:
        key = base64.b64decode(kv["key"]).decode()
        result[key] = {"value": base64.b64decode(kv.get("value", "")).decode("utf-8", "replace"),
                       "lease": int(kv.get("lease", 0)), "mod_revision": int(kv["mod_revision"])}
    return result


def v3_post(server: EtcdServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Raw POST to the v3 JSON gateway."""
    req = urllib.request.Request(f"{server.client_url}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with server.urlopen(req) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def v3_put(server: EtcdServer, key: str, value: bytes | str) -> None:
    raw = value.encode() if isinstance(value, str) else value
    v3_post(server, "/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                   "value": base64.b64encode(raw).decode()})


def v3_lease_ttl(server: EtcdServer, lease: int) -> tuple[int, int]:
    """(granted TTL, remaining TTL) of a lease; remaining is -1 once it expired."""
    doc = v3_post(server, "/v3/lease/timetolive", {"ID": str(lease)})
    return int(doc.get("grantedTTL", 0)), int(doc.get("TTL", -1))


def v2_keys(server: EtcdServer, prefix: str) -> dict[str, dict[str, Any]]:
    """Every leaf under `prefix` through the v2 keys API: key -> {value, ttl, modifiedIndex}."""
    url = f"{server.client_url}/v2/keys{prefix.rstrip('/')}?recursive=true"
    try:
        with server.urlopen(url) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise
    result: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        if node.get("dir"):
            for child in node.get("nodes", []):
                walk(child)
        else:
            result[node["key"]] = {"value": node.get("value"), "ttl": node.get("ttl"),
                                   "modifiedIndex": node.get("modifiedIndex")}
    walk(doc["node"])
    return result


def v2_put(server: EtcdServer, key: str, value: str) -> None:
    data = urllib.parse.urlencode({"value": value}).encode()
    req = urllib.request.Request(f"{server.client_url}/v2/keys{key}", data=data, method="PUT")
    with server.urlopen(req):
        pass


def keys(server: EtcdServer, api: str, prefix: str) -> dict[str, str]:
    """key -> value under `prefix`, read the way an operator would for `api` ('etcd3'/'etcd')."""
    table = v3_keys(server, prefix) if api == "etcd3" else v2_keys(server, prefix)
    return {k: v["value"] for k, v in table.items()}


def scope_key(server: EtcdServer, scope: str, name: str, api: str = "etcd3") -> str | None:
    """The value of /service/<scope>/<name> (e.g. leader, sync), None when absent."""
    return keys(server, api, f"/service/{scope}/").get(f"/service/{scope}/{name}")


def put(server: EtcdServer, api: str, key: str, value: str) -> None:
    (v3_put if api == "etcd3" else v2_put)(server, key, value)


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def enable_auth(server: EtcdServer, api: str, password: str) -> None:
    """Create user root with `password` and turn authentication on (v3 or v2 store); for v2
    also revoke the guest role, which otherwise keeps full access."""
    if api == "etcd3":
        etcdctl(server, "user", "add", f"root:{password}")
        etcdctl(server, "auth", "enable")
        return
    root = "Basic " + b64(f"root:{password}")
    for path, body, headers in (
        ("/v2/auth/users/root", {"user": "root", "password": password}, {}),
        ("/v2/auth/enable", None, {}),
        ("/v2/auth/roles/guest", {"role": "guest", "revoke": {"kv": {"read": ["/*"], "write": ["/*"]}}},
         {"Authorization": root}),
    ):
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(server.client_url + path, data=data, method="PUT",
                                         headers={"Content-Type": "application/json", **headers})
        with server.urlopen(request):
            pass
