# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patroni settings pg_ha accepts but does not act on: one warning line per setting that is
set, naming the key and why, instead of silently ignoring it (docs/COMPATIBILITY.md has the
whole table, implemented settings included)."""
from __future__ import annotations

from typing import Any

DCS_KINDS = ("etcd", "etcd3")

# dotted path in the local YAML -> why pg_ha does not act on it
LOCAL_NOT_SUPPORTED: dict[str, str] = {
    "thread_pool_size": "the REST API runs on its own fixed threads",
    "thread_stack_size": "pg_ha keeps the interpreter's default thread stack size",
    "restapi.thread_pool_size": "the REST API runs on its own fixed threads",
    "restapi.ciphers": "the REST API uses the ssl module's default ciphers",
    "restapi.keyfile_password": "encrypted REST API keys are not supported: use an unencrypted keyfile",
    "restapi.http_extra_headers": "the REST API sends no extra headers",
    "restapi.https_extra_headers": "the REST API sends no extra headers",
    "restapi.request_queue_size": "the REST API uses the listen backlog of its server",
    "restapi.server_tokens": "the REST API sends no Server version header",
    "postgresql.recovery_conf": "pg_ha writes the recovery settings of a replica itself",
    "postgresql.retry_timeout": "every call is bounded by the dynamic retry_timeout",
    "postgresql.use_unix_socket_repl": "pg_ha makes no replication connection to its own server "
                                       "(Patroni's only use of it)",
    "log.type": "log lines are plain text (no json)",
    "log.traceback_level": "tracebacks are logged at ERROR",
    "log.static_fields": "only used by log.type json",
    "log.max_queue_size": "log records are written directly, not through a queue",
    "log.deduplicate_heartbeat_logs": "every HA cycle logs its decision",
    "citus": "Citus clusters are not supported",
}
for _kind in DCS_KINDS:
    LOCAL_NOT_SUPPORTED.update({
        f"{_kind}.proxy": "pg_ha connects to the etcd members directly",
        f"{_kind}.use_proxies": "pg_ha connects to the etcd members directly",
        f"{_kind}.srv": "DNS SRV discovery is not supported: list the members in hosts",
        f"{_kind}.srv_suffix": "DNS SRV discovery is not supported: list the members in hosts",
        f"{_kind}.retry_timeout": "every DCS call is bounded by the dynamic retry_timeout",
    })

# dotted path in the dynamic config (bootstrap.dcs or the DCS `config` key) -> why not
DYNAMIC_NOT_SUPPORTED: dict[str, str] = {
    "primary_stop_timeout": "a primary in synchronous mode stops without a deadline",
    "max_timelines_history": "the history key keeps every timeline",
    "postgresql.recovery_conf": "pg_ha writes the recovery settings of a replica itself",
    "postgresql.pg_hba": "set pg_hba in each member's postgresql section (or bootstrap.pg_hba)",
    "postgresql.pg_ident": "set pg_ident in each member's postgresql section",
    "postgresql.pg_ctl_timeout": "set pg_ctl_timeout in each member's postgresql section",
}


def _present(data: dict[str, Any], path: str) -> bool:
    """Set to something that would matter: false, null and empty values ask for nothing."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node not in (None, False, "", {}, [])


def not_supported_lines(data: dict[str, Any], table: dict[str, str], prefix: str = "") -> list[str]:
    """One line per setting of `table` that `data` sets, naming its full key."""
    return [f"{prefix}{path}: accepted, not supported ({reason})"
            for path, reason in table.items() if _present(data, path)]


def report_local(raw: dict[str, Any], warnings: list[str]) -> None:
    warnings.extend(not_supported_lines(raw, LOCAL_NOT_SUPPORTED))
