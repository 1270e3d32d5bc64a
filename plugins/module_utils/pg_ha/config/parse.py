# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small validators every config section uses: one clear line naming the key."""
from __future__ import annotations

import copy
from typing import Any


class ConfigError(ValueError):
    """Invalid configuration: refuse to start (exit code 2) with this one line."""


# -- small validators -----------------------------------------------------------
def expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")
    return value


TIMING_MINIMUMS = {"loop_wait": 1, "retry_timeout": 1}
TTL_MINIMUM = TIMING_MINIMUMS["loop_wait"] + 2 * TIMING_MINIMUMS["retry_timeout"]


def adjust_timing(ttl: int, loop_wait: int, retry_timeout: int) -> tuple[int, int, int, list[str]]:
    """The (ttl, loop_wait, retry_timeout) the daemon runs with, and one warning per
    adjustment, after Patroni's _validate_and_adjust_timeouts: loop_wait and retry_timeout
    below 1 are raised to 1; when loop_wait + 2 * retry_timeout > ttl, loop_wait is reduced
    first, retry_timeout only once loop_wait is at its minimum. The one timing rule of
    config/load.py and PATCH /config.

    Where pg_ha differs on purpose: Patroni also raises ttl to 20 and retry_timeout to 3;
    pg_ha runs with a shorter lease (ttl 5 fails over in about 5 s, measured in
    docs/BENCHMARKS.md), so it keeps what it is given down to TTL_MINIMUM, the smallest ttl
    that loop_wait 1 and retry_timeout 1 fit in; a smaller one is raised to it."""
    warnings: list[str] = []
    if ttl < TTL_MINIMUM:
        warnings.append(f"ttl={ttl} can't be smaller than {TTL_MINIMUM}, adjusting to {TTL_MINIMUM}")
        ttl = TTL_MINIMUM
    values = {"loop_wait": loop_wait, "retry_timeout": retry_timeout}
    for name, minimum in TIMING_MINIMUMS.items():
        if values[name] < minimum:
            warnings.append(f"{name}={values[name]} can't be smaller than {minimum}, adjusting to {minimum}")
            values[name] = minimum
    loop_wait, retry_timeout = values["loop_wait"], values["retry_timeout"]
    min_loop_wait = TIMING_MINIMUMS["loop_wait"]
    if min_loop_wait + 2 * retry_timeout > ttl:
        new_retry = (ttl - min_loop_wait) // 2
        warnings.append(f'Violated the rule "loop_wait + 2*retry_timeout <= ttl", where ttl={ttl}. '
                        f"Adjusting loop_wait from {loop_wait} to {min_loop_wait} and retry_timeout "
                        f"from {retry_timeout} to {new_retry}")
        loop_wait, retry_timeout = min_loop_wait, new_retry
    elif loop_wait + 2 * retry_timeout > ttl:
        new_loop = ttl - 2 * retry_timeout
        warnings.append(f'Violated the rule "loop_wait + 2*retry_timeout <= ttl", where ttl={ttl} and '
                        f"retry_timeout={retry_timeout}. Adjusting loop_wait from {loop_wait} to {new_loop}")
        loop_wait = new_loop
    return ttl, loop_wait, retry_timeout, warnings


MAX_SECONDS = 10 ** 9  # timings: far above any sane value, far below etcd's lease limit (int64)
MAX_INT = 2 ** 63 - 1  # what PostgreSQL and etcd can hold


def as_int(value: Any, key: str, minimum: int | None = None, maximum: int = MAX_INT) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    expect(value, int, key)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value}")
    if value > maximum:
        raise ConfigError(f"{key}: must be <= {maximum}, got {value}")
    return int(value)


def duration(value: Any, key: str) -> int:
    """Seconds from 30, '30', '30s', '30min', '2h', '1d'."""
    if isinstance(value, str):
        text = value.strip().lower()
        for suffix, factor in (("min", 60), ("ms", 0), ("s", 1), ("h", 3600), ("d", 86400)):
            if text.endswith(suffix) and text[:-len(suffix)].strip().isdigit():
                if factor == 0:
                    raise ConfigError(f"{key}: expected seconds or more, got {value!r}")
                return int(text[:-len(suffix)]) * factor
    return as_int(value, key, 0)


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("on", "true", "yes", "1", "off", "false", "no", "0"):
        return value.lower() in ("on", "true", "yes", "1")
    raise ConfigError(f"{key}: expected a boolean, got {value!r}")


def as_str(value: Any, key: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return expect(value, str, key)


def as_section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    return expect(value, dict, key)


def split_host_port(value: str, default_port: int, key: str) -> tuple[str, int]:
    value = as_str(value, key).strip()
    if value.startswith("[") and "]" in value:  # [::1]:5432
        host, _, rest = value[1:].partition("]")
        port_text = rest.lstrip(":")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    if not host:
        raise ConfigError(f"{key}: missing host in {value!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ConfigError(f"{key}: invalid port in {value!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{key}: port out of range in {value!r}")
    return host, port


def patch_config(config: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A new dict: Patroni's patch_config (PATCH /config, edit-config --apply). Neither argument
    is modified. A null removes the key; a mapping merges into a mapping that is there and
    otherwise replaces the value as given, nulls inside kept (`{"slots": {"s": null}}` on a
    config without slots is a physical slot `s`, as in Patroni); anything else replaces."""
    result = copy.deepcopy(config)
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = patch_config(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result
