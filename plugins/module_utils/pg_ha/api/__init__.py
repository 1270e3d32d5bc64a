# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The REST API (Patroni-compatible endpoints): server, routing and pure handlers."""
from __future__ import annotations

from .server import RestApiServer

__all__ = ["RestApiServer"]
