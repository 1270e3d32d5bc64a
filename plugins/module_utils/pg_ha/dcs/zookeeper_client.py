# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kazoo plumbing for the ZooKeeper backend: one :class:`ZkSession` is one ZooKeeper session
(its timeout is the ttl), and every request through it is bounded by a deadline.

kazoo keeps the session alive by itself (pings) and reconnects in the background. Requests
are never queued while kazoo is (re)connecting (kazoo >= 2.7 would queue them): a queued
create or compare-and-set could reach ZooKeeper after we reported failure. Answers
(no node, node exists, bad version, not empty) are raised as kazoo's exceptions; every other
failure is a DCSError."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.protocol.states import KeeperState
from kazoo.retry import KazooRetry
from kazoo.security import ACL, make_acl

from .base import DCSError

logger = logging.getLogger(__name__)
# kazoo logs every lost connection and reconnect attempt; our DCSError says it once
logging.getLogger("kazoo.client").setLevel(logging.WARNING)
logging.getLogger("kazoo.protocol.connection").setLevel(logging.ERROR)

ANSWERS = (NoNodeError, NodeExistsError, BadVersionError, NotEmptyError)
RETRY_PAUSE = 0.05  # seconds between tries of an idempotent request within its deadline


class NotSent(ConnectionLoss):
    """kazoo was not connected: the request never left this process (safe to retry)."""


class _Client(KazooClient):  # type: ignore[misc] - kazoo has no type hints
    def _call(self, request: Any, async_object: Any) -> Any:
        if self.client_state == KeeperState.CONNECTING:  # kazoo's own state, not a node's
            async_object.set_exception(NotSent("not connected to ZooKeeper"))
            return False
        return super()._call(request, async_object)


class _Handler(SequentialThreadingHandler):  # type: ignore[misc]
    """kazoo tries each server for as long as the session timeout; we try for a shorter time
    and more often (as Patroni does), so a dead server in the list costs little."""

    def __init__(self, connect_timeout: float) -> None:
        super().__init__()
        self.connect_timeout = connect_timeout

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        if "timeout" in kwargs:
            kwargs["timeout"] = min(kwargs["timeout"], self.connect_timeout)
        return super().create_connection(*args, **kwargs)


def acls(set_acls: Sequence[tuple[str, Sequence[str]]]) -> list[ACL]:
    """Patroni's ``set_acls``: x509 principal -> permissions, for every znode we create."""
    result = []
    for principal, permissions in set_acls:
        names = {p.upper() for p in permissions}
        result.append(make_acl("x509", principal, read="READ" in names, write="WRITE" in names,
                               create="CREATE" in names, delete="DELETE" in names,
                               admin="ADMIN" in names, all="ALL" in names))
    return result


class ZkSession:
    """One KazooClient, started at once (connecting in the background), with the session
    timeout `ttl`. `on_connected` runs (in a thread of its own) after each (re)connect."""

    def __init__(self, hosts: str, ttl: int, retry_timeout: float, options: dict[str, Any],
                 on_connected: Callable[[ZkSession], None] | None = None) -> None:
        self.ttl = ttl
        self.retry_timeout = retry_timeout
        self._on_connected = on_connected
        self._live = threading.Event()
        self.state = "connecting"
        self.closed = False
        self.answered_at = 0.0  # monotonic time of the last answer ZooKeeper gave us
        self.client = _Client(hosts, timeout=ttl, handler=_Handler(max(1.0, retry_timeout / 2)),
                              connection_retry=KazooRetry(max_tries=-1, max_delay=1), **options)
        self.client.add_listener(self._listener)
        self.client.start_async()

    def _listener(self, state: str) -> None:  # in kazoo's connection thread: never block
        self.state = str(state).lower()
        if state == KazooState.CONNECTED:
            self._live.set()
            if self._on_connected is not None and not self.closed:
                threading.Thread(target=self._on_connected, args=(self,), daemon=True,
                                 name="zookeeper-rearm").start()
        else:
            self._live.clear()

    @property
    def session_id(self) -> int | None:
        client_id = self.client.client_id
        return int(client_id[0]) if client_id else None

    @property
    def negotiated_ttl(self) -> float:
        """The session timeout ZooKeeper granted (seconds); the asked one before connecting."""
        return float(self.client._session_timeout) / 1000.0

    def _failure(self, what: str, last: str) -> DCSError:
        if self.client.client_state == KeeperState.AUTH_FAILED:
            last = "authentication failed (auth_data)"
        return DCSError(f"ZooKeeper {what} failed within {self.retry_timeout}s: {last}")

    def batch(self, what: str, starts: Sequence[Callable[[KazooClient], Any]], deadline: float,
              idempotent: bool = True) -> list[Any]:
        """Send the requests of `starts` (each returns kazoo's async result) together and wait
        for all answers until `deadline`: a list of results, or of the ANSWERS exceptions.
        Idempotent requests are sent again after a lost connection; others only when they
        were never sent (else the outcome is unknown: DCSError)."""
        last = "not connected"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                raise self._failure(what, "session closed" if self.closed else last)
            if not self._live.wait(min(remaining, 0.5)):
                continue
            results: list[Any] = []
            retry = False
            try:
                pending = [start(self.client) for start in starts]
                for item in pending:
                    try:
                        results.append(item.get(timeout=max(0.0, deadline - time.monotonic())))
                    except ANSWERS as exc:
                        results.append(exc)
            except NotSent as exc:
                retry, last = True, str(exc)
            except (ConnectionLoss, SessionExpiredError, OperationTimeoutError) as exc:
                if not idempotent:
                    raise DCSError(f"ZooKeeper {what}: connection lost, outcome unknown ({exc!r})") from exc
                retry, last = True, repr(exc)
            except KazooTimeoutError as exc:
                raise DCSError(f"ZooKeeper {what}: no answer within {self.retry_timeout}s") from exc
            except Exception as exc:  # noqa: BLE001 - NoAuth, AuthFailed, closed... and kazoo's surprises
                raise DCSError(f"ZooKeeper {what}: {exc!r}") from exc
            if not retry:
                self.answered_at = time.monotonic()
                return results
            time.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))

    def call(self, what: str, start: Callable[[KazooClient], Any], deadline: float,
             idempotent: bool = True) -> Any:
        """One request; its answer, or the ANSWERS exception raised."""
        result = self.batch(what, [start], deadline, idempotent)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        """End the session (its ephemeral znodes go at once) and the client's threads."""
        self.closed = True
        try:
            self.client.stop()
            self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            logger.debug("closing the ZooKeeper client: %r", exc)
