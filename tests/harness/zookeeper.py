"""A real standalone ZooKeeper (Debian's ``zookeeper`` 3.8 jars, Java 17) run as a process for
integration tests, beside etcd.py.

Pytest-independent: ``ZooKeeperServer().start()`` ... ``.stop()`` / ``.cleanup()``, or a
``with`` block. Its own client port, data dir and zoo.cfg; tickTime 500 ms so sessions of
1..60 s can be negotiated (tests use ttl=3). Tracked by PID; ``start`` and ``stop`` wait with
deadlines until the port answers ``ruok`` / the process is gone. Raw access as an operator
with zkCli would have it: ``znodes()`` (path -> value, stat), ``zk_put``, ``sessions()``
(the server's ``cons``: session id -> negotiated timeout).

``tls=True``: clients only over TLS with a certificate of a fresh test CA (the client port is
ZooKeeper's secureClientPort, ``ssl.clientAuth=need``, Netty), x509 principals for ACLs
(``CN=pg_ha`` and ``CN=other`` client certificates in ``tls_dir``).
"""
from __future__ import annotations

import re
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .common import free_port, port_open, spawn, wait_for
from .server import ServerProcess
from .tls import TestCA

JAVA = "/usr/bin/java"
# zookeeper.jar's manifest names its dependencies (netty, jute, ...); slf4j-simple logs to stderr
# netty-codec: the Netty connection factory of TLS clients needs it and the manifest omits it
CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:/usr/share/java/netty-codec.jar"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def four_letter(port: int, word: str, timeout: float = 2, tls: ssl.SSLContext | None = None) -> str:
    """A four-letter-word command (ruok, srvr, cons, ...) against 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


class ZooKeeperServer(ServerProcess):
    """One standalone ZooKeeper on 127.0.0.1 with its own data dir and a free port."""

    def __init__(self, name: str = "zk0", base_dir: Path | None = None, tls: bool = False) -> None:
        self.name = name
        self.tls = tls
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="pg_ha_zk_"))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "zookeeper.log"
        self.config_path = self.base_dir / "zoo.cfg"
        self.client_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.tls_dir = self.base_dir / "tls"
        if tls:
            ca = TestCA(self.tls_dir)
            server = ca.issue("server")
            (self.tls_dir / "server.pem").write_text(server.key.read_text() + server.cert.read_text())
            ca.issue("pg_ha", client=True)
            ca.issue("other", client=True)

    @property
    def cacert(self) -> str:
        return str(self.tls_dir / "ca.crt")

    def client_cert(self, principal: str = "pg_ha") -> tuple[str, str]:
        """Certificate and key of the client whose x509 principal is CN=<principal>."""
        return str(self.tls_dir / f"{principal}.crt"), str(self.tls_dir / f"{principal}.key")

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.cacert)
        ctx.load_cert_chain(*self.client_cert())
        return ctx

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join([
            "tickTime=500", "initLimit=10", "syncLimit=5", f"dataDir={self.data_dir}",
            *self._port_lines(),
            "minSessionTimeout=1000", "maxSessionTimeout=60000", "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,cons,stat,mntr", "autopurge.purgeInterval=0", ""]))

    def _port_lines(self) -> list[str]:
        if not self.tls:
            return [f"clientPort={self.client_port}", "clientPortAddress=127.0.0.1"]
        pem = "PEM"
        return [f"secureClientPort={self.client_port}", "secureClientPortAddress=127.0.0.1",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.tls_dir / 'server.pem'}", f"ssl.keyStore.type={pem}",
                f"ssl.trustStore.location={self.cacert}", f"ssl.trustStore.type={pem}", "ssl.clientAuth=need",
                "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider"]

    def argv(self) -> list[str]:
        return [JAVA, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "-cp", CLASSPATH, MAIN, str(self.config_path)]

    def start(self, timeout: float = 60) -> ZooKeeperServer:
        if self.running:
            return self
        self.write_config()
        self.proc = spawn(self.argv(), self.log_path)
        self.paused = False
        wait_for(self.healthy, timeout, f"zookeeper {self.name} on {self.host_port} to answer imok")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        if not self.running:
            raise RuntimeError(f"zookeeper exited with {self.proc and self.proc.returncode}; see {self.log_path}")
        try:
            tls = self._ssl_context()
            return four_letter(self.client_port, "ruok", 1, tls) == "imok" and \
                "Mode: standalone" in four_letter(self.client_port, "srvr", 1, tls)
        except OSError:
            return False

    def after_stop(self) -> None:
        wait_for(lambda: not port_open(self.client_port), 10, f"nothing to listen on {self.host_port}")

    # -- an operator's view ----------------------------------------------------------
    def client(self, **kwargs: Any) -> Any:
        """A started kazoo client (the caller stops it)."""
        from kazoo.client import KazooClient

        if self.tls:
            cert, key = self.client_cert()
            kwargs = {"use_ssl": True, "ca": self.cacert, "certfile": cert, "keyfile": key, **kwargs}
        client = KazooClient(self.host_port, timeout=10, **kwargs)
        client.start(15)
        return client

    def sessions(self) -> dict[int, int]:
        """Session id -> negotiated timeout (ms) of every connection, from ``cons``."""
        result = {}
        for line in four_letter(self.client_port, "cons", tls=self._ssl_context()).splitlines():
            sid, to = re.search(r"sid=0x([0-9a-f]+)", line), re.search(r"\bto=(\d+)", line)
            if sid and to:
                result[int(sid.group(1), 16)] = int(to.group(1))
        return result


def znodes(server: ZooKeeperServer, prefix: str) -> dict[str, tuple[str, Any]]:
    """Every leaf znode under `prefix` (a path ending in /): path -> (value, ZnodeStat)."""
    client = server.client()
    try:
        result: dict[str, tuple[str, Any]] = {}
        root = prefix.rstrip("/")
        if client.exists(root) is None:
            return {}
        todo = [root]
        while todo:
            path = todo.pop()
            children = client.get_children(path)
            if children:
                todo.extend(f"{path}/{child}" for child in children)
            elif path != root:
                data, stat = client.get(path)
                result[path] = ((data or b"").decode("utf-8", "replace"), stat)
        return result
    finally:
        client.stop()
        client.close()


def zk_put(server: ZooKeeperServer, path: str, value: str | bytes) -> None:
    """Create or overwrite a persistent znode (parents as needed), as zkCli would."""
    data = value.encode() if isinstance(value, str) else value
    client = server.client()
    try:
        if client.exists(path) is None:
            client.create(path, data, makepath=True)
        else:
            client.set(path, data)
    finally:
        client.stop()
        client.close()
