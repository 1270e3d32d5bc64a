# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`patroni.dynamic.json` in the data directory, as Patroni keeps it: the last dynamic
configuration this member ran with. Read once at start (it wins over bootstrap.dcs), written
after a cycle in which the configuration changed, once the data directory holds a cluster.

What it is for: when the DCS lost the `config` key (a wiped or new DCS, a deleted key), the
leader writes back the configuration it runs with, not the bootstrap.dcs of its file, so no
edit made with `edit-config` or PATCH /config is lost."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..postgresql.config import write_file

logger = logging.getLogger("pg_ha")
CACHE_FILE = "patroni.dynamic.json"


def path(data_dir: str) -> str:
    return os.path.join(data_dir, CACHE_FILE)


def load(data_dir: str) -> dict[str, Any] | None:
    """The cached configuration, or None (absent; unreadable or not an object: logged)."""
    name = path(data_dir)
    try:
        with open(name, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring %s: %s", name, exc)
        return None
    if not isinstance(data, dict):
        logger.warning("ignoring %s: not a JSON object", name)
        return None
    return data


class DynamicCache:
    """Writes the file when the configuration differs from what it last wrote (or read)."""

    def __init__(self, data_dir: str, initial: dict[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self._written: str | None = _text(initial) if initial is not None else None
        self._settled: dict[str, Any] | None = None  # the config object last found in the file

    def save(self, data: dict[str, Any]) -> bool:
        """True when the file was written. Only into a data directory that holds a cluster
        (PG_VERSION): never into one that is being created or cloned. Called every cycle:
        the same config object costs nothing once it is in the file."""
        if data is self._settled:
            return False
        text = _text(data)
        if text == self._written:
            self._settled = data
            return False
        if not os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            return False
        try:
            write_file(path(self.data_dir), text, _file_mode(self.data_dir))
        except OSError as exc:
            logger.warning("could not write %s: %s", path(self.data_dir), exc)
            return False
        self._written, self._settled = text, data
        return True


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _file_mode(data_dir: str) -> int:
    """0600, or 0640 when the data directory allows group access (initdb -g), as PostgreSQL's
    own files."""
    try:
        return 0o640 if os.stat(data_dir).st_mode & 0o050 == 0o050 else 0o600
    except OSError:
        return 0o600
