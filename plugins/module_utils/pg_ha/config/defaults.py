# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The defaults of the dynamic (cluster-wide) configuration: the one table settings.py's
DynamicSettings, config/load.py, the REST API, pg_hactl and the Ansible modules read.

Standard library only: the modules import it inside AnsiballZ, where psycopg2 may be absent."""
from __future__ import annotations

from typing import Any

DYNAMIC_DEFAULTS: dict[str, Any] = {
    "ttl": 30,
    "loop_wait": 10,
    "retry_timeout": 10,
    "maximum_lag_on_failover": 1048576,
    "maximum_lag_on_syncnode": -1,
    "master_start_timeout": 300,
    "check_timeline": False,
    "pause": False,
    "synchronous_mode": False,
    "synchronous_mode_strict": False,
    "synchronous_node_count": 1,
    "failsafe_mode": False,
    "member_slots_ttl": 1800,
    "postgresql": {"use_pg_rewind": False, "use_slots": True, "parameters": {}},
}
