# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask the other members' REST APIs for their state, in parallel, with one deadline."""
from __future__ import annotations

import functools
import json
import logging
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from .dcs.base import Cluster, Member, failover_priority
from .ha import PeerInfo
from .settings import RestApiSettings

logger = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peer")


@functools.lru_cache(maxsize=4)
def client_context(restapi: RestApiSettings | None) -> ssl.SSLContext | None:
    """TLS for asking the other members (they share our restapi TLS setup): trust
    restapi.cafile and present restapi.certfile, which members with verify_client need."""
    if restapi is None or not restapi.certfile:
        return None
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
                    nofailover=bool(tags.get("nofailover", False)) or failover_priority(tags) <= 0,
                    failover_priority=failover_priority(tags))


def fetch_one(member: Member, timeout: float, context: ssl.SSLContext | None = None) -> PeerInfo:
    if not member.api_url:
        return PeerInfo(member.name, False)
    try:
        with urllib.request.urlopen(member.api_url, timeout=timeout,  # noqa: S310 - our peers
                                    context=context if member.api_url.startswith("https:") else None) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503 on a replica still carries the status body
        try:
            body = json.loads(exc.read())
        except (ValueError, OSError):
            return PeerInfo(member.name, False)
    except (OSError, ValueError) as exc:
        logger.warning("request failed: GET %s (%s)", member.api_url, exc)
        return PeerInfo(member.name, False)
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
