# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One function per route name of routes.ROUTES: (backend, request) -> Response.

Read handlers use only what the last HA cycle published (backend.status(), cluster(),
config); unsafe handlers read the DCS fresh and write with compare-and-swap.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from ..core import lease
from .backend import ApiBackend
from .config_patch import deep_merge, validate_dynamic
from .health import health_status, liveness_status, readiness_status
from .messages import ApiError, Request, Response, json_object
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import metrics_text
from .switchover import handle_delete, handle_failover
from .units import parse_bool, parse_duration, parse_timestamp
from .views import cluster_as_json, history_as_json

logger = logging.getLogger(__name__)
Handler = Callable[[ApiBackend, Request], Response]

RESTART_ROLES = {"primary": "primary", "master": "primary", "standby_leader": "standby_leader",
                 "replica": "replica"}
POSTGRES_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
NO_CLUSTER = "cluster state is not known yet: no HA cycle has completed"


# -- reads -------------------------------------------------------------------
def get_health(backend: ApiBackend, request: Request) -> Response:
    code, body = health_status(request.path, request.query, backend.status(), backend.cluster(),
                               backend.config, lease_ahead=lease.ahead(backend.lease_deadline(), time.monotonic()))
    return Response(code, body)


def get_liveness(backend: ApiBackend, request: Request) -> Response:
    return Response(liveness_status(backend.last_cycle_age(), backend.config.dynamic.ttl, backend.status()))


def get_readiness(backend: ApiBackend, request: Request) -> Response:
    code, reason = readiness_status(request.query, backend.status(), backend.cluster(), backend.config)
    return Response(code, reason or None)


def get_patroni(backend: ApiBackend, request: Request) -> Response:
    return Response(200, backend.fresh_status())


def get_cluster(backend: ApiBackend, request: Request) -> Response:
    cluster = backend.cluster()
    if cluster is None:
        return Response(503, NO_CLUSTER)
    return Response(200, cluster_as_json(cluster, backend.config))


def get_history(backend: ApiBackend, request: Request) -> Response:
    cluster = backend.cluster()
    if cluster is None:
        return Response(503, NO_CLUSTER)
    return Response(200, history_as_json(cluster))


def get_config(backend: ApiBackend, request: Request) -> Response:
    """502 (as Patroni) while the DCS holds no `config` key or nothing was read yet."""
    cluster = backend.cluster()
    if cluster is None or cluster.config is None:
        return Response(502, "the cluster config is not available from the DCS")
    return Response(200, cluster.config.data)


def get_failsafe(backend: ApiBackend, request: Request) -> Response:
    """The failsafe topology (member -> REST API URL); 502 as Patroni when there is none."""
    topology = backend.failsafe_topology()
    if not isinstance(topology, dict):
        return Response(502, "failsafe_mode is not enabled or no failsafe topology is known")
    return Response(200, topology)


def post_failsafe(backend: ApiBackend, request: Request) -> Response:
    """As Patroni, an accepting member names its received/replayed position in the `lsn`
    header: the primary advances the slots of members that cascade from others with it."""
    code, text = backend.failsafe_call(request.body)
    lsn = _last_lsn(backend.status()) if code == 200 else None
    return Response(code, text, headers={"lsn": str(lsn)} if lsn is not None else {})


def _last_lsn(status: dict[str, Any]) -> int | None:
    xlog = status.get("xlog") or {}
    found = [v for k in ("received_location", "replayed_location", "location")
             if isinstance(v := xlog.get(k), int) and not isinstance(v, bool)]
    return max(found) if found else None


def get_metrics(backend: ApiBackend, request: Request) -> Response:
    text = metrics_text(backend.status(), backend.cluster(), backend.config)
    return Response(200, text, METRICS_TYPE)


# -- config ------------------------------------------------------------------
def _write_config(backend: ApiBackend, data: dict[str, Any], version: int | None) -> Response | None:
    error = validate_dynamic(data)
    if error:
        return Response(400, error)
    if not backend.dcs.set_config_value(json.dumps(data, separators=(",", ":")), version):
        return Response(409, "the config was changed by someone else meanwhile; read it again and retry")
    logger.info("dynamic config changed through the REST API")
    return None


