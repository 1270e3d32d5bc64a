# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP(S) glue of the REST API: a threading server on a daemon thread.

Routing is routes.resolve(), the answers come from handlers.dispatch(); this module
only reads requests, checks access of the unsafe methods and writes responses.
Bad input never yields a 500: an unexpected exception becomes a one-line 500, is
logged, and the server keeps serving.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import selectors
import socket
import socketserver
import ssl
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..config.settings import RestApiSettings
from ..dcs.base import DCSError
from .access import REALM, address_allowed, build_allowlist, check_basic_auth, member_networks
from .backend import ApiBackend
from .handlers import dispatch
from .inline import PEEK_BYTES, answer_inline
from .limits import REQUEST_DEADLINE, ConnectionTable
from .messages import ApiError, Request, Response
from .protocol import HttpHandler
from .routes import UNSAFE_METHODS, allowed_methods, normalize_path, resolve
from .workers import ReusedThreadsMixIn

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may stay silent
HANDSHAKE_TIMEOUT = 10.0
NOBODY = ipaddress.ip_network("0.0.0.0/32")  # an allowlist no client address matches
VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def make_ssl_context(settings: RestApiSettings) -> ssl.SSLContext | None:
    """Server TLS context of restapi.certfile/keyfile/cafile/verify_client, or None (plain HTTP)."""
    if not settings.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.certfile, settings.keyfile or None)
    mode_name = (settings.verify_client or "none").lower()
    if mode_name not in VERIFY_MODES:
        raise ValueError(f"restapi.verify_client must be none, optional or required, not {mode_name!r}")
    if settings.cafile:
        context.load_verify_locations(settings.cafile)
    elif mode_name != "none":
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = VERIFY_MODES[mode_name]
    return context


def listen_candidates(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """(family, address) to try binding, best first; '' and '*' mean every address."""
    if host in ("", "*"):
        candidates = [(socket.AF_INET6, "::")] if socket.has_ipv6 else []
        return candidates + [(socket.AF_INET, "0.0.0.0")]
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except OSError as exc:
        raise OSError(f"cannot resolve the REST API listen address {host}: {exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return [(info[0], str(info[4][0])) for info in infos]


_PEEK_FLAGS = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)


class _HttpServer(ReusedThreadsMixIn, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's backlog is 5: a burst of connections (many load balancers' checks at
    # once, or a client holding many) overflowed it and each connection beyond it waited for
    # the kernel's SYN retry, 1 s (measured: 1,000 connections one after the other took 150 s)
    request_queue_size = socket.SOMAXCONN

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int],
                 api: RestApiServer, context: ssl.SSLContext | None) -> None:
        self.address_family = family
        self.api = api
        self.ssl_context = context
        self.connections = ConnectionTable()
        self._init_workers()
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(address, _Handler)

    def serve(self) -> None:
        """Accept connections until wake(). Blocks in select without a timeout: an idle
        REST API costs no wakeups (serve_forever polls every poll_interval)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = selector.select()
                if any(key.fileobj is self._wake_r for key, _ in ready):
                    return
                try:
                    request, client_address = self.get_request()
                except OSError:
                    continue
                try:
                    if self._one_shot_check(request):
                        self.process_request_thread(request, client_address)  # answers and closes
                    elif self.connections.admit(request):
                        self.process_request(request, client_address)
                    else:  # every one of MAX_CONNECTIONS is busy with a request
                        logger.warning("REST API: refused a connection from %s: %d connections busy",
                                       client_address[0], self.connections.cap)
                        self.shutdown_request(request)
                except Exception:  # noqa: BLE001 - as socketserver: log, drop the connection, go on
                    self.handle_error(request, client_address)
                    self.shutdown_request(request)

    @staticmethod
    def _one_shot_check(request: socket.socket) -> bool:
        """A plain-HTTP health check already received whole (see inline.py)."""
        if isinstance(request, ssl.SSLSocket):
            return False
        try:
            peeked = request.recv(PEEK_BYTES, _PEEK_FLAGS)
        except OSError:  # nothing there yet (BlockingIOError) or the client is gone
            return False
        return answer_inline(peeked)

    def wake(self) -> None:
        """End serve()."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        # TCPServer.server_bind without HTTPServer's reverse DNS lookup (getfqdn).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
            except OSError:
                pass
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                try:
                    request.settimeout(HANDSHAKE_TIMEOUT)
                    request.do_handshake()
                except (OSError, ValueError) as exc:
                    logger.debug("REST API: TLS handshake with %s failed: %s", client_address[0], exc)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            self.connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("REST API: connection from %s ended with an error", client_address[0], exc_info=True)

    def close_connections(self) -> None:
        self.connections.close_all()


