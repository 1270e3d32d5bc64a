# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PATCH/PUT /config helpers: Patroni's merge (config/parse.py patch_config) and validation of
the result."""
from __future__ import annotations

from typing import Any

from ..config.load import ConfigError, dynamic_from
from ..config.parse import patch_config

# key -> smallest allowed value (None: any integer). ttl, loop_wait and retry_timeout are
# adjusted as Patroni does (config/parse.py adjust_timing, through dynamic_from), not refused.
INT_KEYS: dict[str, int | None] = {
    "ttl": None,
    "loop_wait": None,
    "retry_timeout": None,
    "maximum_lag_on_failover": 0,
    "master_start_timeout": 0,
    "primary_start_timeout": 0,
}
BOOL_KEYS = ("pause", "check_timeline", "failsafe_mode")
DICT_KEYS = ("postgresql", "standby_cluster", "slots")


deep_merge = patch_config  # PATCH /config as Patroni: null deletes, a new mapping is taken as given


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
        if minimum is not None and value < minimum:
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
    try:  # everything else the daemon checks when it applies the config (ranges, types, slots, ...)
        # timings Patroni would adjust are stored as given; every member adjusts them alike
        # (with a warning) when it applies the config, as Patroni's members do
        dynamic_from(data, "config", [])
    except ConfigError as exc:
        return str(exc)
    return None