def patch_config(backend: ApiBackend, request: Request) -> Response:
    patch = json_object(request.body, required=True)
    cluster = backend.dcs.get_cluster()
    if cluster.config is None:
        return Response(503, "the cluster config is not initialized in the DCS yet")
    merged = deep_merge(cluster.config.data, patch)
    if merged != cluster.config.data:
        refused = _write_config(backend, merged, cluster.config.version)
        if refused:
            return refused
    backend.wakeup()
    return Response(200, merged)


def put_config(backend: ApiBackend, request: Request) -> Response:
    data = json_object(request.body, required=True)  # as given, as Patroni writes it
    cluster = backend.dcs.get_cluster()
    current = cluster.config
    if current is None or current.data != data:
        refused = _write_config(backend, data, current.version if current is not None else None)
        if refused:
            return refused
    backend.wakeup()
    return Response(200, data)


# -- switchover --------------------------------------------------------------
def post_switchover(backend: ApiBackend, request: Request) -> Response:
    return handle_failover(backend, request, "switchover")


def post_failover(backend: ApiBackend, request: Request) -> Response:
    return handle_failover(backend, request, "failover")


def delete_switchover(backend: ApiBackend, request: Request) -> Response:
    return handle_delete(backend)


# -- local operations --------------------------------------------------------
def _paused(backend: ApiBackend) -> bool:
    cluster = backend.cluster()
    return cluster.paused if cluster is not None else backend.config.dynamic.pause


def post_restart(backend: ApiBackend, request: Request) -> Response:
    data = json_object(request.body, required=False)
    unknown = sorted(set(data) - {"schedule", "restart_pending", "role", "postgres_version", "timeout"})
    if unknown:
        raise ApiError(400, f"Unknown filter for the scheduled restart: {unknown[0]}")
    scheduled_at = None
    if data.get("schedule"):
        if _paused(backend):
            raise ApiError(400, "Can't schedule restart in the paused state")
        parsed = parse_timestamp(data["schedule"], "restart")
        if isinstance(parsed, tuple):
            raise ApiError(*parsed)
        scheduled_at = parsed
    role = data.get("role")
    if role is not None and role not in RESTART_ROLES:
        raise ApiError(400, "PostgreSQL role should be either primary, standby_leader, or replica")
    version = data.get("postgres_version")
    if version is not None and not (isinstance(version, str) and POSTGRES_VERSION.match(version)):
        raise ApiError(400, f"Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {version}")
    timeout = None
    if data.get("timeout") is not None:
        timeout = parse_duration(data["timeout"])
        if timeout is None or timeout <= 0:
            raise ApiError(400, "Timeout should be a positive number of seconds")
    pending = parse_bool(data.get("restart_pending"))
    if pending is None:
        raise ApiError(400, "restart_pending must be a boolean")
    code, text = backend.restart(scheduled_at, version, RESTART_ROLES.get(role) if role else None,
                                 pending, timeout)
    return Response(code, text)


def delete_restart(backend: ApiBackend, request: Request) -> Response:
    code, text = backend.cancel_scheduled_restart()
    return Response(code, text)


def post_reload(backend: ApiBackend, request: Request) -> Response:
    code, text = backend.reload()
    return Response(code, text)


def post_reinitialize(backend: ApiBackend, request: Request) -> Response:
    data = json_object(request.body, required=False)
    force = parse_bool(data.get("force"))
    from_leader = parse_bool(data.get("from_leader"))
    if force is None or from_leader is None:
        raise ApiError(400, "force and from_leader must be booleans")
    code, text = backend.reinitialize(force, from_leader)
    return Response(code, text)


HANDLERS: dict[str, Handler] = {
    "health": get_health,
    "liveness": get_liveness,
    "readiness": get_readiness,
    "patroni": get_patroni,
    "cluster": get_cluster,
    "history": get_history,
    "get_config": get_config,
    "metrics": get_metrics,
    "get_failsafe": get_failsafe,
    "post_failsafe": post_failsafe,
    "patch_config": patch_config,
    "put_config": put_config,
    "switchover": post_switchover,
    "delete_switchover": delete_switchover,
    "failover": post_failover,
    "restart": post_restart,
    "delete_restart": delete_restart,
    "reload": post_reload,
    "reinitialize": post_reinitialize,
}


def dispatch(backend: ApiBackend, name: str, request: Request) -> Response:
    """Run the handler ``name``; ApiError becomes its response."""
    try:
        return HANDLERS[name](backend, request)
    except ApiError as exc:
        return Response(exc.code, exc.message)