class _Handler(HttpHandler):
    server_version = f"pg_ha/{__version__}"
    timeout = IDLE_TIMEOUT
    server: _HttpServer

    def handle_request(self) -> None:
        self._handle()

    def waiting_for_request(self) -> None:
        self.server.connections.waiting(self.request)

    def _has_body(self) -> bool:
        return bool(self.headers.get("Transfer-Encoding")) or (self.headers.get("Content-Length") or "0").strip() != "0"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "Content-Length is required (chunked bodies are not supported)")
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError(length_text)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, f"invalid Content-Length: {length_text}") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
        self.send_continue()
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise ApiError(408, f"request body not received within {REQUEST_DEADLINE:g} s") from None
        if len(raw) < length:
            self.close_connection = True
            raise ApiError(400, f"request body ended after {len(raw)} of {length} bytes")
        return raw

    def _respond(self, method: str, path: str, query: dict[str, str]) -> Response:
        route = resolve(method, path)
        response = None
        if route == 404:
            response = Response(404, f"unknown path: {path}")
        elif route == 405:
            allowed = ", ".join(allowed_methods(path))
            response = Response(405, f"method {method} is not allowed on {path}", headers={"Allow": allowed})
        elif method in UNSAFE_METHODS:
            # a body is read only from a client allowed to send it
            response = self.server.api.access_denied(self)
        if response is not None:
            if self._has_body():
                self.close_connection = True  # the unread body must not be taken for a request
            return response
        raw = self._read_body()
        self.server.connections.busy(self.request)  # whole: no longer closed for another
        body = None
        if raw.strip() and method in UNSAFE_METHODS:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        return dispatch(self.server.api.backend, str(route), Request(method, path, query, body))

    def _handle(self) -> None:
        method = self.command.upper()
        parts = urlsplit(self.path)
        path = normalize_path(parts.path)
        query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()} \
            if parts.query else {}
        try:
            response = self._respond(method, path, query)
        except ApiError as exc:
            response = Response(exc.code, exc.message)
        except DCSError as exc:
            response = Response(503, f"DCS error: {exc}".replace("\n", " "))
        except Exception as exc:  # noqa: BLE001 - answer and keep serving
            logger.exception("REST API: %s %s failed", method, path)
            response = Response(500, f"internal error: {type(exc).__name__}: {exc}".replace("\n", " "))
        self._send(method, response)

    def _send(self, method: str, response: Response) -> None:
        # OPTIONS (HAProxy's checks) answers with the status alone: no body to encode
        payload, content_type = response.payload() if method != "OPTIONS" else (b"", None)
        fields = [("Content-Type", content_type)] if content_type else []
        fields.extend(response.headers.items())
        self.send_answer(response.code, fields, payload, head_only=method == "HEAD")


class RestApiServer:
    """The daemon's REST API: ``start()`` listens on a daemon thread, ``stop()`` closes."""

    def __init__(self, backend: ApiBackend, settings: RestApiSettings) -> None:
        self.backend = backend
        self.settings = settings
        self._allowlist = build_allowlist(settings.allowlist)
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (useful with listen_port 0), else the configured one."""
        if self._httpd is not None:
            return int(self._httpd.server_address[1])
        return self.settings.listen_port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._httpd is not None:
            return
        context = make_ssl_context(self.settings)
        last_error: OSError | None = None
        for family, host in listen_candidates(self.settings.listen_host, self.settings.listen_port):
            try:
                self._httpd = _HttpServer(family, (host, self.settings.listen_port), self, context)
                break
            except OSError as exc:
                last_error = exc
        if self._httpd is None:
            raise OSError(f"cannot listen on {self.settings.listen_host}:{self.settings.listen_port}:"
                          f" {last_error}")
        self._thread = threading.Thread(target=self._httpd.serve, name="pg_ha-restapi", daemon=True)
        self._thread.start()
        logger.info("REST API listening on %s:%s", self.settings.listen_host, self.port)

    def stop(self) -> None:
        """Stop accepting, close the listener and the open connections."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.wake()
        if thread is not None:
            thread.join(timeout=5)
        httpd.server_close()
        httpd.close_connections()
        httpd.stop_workers()
        self._httpd = self._thread = None

    def worker_threads(self) -> list[threading.Thread]:
        """The connection threads of this server that have not ended yet."""
        httpd = self._httpd
        return [] if httpd is None else httpd.live_workers()

    def access_denied(self, handler: HttpHandler) -> Response | None:
        """None when the unsafe request may proceed, else the 403/401 answer."""
        allowlist = self._allowlist
        if self.settings.allowlist_include_members:
            cluster = self.backend.cluster()
            members = member_networks(m.api_url for m in cluster.members) if cluster is not None else ()
            # only members (and the allowlist); an empty tuple would mean "everyone"
            allowlist = allowlist + members or (NOBODY,)
        if not address_allowed(str(handler.client_address[0]), allowlist):
            logger.warning("REST API: refused %s %s from %s: not in restapi.allowlist", handler.command,
                           handler.path, handler.client_address[0])
            return Response(403, "Access is denied")
        connection = handler.connection
        if isinstance(connection, ssl.SSLSocket) and connection.context.verify_mode != ssl.CERT_NONE \
                and not connection.getpeercert():
            return Response(403, "client certificate required")
        reason = check_basic_auth(handler.headers.get("Authorization"), self.settings.username,
                                  self.settings.password)
        if reason:
            return Response(401, reason, headers={"WWW-Authenticate": REALM})
        return None
