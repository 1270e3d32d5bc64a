# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small HTTP/1.1 client connection for the daemon (etcd v3 gateway, peers' REST APIs).

http.client imports the email package (about 1 MB of the daemon's resident memory) to
parse response headers. The daemon needs much less: a body by Content-Length, chunked
encoding (etcd's watch stream, read line by line) or until the server closes; a connection
whose response was read to its end can carry the next request (keep-alive). Standard
library only."""
from __future__ import annotations

import select
import socket
from typing import IO, Any

MAX_LINE = 65536
MAX_HEADERS = 100


class HttpError(Exception):
    """The server's answer was not HTTP/1.x as expected (the request may have been applied)."""


def _host_bytes(host: str) -> bytes:
    # getaddrinfo with a str host goes through the idna codec (more modules loaded)
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host.encode("idna")


class Response:
    def __init__(self, fp: IO[bytes], method: str) -> None:
        self._fp = fp
        line = fp.readline(MAX_LINE + 1)
        if not line:
            raise HttpError("connection closed before the status line")
        parts = str(line, "iso-8859-1").rstrip("\r\n").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"bad status line {line[:80]!r}")
        self.status = int(parts[1])
        self.version = parts[0]
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            raw = fp.readline(MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = str(raw, "iso-8859-1").partition(":")
            if colon:
                self.headers[name.strip().lower()] = value.strip()
        else:
            raise HttpError("too many header fields")
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left: int | None = int(length) if length and length.isdigit() and not self.chunked else None
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._left = 0
        self._pending = b""  # de-chunked data not handed out yet
        self._done = self._left == 0

    def _next_chunk(self) -> bytes:
        size_line = self._fp.readline(MAX_LINE + 1)
        if not size_line:
            raise HttpError("connection closed inside a chunked body")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while self._fp.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            self._done = True
            return b""
        data = self._fp.read(size)
        if len(data) < size:
            raise HttpError("connection closed inside a chunk")
        self._fp.readline(MAX_LINE + 1)  # the CRLF after the chunk
        return data

    def read(self) -> bytes:
        """The whole (rest of the) body."""
        if self._done:
            data, self._pending = self._pending, b""
            return data
        if self.chunked:
            parts = [self._pending]
            while not self._done:
                parts.append(self._next_chunk())
            self._pending = b""
            return b"".join(parts)
        if self._left is not None:
            data = self._fp.read(self._left)
            if len(data) < self._left:
                raise HttpError("connection closed inside the body")
        else:
            data = self._fp.read()
        self._done = True
        return data

    @property
    def keeps_connection(self) -> bool:
        """Read to its end, HTTP/1.1 and no "Connection: close": the connection can be reused."""
        return (self._done and not self._pending and self.version == "HTTP/1.1"
                and "close" not in self.headers.get("connection", "").lower())

    def readline(self) -> bytes:
        """One line of a (streamed) body, b"" at its end. Socket timeouts propagate."""
        if not self.chunked:
            if self._done:
                return b""
            line = self._fp.readline(MAX_LINE + 1 if self._left is None else min(self._left, MAX_LINE + 1))
            if self._left is not None:
                self._left -= len(line)
                self._done = self._left <= 0
            if not line:
                self._done = True
            return line
        while b"\n" not in self._pending and not self._done:
            self._pending += self._next_chunk()
        line, newline, rest = self._pending.partition(b"\n")
        self._pending = rest
        return line + newline


class Connection:
    """One connection to `host`:`port` (TLS when `context` is given)."""

    def __init__(self, host: str, port: int, timeout: float, context: Any = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.context = context
        self.sock: socket.socket | None = None
        self._fp: IO[bytes] | None = None
        self.requests = 0  # requests sent on this connection

    def usable_again(self, timeout: float) -> bool:
        """For an idle kept-alive connection: still open, nothing unread (a server that
        closed it made it readable: EOF). Sets `timeout` for the next request."""
        sock = self.sock
        if sock is None or self._fp is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable or (self.context is not None and sock.pending()):  # type: ignore[attr-defined]
                return False
            sock.settimeout(timeout)
        except (OSError, ValueError):
            return False
        return True

    def connect(self) -> None:
        sock = socket.create_connection((_host_bytes(self.host), self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> None:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        fields = {"Host": f"{host}:{self.port}", "Accept-Encoding": "identity", **(headers or {})}
        if body is not None or method in ("POST", "PUT", "PATCH"):
            fields["Content-Length"] = str(len(body or b""))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.requests += 1
        self.sock.sendall(head.encode("latin-1") + (body or b""))

    def getresponse(self, method: str = "POST") -> Response:
        if self.sock is None:
            raise HttpError("not connected")
        if self._fp is None:  # one buffered reader per connection: it may hold the next response
            self._fp = self.sock.makefile("rb")
        return Response(self._fp, method)

    def close(self) -> None:
        fp, sock = self._fp, self.sock
        self._fp = self.sock = None
        if fp is not None:
            fp.close()
        if sock is not None:
            sock.close()
