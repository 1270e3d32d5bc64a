# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What bootstrap.py, custom_bootstrap.py and rewind.py use of the facade `Postgresql`
(postgresql/__init__.py), as a Protocol: the facade imports those modules, so they type
their argument with this instead of importing the facade back."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..config.settings import PostgresqlSettings
from .ctl import Ctl
from .query import Db, LocalState


class Instance(Protocol):
    ctl: Ctl
    db: Db

    @property
    def settings(self) -> PostgresqlSettings: ...

    def controldata(self) -> dict[str, str]: ...

    def sysid(self) -> str | None: ...

    def is_running(self) -> bool: ...

    def state(self) -> LocalState: ...

    def write_config(self, role: str, primary_conninfo: Mapping[str, Any] | str | None = None,
                     slot_name: str | None = None, standby_extra: Mapping[str, Any] | None = None) -> bool: ...

    def start(self, role: str, primary_conninfo: Mapping[str, Any] | str | None = None,
              slot_name: str | None = None, timeout: float = 60,
              standby_extra: Mapping[str, Any] | None = None) -> bool: ...

    def stop(self, mode: str = "fast", timeout: float = 60) -> bool: ...

    @staticmethod
    def slot_name_for(member_name: str) -> str: ...
