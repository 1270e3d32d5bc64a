# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP/1.x request heads in, whole responses out, without the email package.

Load balancers check every member several times a second on a new connection each time:
http.server parses headers with email.parser and writes a response in several pieces.
This reads the head with plain string operations and writes one buffer per response,
which is most of the REST API's cost per health check."""
from __future__ import annotations

import time
from typing import IO

MAX_LINE = 65536
MAX_HEADERS = 100


class HeadError(Exception):
    """A malformed request head: answer `code` with `message`, then close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Headers:
    """Request headers by case-insensitive name (the last of repeated fields wins, except
    that get() returns the first, as email.message.Message does)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


def parse_request_line(raw: bytes) -> tuple[str, str, tuple[int, int]]:
    """b'GET /x HTTP/1.1\\r\\n' -> ('GET', '/x', (1, 1)); HeadError 400 when malformed."""
    line = str(raw, "iso-8859-1").rstrip("\r\n")
    words = line.split()
    if len(words) != 3:
        raise HeadError(400, f"Bad request syntax ({line!r})")
    method, target, version = words
    if not version.startswith("HTTP/"):
        raise HeadError(400, f"Bad request version ({version!r})")
    major, dot, minor = version[5:].partition(".")
    if not dot or not major.isdigit() or not minor.isdigit() or len(major) > 10 or len(minor) > 10:
        raise HeadError(400, f"Bad request version ({version!r})")
    number = (int(major), int(minor))
    if number >= (2, 0):
        raise HeadError(505, f"Invalid HTTP version ({version})")
    if target.startswith("//"):  # as http.server: never a scheme-relative path
        target = "/" + target.lstrip("/")
    return method, target, number


def read_headers(rfile: IO[bytes]) -> Headers:
    """The header fields up to the empty line; obsolete line folding is joined."""
    items: list[tuple[str, str]] = []
    while True:
        raw = rfile.readline(MAX_LINE + 1)
        if len(raw) > MAX_LINE:
            raise HeadError(431, "Line too long")
        if raw in (b"\r\n", b"\n", b""):
            return Headers(items)
        line = str(raw, "iso-8859-1").rstrip("\r\n")
        if line[:1] in (" ", "\t") and items:
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HeadError(400, f"Bad header line ({line[:80]!r})")
        items.append((name, value.strip()))
        if len(items) > MAX_HEADERS:
            raise HeadError(431, "Too many headers")


_date_cache: tuple[int, str] = (0, "")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(epoch: int) -> str:
    """RFC 9110 IMF-fixdate ('Sun, 06 Nov 1994 08:49:37 GMT'), independent of the locale."""
    t = time.gmtime(epoch)
    return (f"{DAYS[t.tm_wday]}, {t.tm_mday:02d} {MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def http_date() -> str:
    """The Date header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, format_http_date(now))
    return _date_cache[1]


def render(code: int, reason: str, headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One HTTP/1.1 response: status line, header fields, empty line, payload."""
    head = [f"HTTP/1.1 {code} {reason}"]
    head.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "strict") + payload
