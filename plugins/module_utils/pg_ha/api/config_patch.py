# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PATCH/PUT /config helpers: deep merge (null deletes) and validation of the result."""
from __future__ import annotations

from typing import Any

from ..config.defaults import DYNAMIC_DEFAULTS
from ..config.load import ConfigError, dynamic_from, merge_dicts
from ..config.parse import timing_problem

INT_KEYS: dict[str, int] = {  # key -> smallest allowed value
    "ttl": 1,
    "loop_wait": 1,
    "retry_timeout": 1,
    "maximum_lag_on_failover": 0,
    "master_start_timeout": 0,
    "primary_start_timeout": 0,
}
BOOL_KEYS = ("pause", "check_timeline", "failsafe_mode")
DICT_KEYS = ("postgresql", "standby_cluster", "slots")


deep_merge = merge_dicts  # PATCH /config: null deletes, as in the local config layers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_dynamic(data: dict[str, Any]) -> str | None:
    """None when ``data`` is an acceptable dynamic config, else a one-line reason."""
    for key, minimum in INT_KEYS.items():
        if key not in data:
            continue
        value = data[key]
        if not _is_int(value):
            return f"{key} must be an integer, got {value!r}"
        if value < minimum:
            return f"{key} must be >= {minimum}, got {value}"
    for key in BOOL_KEYS:
        if key in data and not isinstance(data[key], bool):
            return f"{key} must be a boolean, got {data[key]!r}"
    for key in DICT_KEYS:
        if key in data and not isinstance(data[key], dict):
            return f"{key} must be a mapping, got {type(data[key]).__name__}"
    postgresql = data.get("postgresql")
    if isinstance(postgresql, dict) and "parameters" in postgresql \
            and not isinstance(postgresql["parameters"], dict):
        return "postgresql.parameters must be a mapping"
    ttl = data.get("ttl", DYNAMIC_DEFAULTS["ttl"])
    loop_wait = data.get("loop_wait", DYNAMIC_DEFAULTS["loop_wait"])
    retry_timeout = data.get("retry_timeout", DYNAMIC_DEFAULTS["retry_timeout"])
    problem = timing_problem(ttl, loop_wait, retry_timeout)
    if problem is not None:
        return problem
    try:  # everything else the daemon checks when it applies the config (ranges, types, slots, ...)
        dynamic_from(data, "config")
    except ConfigError as exc:
        return str(exc)
    return None
