# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask the other members' REST APIs for their state, in parallel, with one deadline."""
from __future__ import annotations

import functools
import json
import logging
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.settings import RestApiSettings
from ..core.ha import PeerInfo
from ..core.model import Cluster, Member, failover_priority, no_failover
from ..http1 import Connection, HttpError

if TYPE_CHECKING:
    import ssl

logger = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peer")


@functools.lru_cache(maxsize=4)
def client_context(restapi: RestApiSettings | None) -> ssl.SSLContext | None:
    """TLS for asking the other members (they share our restapi TLS setup): trust
    restapi.cafile and present restapi.certfile, which members with verify_client need."""
    if restapi is None or not restapi.certfile:
        return None
    import ssl  # only with TLS: the daemon does not load it otherwise

    context = ssl.create_default_context(cafile=restapi.cafile or None)
    try:
        context.load_cert_chain(restapi.certfile, restapi.keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        logger.warning("cannot load restapi.certfile as a client certificate for the other members: %s", exc)
    return context


def _lsn(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def peer_from_status(name: str, body: Any) -> PeerInfo:
    """A member's GET /patroni answer; garbage fields count as 0/unknown, never raise."""
    if not isinstance(body, dict):
        return PeerInfo(name, False)
    xlog = body.get("xlog") if isinstance(body.get("xlog"), dict) else {}
    role = body.get("role")
    in_recovery = role not in ("primary", "master")
    if in_recovery:
        lsn = max(_lsn(xlog.get("received_location")), _lsn(xlog.get("replayed_location")))
    else:
        lsn = _lsn(xlog.get("location"))
    tags = body.get("tags") if isinstance(body.get("tags"), dict) else {}
    timeline = body.get("timeline")
    return PeerInfo(name=name, reachable=True, running=body.get("state") == "running",
                    in_recovery=in_recovery, wal_lsn=lsn,
                    timeline=timeline if isinstance(timeline, int) else None,
                    nofailover=no_failover(tags),
                    failover_priority=failover_priority(tags))


_context: Any = None


def _tls_context() -> Any:
    """The default client context (system CAs), made once: as urllib/http.client would."""
    global _context
    if _context is None:
        import ssl
        _context = ssl.create_default_context()
    return _context


def fetch_one(member: Member, timeout: float, context: ssl.SSLContext | None = None) -> PeerInfo:
    """GET the member's api_url (http1.py: neither urllib.request nor http.client, which the
    daemon would load for this alone). Any status carries the body: 503 on a replica is normal."""
    if not member.api_url:
        return PeerInfo(member.name, False)
    conn: Connection | None = None
    try:
        parts = urlsplit(member.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported api_url {member.api_url!r}")
        https = parts.scheme == "https"
        conn = Connection(parts.hostname, parts.port or (443 if https else 80), timeout,
                          (context or _tls_context()) if https else None)
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        body = json.loads(conn.getresponse("GET").read())
    except (OSError, ValueError, HttpError) as exc:
        logger.warning("request failed: GET %s (%s)", member.api_url, exc)
        return PeerInfo(member.name, False)
    finally:
        if conn is not None:
            conn.close()
    return peer_from_status(member.name, body)


def fetch_peers(cluster: Cluster, me: str, timeout: float,
                restapi: RestApiSettings | None = None) -> dict[str, PeerInfo]:
    members = [m for m in cluster.members if m.name != me]
    context = client_context(restapi)
    futures = {_pool.submit(fetch_one, m, timeout, context): m.name for m in members}
    done, _ = wait(futures, timeout=timeout + 0.5)
    result = {name: PeerInfo(name, False) for name in futures.values()}
    for future in done:
        info = future.result()
        result[info.name] = info
    return result


def name_in_use(cluster: Cluster, name: str, timeout: float, restapi: RestApiSettings | None = None) -> bool:
    """Another daemon runs as `name`: its member key is in the DCS and its REST API answers
    (a key left by a crashed daemon, whose API is gone, does not count: as Patroni)."""
    member = cluster.get_member(name)
    if member is None or not member.api_url:
        return False
    return fetch_one(member, timeout, client_context(restapi)).reachable
