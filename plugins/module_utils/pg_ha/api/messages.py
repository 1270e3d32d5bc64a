# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transport-free request/response values passed between the HTTP glue and the handlers."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


class ApiError(Exception):
    """A handler's refusal: answered with ``code`` and the one-line ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # normalized, without the query string
    query: dict[str, str] = field(default_factory=dict)  # first value of each parameter
    body: Any = None  # decoded JSON, None when the request had no body


@dataclass(frozen=True)
class Response:
    code: int
    body: Any = None  # str -> text, dict/list -> JSON, None -> empty
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str | None]:
        """Encoded body and its content type."""
        if self.body is None:
            return b"", self.content_type
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), self.content_type or TEXT_TYPE
        text = json.dumps(self.body, default=str, separators=(",", ":"))
        return text.encode("utf-8"), self.content_type or JSON_TYPE


def json_object(body: Any, required: bool) -> dict[str, Any]:
    """The request body as a JSON object (``{}`` when optional and absent), else ApiError 400."""
    if body is None:
        if required:
            raise ApiError(400, "request body must be a JSON object")
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    if required and not body:
        raise ApiError(400, "request body must be a non-empty JSON object")
    return body
