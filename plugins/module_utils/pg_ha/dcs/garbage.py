# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Say once, clearly, which DCS key holds a value pg_ha ignores (hand-edited garbage).

The parsers in base.py turn such values into "absent"; this module only logs one WARNING per
key and version, so a bad key is visible in the log without repeating every HA cycle."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

# key -> the JSON type its value must have
SHAPES: dict[str, type] = {"config": dict, "failover": dict, "sync": dict, "history": list,
                           "status": dict, "failsafe": dict}
_reported: set[tuple[str, int]] = set()
_lock = threading.Lock()
MAX_REMEMBERED = 1000


def problem(path: str, value: str | None) -> str | None:
    """Why the value of this key is ignored, or None when it is usable."""
    if value is None:
        return None
    if path == "initialize":
        if value == "" or (value.isascii() and value.isdigit()):
            return None
        return "holds no system identifier (digits)"
    if path == "optime/leader":
        return None if value.strip().isdigit() else "is not a WAL position (an integer)"
    shape = dict if path.startswith("members/") else SHAPES.get(path)
    if shape is None:
        return None
    try:
        data: Any = json.loads(value)
    except (ValueError, RecursionError):
        return "is not valid JSON"
    if not isinstance(data, shape):
        return f"is not a JSON {'object' if shape is dict else 'array'}"
    return None


def report(nodes: Mapping[str, Any]) -> None:
    """Log each ignored key once per version; ``nodes`` maps key -> Node(value, version)."""
    for path, node in nodes.items():
        reason = problem(path, node.value)
        if reason is None:
            continue
        marker = (path, int(node.version))
        with _lock:
            if marker in _reported:
                continue
            if len(_reported) >= MAX_REMEMBERED:
                _reported.clear()
            _reported.add(marker)
        logger.warning("ignoring the DCS key %s: its value %s: %.60r", path, reason, node.value)
