# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""REST client of the pg_ha (and Patroni) API, used by pg_hactl and every Ansible module.

Standard library only: it runs inside AnsiballZ on hosts without any pip package.
Every call returns ``(HTTP status, body)`` -- the body JSON-decoded when the server says
JSON, else text -- and raises :class:`PgHaClientError` (one clear line) only when no
HTTP answer could be obtained (refused, unresolvable, timed out, TLS failure).
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

# How long a switchover/failover may wait for its outcome when no timeout is given: the
# server's own default deadline is max(30, 2 * ttl + loop_wait) seconds.
SWITCHOVER_WAIT = 600.0
SWITCHOVER_MARGIN = 30.0


class PgHaClientError(Exception):
    """No HTTP answer: the message says what failed, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def base_url_from_api_url(api_url: str) -> str:
    """'http://h:8008/patroni' -> 'http://h:8008' (a member's api_url to a base URL)."""
    text = api_url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    return f"{parts.scheme}://{parts.netloc}"


class PgHaClient:
    def __init__(self, base_url: str, username: str | None = None, password: str | None = None,
                 cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None,
                 verify: bool = True, timeout: float = 10) -> None:
        text = base_url.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PgHaClientError(f"invalid REST API URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise PgHaClientError(f"invalid port in REST API URL: {base_url!r}") from None
        self.prefix = parts.path.rstrip("/")
        self.base_url = f"{parts.scheme}://{parts.netloc}{self.prefix}"
        self.username = username
        self.password = password
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile
        self.verify = verify
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None

    # -- transport ----------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                context = ssl.create_default_context(cafile=self.cafile)
                if not self.verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if self.certfile:
                    context.load_cert_chain(self.certfile, self.keyfile or None)
            except (OSError, ssl.SSLError) as exc:
                raise PgHaClientError(f"cannot load the TLS files for {self.base_url}: {exc}") from None
            self._context = context
        return self._context

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self._ssl_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, has_json: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "Connection": "close"}
        if has_json:
            headers["Content-Type"] = "application/json"
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return headers

    @staticmethod
    def _decode(raw: bytes, content_type: str) -> Any:
        text = raw.decode("utf-8", errors="replace")
        if "json" in content_type.lower() and text.strip():
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text

    def request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> tuple[int, Any]:
        """Send one request; (status, decoded body). Raises PgHaClientError without an answer."""
        code, decoded = self.request_with_headers(method, path, body, timeout)[:2]
        return code, decoded

    def request_with_headers(self, method: str, path: str, body: Any = None,
                             timeout: float | None = None) -> tuple[int, Any, dict[str, str]]:
        """As request, with the answer's headers (lower-case names)."""
        wait = self.timeout if timeout is None else timeout
        url = f"{self.base_url}{path}"
        payload: bytes | None = None
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        conn = self._connection(wait)
        try:
            conn.request(method.upper(), self.prefix + path, body=payload, headers=self._headers(body is not None))
            response = conn.getresponse()
            raw = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, self._decode(raw, response.getheader("Content-Type") or ""), headers
        except TimeoutError:
            raise PgHaClientError(f"{method.upper()} {url} timed out after {wait:g}s") from None
        except ssl.SSLError as exc:
            raise PgHaClientError(f"TLS error talking to {url}: {exc}") from None
        except socket.gaierror as exc:
            raise PgHaClientError(f"cannot resolve {self.host}: {exc.strerror or exc}") from None
        except ConnectionRefusedError:
            raise PgHaClientError(f"cannot connect to {self.base_url}: connection refused") from None
        except OSError as exc:
            raise PgHaClientError(f"cannot talk to {url}: {exc.strerror or exc}") from None
        except http.client.HTTPException as exc:
            raise PgHaClientError(f"invalid HTTP answer from {url}: {type(exc).__name__} {exc}") from None
        finally:
            conn.close()

    # -- reads --------------------------------------------------------------
    def get_status(self) -> tuple[int, Any]:
        """GET /patroni: this member's status."""
        return self.request("GET", "/patroni")

    def get_cluster(self) -> tuple[int, Any]:
        return self.request("GET", "/cluster")

    def get_history(self) -> tuple[int, Any]:
        return self.request("GET", "/history")

    def get_config(self) -> tuple[int, Any]:
        return self.request("GET", "/config")

    def health(self, path: str = "/health") -> int:
        """Status code of a health-check path ('/primary', '/replica?lag=16MB', ...)."""
        return self.request("GET", path)[0]

    # -- changes ------------------------------------------------------------
    def patch_config(self, changes: dict[str, Any]) -> tuple[int, Any]:
        """Deep-merge ``changes`` into the cluster config (None values delete keys)."""
        return self.request("PATCH", "/config", changes)

    def put_config(self, config: dict[str, Any]) -> tuple[int, Any]:
        return self.request("PUT", "/config", config)

    def _failover(self, path: str, body: dict[str, Any], timeout: float | None) -> tuple[int, Any]:
        if timeout is not None:
            body["timeout"] = timeout
            wait = timeout + SWITCHOVER_MARGIN
        else:
            wait = max(self.timeout, SWITCHOVER_WAIT)
        if body.get("scheduled_at"):
            wait = self.timeout
        return self.request("POST", path, body, timeout=wait)

    def switchover(self, leader: str, candidate: str | None = None,
                   scheduled_at: datetime | str | None = None, timeout: float | None = None) -> tuple[int, Any]:
        """POST /switchover; waits for the outcome unless scheduled (202)."""
        body: dict[str, Any] = {"leader": leader}
        if candidate:
            body["candidate"] = candidate
        if scheduled_at:
            body["scheduled_at"] = scheduled_at.isoformat() if isinstance(scheduled_at, datetime) else scheduled_at
        return self._failover("/switchover", body, timeout)

    def failover(self, candidate: str, leader: str | None = None, timeout: float | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"candidate": candidate}
        if leader:
            body["leader"] = leader
        return self._failover("/failover", body, timeout)

    def cancel_switchover(self) -> tuple[int, Any]:
        """DELETE /switchover: drop a scheduled switchover (404 when none)."""
        return self.request("DELETE", "/switchover")

    def restart(self, schedule: datetime | str | None = None, restart_pending: bool = False,
                role: str | None = None, postgres_version: str | None = None,
                timeout: float | None = None) -> tuple[int, Any]:
        """POST /restart on this member (scheduled when ``schedule`` is given)."""
        body: dict[str, Any] = {}
        if schedule:
            body["schedule"] = schedule.isoformat() if isinstance(schedule, datetime) else schedule
        if restart_pending:
            body["restart_pending"] = True
        if role:
            body["role"] = role
        if postgres_version:
            body["postgres_version"] = postgres_version
        wait = self.timeout
        if timeout is not None:
            body["timeout"] = timeout
            wait = max(wait, timeout + SWITCHOVER_MARGIN)
        elif not schedule:
            wait = max(wait, SWITCHOVER_WAIT)  # an immediate restart answers when PostgreSQL is up
        return self.request("POST", "/restart", body, timeout=wait)

    def cancel_restart(self) -> tuple[int, Any]:
        return self.request("DELETE", "/restart")

    def reload(self) -> tuple[int, Any]:
        return self.request("POST", "/reload")

    def reinitialize(self, force: bool = False, from_leader: bool = False) -> tuple[int, Any]:
        return self.request("POST", "/reinitialize", {"force": force, "from_leader": from_leader},
                            timeout=max(self.timeout, SWITCHOVER_WAIT))
