# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP/1.1 connection loop of the REST API on socketserver, without http.server.

http.server (with html, html.entities, mimetypes, email.utils) is a good part of the
daemon's resident memory, and its per-request parsing goes through email.parser. This
is what the REST API needs of it: requests one after the other on a connection
(keep-alive), heads parsed by wire.py, one write per answer, one-line error answers.
A request must arrive whole (head and body) within limits.REQUEST_DEADLINE of its first
byte, else 408 and the connection closes."""
from __future__ import annotations

import io
import logging
import socketserver
import time
from http import HTTPStatus

from .limits import REQUEST_DEADLINE, DeadlineReader
from .wire import HeadError, Headers, http_date, parse_request_line, read_headers, render

logger = logging.getLogger(__name__)

REASONS = {status.value: status.phrase for status in HTTPStatus}
MAX_REQUEST_LINE = 65536
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PATCH", "PUT", "POST", "DELETE"})


class HttpHandler(socketserver.StreamRequestHandler):
    """Subclasses implement handle_request() (self.command, self.path, self.headers,
    self.rfile for the body) and answer with send_answer()."""

    disable_nagle_algorithm = True  # error answers of a kept-alive connection go out at once
    server_version = ""
    close_connection = True
    command = ""
    path = ""
    request_version = "HTTP/1.0"
    headers = Headers([])
    expect_continue = False

    def setup(self) -> None:
        super().setup()
        self.reader = DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self.reader)

    def waiting_for_request(self) -> None:
        """Hook: the connection waits for (or receives) its next request: until the request
        is whole it may be closed for another connection."""

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self) -> None:
        self.close_connection = True
        self.reader.deadline = None
        self.waiting_for_request()
        try:
            if not self.rfile.peek(1):
                return  # the client closed
        except (TimeoutError, OSError, ValueError):
            return  # idle keep-alive connection, the client went away, or closed for another
        self.reader.deadline = time.monotonic() + REQUEST_DEADLINE
        try:
            raw = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except TimeoutError:
            self.send_error(408, f"request line not received within {REQUEST_DEADLINE:g} s")
            return
        except (OSError, ValueError):
            return
        if len(raw) > MAX_REQUEST_LINE:
            self.send_error(414, "Request line too long")
            return
        self.requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        try:
            self.command, self.path, version = parse_request_line(raw)
            self.request_version = f"HTTP/{version[0]}.{version[1]}"
            self.headers = read_headers(self.rfile)
        except HeadError as exc:
            self.send_error(exc.code, exc.message)
            return
        except TimeoutError:
            self.send_error(408, f"request head not received within {REQUEST_DEADLINE:g} s")
            return
        except (OSError, ValueError):
            return
        self.close_connection = version < (1, 1)
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.command not in METHODS:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        # answered when the body is read (send_continue), so only after the access check
        self.expect_continue = (self.headers.get("Expect") or "").lower() == "100-continue" and version >= (1, 1)
        self.handle_request()

    def send_continue(self) -> None:
        """100 Continue, once, to a client that waits for it before it sends the body."""
        if self.expect_continue:
            self.expect_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def handle_request(self) -> None:
        raise NotImplementedError

    def log_request(self, code: int, size: int) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug('REST API %s: "%s" %s %s', self.client_address[0], self.requestline, code, size)

    def send_answer(self, code: int, fields: list[tuple[str, str]], payload: bytes, head_only: bool = False) -> None:
        """Status line, Server, Date, `fields`, Content-Length (of `payload`, also for HEAD),
        Connection: close when the connection ends after this answer, then the payload."""
        self.log_request(code, len(payload))
        everything = [("Server", self.server_version), ("Date", http_date()), *fields,
                      ("Content-Length", str(len(payload)))]
        if self.close_connection:
            everything.append(("Connection", "close"))
        try:
            self.connection.settimeout(self.timeout)  # reads may have left the deadline's rest
            self.wfile.write(render(code, REASONS.get(code, ""), everything, b"" if head_only else payload))
        except OSError:  # the client went away
            self.close_connection = True

    def send_error(self, code: int, message: str) -> None:
        """A one-line text answer; the connection is closed after it."""
        self.close_connection = True
        body = b"" if code in (204, 304) or code < 200 else (message + "\n").encode("utf-8", "replace")
        self.send_answer(code, [("Content-Type", "text/plain; charset=utf-8")], body,
                         head_only=self.command == "HEAD")
