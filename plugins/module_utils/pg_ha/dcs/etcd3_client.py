# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal client for etcd's v3 JSON gateway (``/v3/...``), standard library only.

Keys and values travel base64-encoded; int64 fields come back as strings."""
from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from typing import Any

from ..http1 import Connection, HttpError, Response
from .base import DCSError, parse_hosts

GRPC_UNAVAILABLE, GRPC_DEADLINE, GRPC_NOT_FOUND, GRPC_UNAUTHENTICATED = 14, 4, 5, 16


def b64(value: str | bytes) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def unb64(value: Any) -> str:
    """Decode a base64 key/value of the gateway; absent (empty) or undecodable -> ""."""
    if not value or not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value).decode("utf-8", errors="replace")
    except ValueError:
        return ""


def prefix_end(prefix: str) -> bytes:
    """The range_end that selects every key starting with `prefix`."""
    raw = bytearray(prefix.encode("utf-8"))
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"


class EtcdError(DCSError):
    """An error answer from etcd, with its gRPC code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def invalid_token(self) -> bool:
        return self.code == GRPC_UNAUTHENTICATED or "invalid auth token" in str(self)

    @property
    def lease_not_found(self) -> bool:
        return "lease not found" in str(self)

    @property
    def not_applied(self) -> bool:
        """Rejected before it could change anything: safe to retry even a CAS."""
        text = str(self)
        return "no leader" in text or "too many requests" in text or "not capable" in text

    @property
    def transient(self) -> bool:
        return self.code in (GRPC_UNAVAILABLE, GRPC_DEADLINE) or self.not_applied


class NotSent(Exception):
    """The request never reached etcd (connect/send failed): always safe to retry."""


def error_from(doc: Any, status: int) -> EtcdError | None:
    if not isinstance(doc, dict):
        return EtcdError(f"unexpected answer (HTTP {status})")
    error = doc.get("error")
    if error:
        if isinstance(error, dict):  # streaming endpoints
            return EtcdError(str(error.get("message") or error), as_int(error.get("grpc_code")))
        return EtcdError(str(doc.get("message") or error), as_int(doc.get("code")))
    if status != 200:
        return EtcdError(f"HTTP {status}")
    return None


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


IDLE_CONNECTIONS = 2  # kept-alive connections kept per etcd host


