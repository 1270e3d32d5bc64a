# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which new connections the accept loop answers itself, without waking a worker thread.

A load balancer checks every member several times a second (a member marked down every
250 ms with the haproxy role's preset), each check a new connection carrying one small
request that is already in the socket when it is accepted. Handing it to a worker costs
a thread wakeup and a queue round trip, more than the answer itself. The accept loop
answers such a request when all of it is there and it is one-shot (the connection ends
with the answer) and read-only from memory (health, liveness, readiness, /patroni);
everything else goes to a worker as before. Pure: decides on the bytes peeked."""
from __future__ import annotations

import io

from .routes import SAFE_METHODS, resolve
from .wire import HeadError, parse_request_line, read_headers

INLINE_ROUTES = frozenset({"health", "liveness", "readiness", "patroni"})
PEEK_BYTES = 4096
_STARTS = (b"OPTIONS /", b"GET /", b"HEAD /")


def answer_inline(peeked: bytes) -> bool:
    """True when `peeked` is exactly one whole request head for INLINE_ROUTES, without a
    body, after which the connection closes (HTTP/1.0 without keep-alive, or
    ``Connection: close``)."""
    if (len(peeked) >= PEEK_BYTES or not peeked.startswith(_STARTS) or not peeked.endswith(b"\r\n\r\n")
            or peeked.count(b"\r\n\r\n") != 1):
        return False
    line, _, rest = peeked.partition(b"\r\n")
    try:
        method, target, version = parse_request_line(line)
    except HeadError:
        return False
    if method not in SAFE_METHODS or resolve(method, target.partition("?")[0]) not in INLINE_ROUTES:
        return False
    try:
        headers = read_headers(io.BytesIO(rest))
    except HeadError:
        return False
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0" or "expect" in headers:
        return False
    connection = (headers.get("connection") or "").lower()
    return connection == "close" or (version < (1, 1) and connection != "keep-alive")
