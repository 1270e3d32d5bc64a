# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small validators every config section uses: one clear line naming the key."""
from __future__ import annotations

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


def timing_problem(ttl: int, loop_wait: int, retry_timeout: int) -> str | None:
    """Patroni's rule ttl >= loop_wait + 2 * retry_timeout: None when it holds, else the reason
    (the one check of config/load.py and PATCH /config)."""
    if ttl >= loop_wait + 2 * retry_timeout:
        return None
    return (f"ttl ({ttl}) must be >= loop_wait ({loop_wait}) + 2 * retry_timeout ({retry_timeout})"
            f" = {loop_wait + 2 * retry_timeout}")


def validate_timing(ttl: int, loop_wait: int, retry_timeout: int, where: str) -> None:
    problem = timing_problem(ttl, loop_wait, retry_timeout)
    if problem is not None:
        raise ConfigError(f"{where}.ttl: {problem}")


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
