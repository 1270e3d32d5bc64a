# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dynamic config's permanent slots and ignore_slots, as Patroni 4.1 accepts them
(patroni/global_config.py permanent_slots; patroni/dcs/__init__.py is_physical_slot,
is_logical_slot, _merge_permanent_slots). Values are normalised to
{"type": ..., "database": ..., "plugin": ...} / {"type": "physical"[, "cluster_type": ...]}."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
CONFIG_KEYS = ("permanent_replication_slots", "permanent_slots", "slots")  # Patroni's order
MATCH_KEYS = ("name", "database", "plugin", "type")


def raw_slots(dynamic: Mapping[str, Any]) -> tuple[str, Any]:
    """(key, section) of the permanent slots: the first non-empty of Patroni's three spellings."""
    for key in CONFIG_KEYS:
        if dynamic.get(key):
            return key, dynamic[key]
    return "slots", {}


def parse_slot(name: Any, value: Any, key: str = "slots") -> dict[str, Any] | str:
    """One entry of `slots` normalised, or the sentence why it is refused. Shorthand forms:
    an empty value (`name:`, `{}`) is a physical slot; a mapping without `type` is logical
    when it names both database and plugin, physical otherwise."""
    if not isinstance(name, str) or not SLOT_NAME.match(name):
        return (f"{key}: invalid permanent replication slot name {name!r}: "
                "only lower case letters, digits and '_', at most 63")
    if not value:
        return {"type": "physical"}
    if not isinstance(value, Mapping):
        return f"{key}.{name}: expected dict (or nothing for a physical slot), got {value!r}"
    database, plugin = value.get("database"), value.get("plugin")
    kind = value.get("type") or ("logical" if database and plugin else "physical")
    if kind == "physical":
        cluster_type = value.get("cluster_type")
        if cluster_type not in (None, "primary", "standby"):
            return f"{key}.{name}.cluster_type: expected primary or standby, got {cluster_type!r}"
        return {"type": "physical", **({"cluster_type": cluster_type} if cluster_type else {})}
    if kind != "logical":
        return f"{key}.{name}.type: expected physical or logical, got {kind!r}"
    if not (isinstance(database, str) and database and isinstance(plugin, str) and plugin):
        return f"{key}.{name}: a logical slot needs database and plugin"
    return {"type": "logical", "database": database, "plugin": plugin}


def parse_slots(raw: Any, key: str = "slots") -> tuple[dict[str, dict[str, Any]], list[str]]:
    """All permanent slots normalised, and the sentences for the entries refused."""
    if not raw:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [f"{key}: expected dict, got {type(raw).__name__}"]
    slots: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, value in raw.items():
        parsed = parse_slot(name, value, key)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            slots[name] = parsed
    return slots, problems


def parse_ignore_slots(raw: Any, key: str = "ignore_slots") -> tuple[tuple[dict[str, str], ...], list[str]]:
    """`ignore_slots`: a list of matchers, each with some of name, database, plugin, type."""
    if not raw:
        return (), []
    if not isinstance(raw, list):
        return (), [f"{key}: expected a list"]
    matchers: list[dict[str, str]] = []
    problems: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not item:
            problems.append(f"{key}[{i}]: expected dict with name, database, plugin or type")
            continue
        unknown = set(item) - set(MATCH_KEYS)
        if unknown:
            problems.append(f"{key}[{i}]: unknown keys {', '.join(sorted(map(str, unknown)))}")
            continue
        matchers.append({k: str(v) for k, v in item.items() if v not in (None, "")})
    return tuple(matchers), problems
