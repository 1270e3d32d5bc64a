# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers for request values: sizes ('16MB'), durations ('30s'), booleans, timestamps."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "min": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_TRUE = {"1", "true", "on", "yes", "y", "t"}
_FALSE = {"0", "false", "off", "no", "n", "f", ""}


def _number_and_unit(value: Any) -> tuple[float, str] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (float(value), "") if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _NUMBER_UNIT.match(value)
    if not match:
        return None
    return float(match.group(1)), match.group(2).lower()


def parse_size(value: Any) -> int | None:
    """Bytes of '1048576', '16MB', '1kB' (1024-based, like PostgreSQL); None when invalid."""
    parsed = _number_and_unit(value)
    if parsed is None or parsed[1] not in _SIZE_UNITS:
        return None
    return int(parsed[0] * _SIZE_UNITS[parsed[1]])


def parse_duration(value: Any) -> float | None:
    """Seconds of 30, '30', '30s', '5min', '500ms'; None when invalid or negative."""
    parsed = _number_and_unit(value)
    if parsed is None or parsed[1] not in _TIME_UNITS:
        return None
    return parsed[0] * _TIME_UNITS[parsed[1]]


def parse_bool(value: Any) -> bool | None:
    """True/False of JSON booleans and the usual spellings; None when not a boolean."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int):
        return value != 0 if value in (0, 1) else None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def is_falsy_text(value: str) -> bool:
    return value.strip().lower() in _FALSE


def parse_timestamp(value: Any, action: str, now: datetime | None = None) -> tuple[int, str] | datetime:
    """An aware datetime in the future, or (HTTP code, message) as Patroni answers:
    400 without a timezone, 422 when unparsable or in the past."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return 422, ("Unable to parse scheduled timestamp. It should be in an unambiguous format,"
                         " e.g. ISO 8601")
    else:
        return 422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
    if when.tzinfo is None:
        return 400, f"Timezone information is mandatory for the scheduled {action}"
    if when < (now or datetime.now(UTC)):
        return 422, f"Cannot schedule {action} in the past"
    return when