class Etcd3Client:
    """POSTs JSON to the v3 gateway of the first etcd that answers, sticking to it.

    Every :meth:`call` takes at most ``retry_timeout`` seconds in total. Idempotent calls
    (the lease keepalive of every cycle, reads) reuse a kept-alive connection: no TCP (and
    TLS) handshake per request. A compare-and-swap always goes on a new connection, so an
    error can never come from a connection the server had already closed."""

    def __init__(self, hosts: list[str] | tuple[str, ...] | str, protocol: str = "http",
                 username: str | None = None, password: str | None = None,
                 cacert: str | None = None, cert: str | None = None, key: str | None = None,
                 retry_timeout: float = 10.0) -> None:
        self.hosts = parse_hosts(hosts)
        self.protocol = protocol
        self.retry_timeout = retry_timeout
        self.username = username
        self.password = password
        self._token: str | None = None  # None: not authenticated yet; "": auth disabled
        self._auth_lock = threading.Lock()
        self._current = 0
        self._idle: dict[int, list[Connection]] = {}
        self._idle_lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        if protocol == "https":
            self._ssl = ssl.create_default_context(cafile=cacert)
            if cert:
                self._ssl.load_cert_chain(cert, key)

    def host_name(self, index: int) -> str:
        host, port = self.hosts[index]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def invalidate_token(self) -> None:
        self._token = None

    def _kept_alive(self, index: int, timeout: float) -> Connection | None:
        while True:
            with self._idle_lock:
                idle = self._idle.get(index)
                conn = idle.pop() if idle else None
            if conn is None or conn.usable_again(timeout):
                return conn
            conn.close()

    def _release(self, index: int, conn: Connection, resp: Response) -> None:
        if resp.keeps_connection:
            with self._idle_lock:
                idle = self._idle.setdefault(index, [])
                if len(idle) < IDLE_CONNECTIONS:
                    idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        """Close the kept-alive connections."""
        with self._idle_lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    def _connect(self, index: int, timeout: float) -> Connection:
        host, port = self.hosts[index]
        conn = Connection(host, port, timeout, self._ssl)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise NotSent(f"{self.host_name(index)}: {exc}") from exc
        return conn

    def _start(self, index: int, path: str, body: dict[str, Any], timeout: float, auth: bool = True,
               extra_headers: dict[str, str] | None = None, reuse: bool = False,
               ) -> tuple[Connection, Response]:
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if auth and self.username:
            token = self._token if self._token is not None else self._authenticate(index, timeout)
            if token:
                headers["Authorization"] = token
        conn = (self._kept_alive(index, timeout) if reuse else None) or self._connect(index, timeout)
        try:
            conn.request("POST", path, body=json.dumps(body).encode("utf-8"), headers=headers)
        except OSError as exc:
            conn.close()
            if conn.requests > 1:  # a kept-alive connection the server closed meanwhile
                raise HttpError(f"{self.host_name(index)}: kept-alive connection failed: {exc!r}") from exc
            raise NotSent(f"{self.host_name(index)}: {exc}") from exc
        try:
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def _post(self, index: int, path: str, body: dict[str, Any], timeout: float,
              auth: bool = True, reuse: bool = False) -> dict[str, Any]:
        conn, resp = self._start(index, path, body, timeout, auth, reuse=reuse)
        try:
            data = resp.read()
        except BaseException:
            conn.close()
            raise
        self._release(index, conn, resp)
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = None
        error = error_from(doc, resp.status)
        if error is not None:
            raise error
        return doc  # type: ignore[no-any-return]

    def _authenticate(self, index: int, timeout: float) -> str:
        """Get a token (once, whichever thread asks first); "" when auth is disabled."""
        with self._auth_lock:
            if self._token is not None:
                return self._token
            try:
                doc = self._post(index, "/v3/auth/authenticate",
                                 {"name": self.username, "password": self.password or ""}, timeout, auth=False)
            except EtcdError as exc:
                if "authentication is not enabled" not in str(exc):
                    raise
                doc = {}
            self._token = str(doc.get("token") or "")
            return self._token

    def call(self, path: str, body: dict[str, Any], idempotent: bool = True) -> dict[str, Any]:
        """One request, trying the hosts in turn until ``retry_timeout`` is spent.

        A request that may have reached etcd is retried only if `idempotent`: a
        compare-and-swap whose answer was lost raises DCSError (outcome unknown)."""
        deadline = time.monotonic() + self.retry_timeout
        index, tries, reauthenticated, last = self._current, 0, False, "no attempt"
        count = len(self.hosts)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DCSError(f"etcd {path} failed within {self.retry_timeout}s: {last}")
            timeout = max(min(remaining, 1.0), remaining / count)
            try:
                conn_result = self._post(index, path, body, timeout, reuse=idempotent)
                self._current = index
                return conn_result
            except EtcdError as exc:
                if exc.invalid_token and self.username and not reauthenticated:
                    self._token, reauthenticated = None, True
                    continue
                if not (exc.transient and (idempotent or exc.not_applied)):
                    raise
                last = f"{self.host_name(index)}: {exc}"
            except NotSent as exc:
                last = str(exc)
            except (OSError, HttpError) as exc:
                if not idempotent:
                    where = self.host_name(index)
                    raise DCSError(f"etcd {path} on {where}: outcome unknown: {exc!r}") from exc
                last = f"{self.host_name(index)}: {exc!r}"
            tries += 1
            index = (index + 1) % count
            if tries % count == 0:  # every host failed once: back off a little
                pause = min(0.1 * 2 ** (tries // count - 1), 1.0, deadline - time.monotonic())
                if pause > 0:
                    time.sleep(pause)

    def open_stream(self, path: str, body: dict[str, Any], timeout: float,
                    extra_headers: dict[str, str] | None = None,
                    ) -> tuple[Connection, Response]:
        """Start a streaming request (watch) on the current host, else the next ones."""
        last: Exception | None = None
        for offset in range(len(self.hosts)):
            index = (self._current + offset) % len(self.hosts)
            try:
                conn, resp = self._start(index, path, body, timeout, extra_headers=extra_headers)
            except (NotSent, EtcdError, OSError, HttpError) as exc:
                last = exc
                continue
            if resp.status == 200:
                return conn, resp
            conn.close()
            last = EtcdError(f"{path} on {self.host_name(index)}: HTTP {resp.status}")
        raise DCSError(f"cannot open {path}: {last}")
