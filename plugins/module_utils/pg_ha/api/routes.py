# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The route table of the REST API: (method, path) -> handler name. Pure, table-tested.

Every path readable with GET also answers HEAD and OPTIONS with the same status code
and no body (HAProxy checks with ``OPTIONS /primary``)."""
from __future__ import annotations

# Health-check paths (Patroni names and aliases); GET returns the /patroni body.
HEALTH_PATHS: tuple[str, ...] = (
    "/", "/primary", "/master", "/read-write", "/leader", "/standby-leader", "/standby_leader",
    "/replica", "/read-only", "/health", "/sync", "/synchronous", "/async", "/asynchronous",
    "/read-only-sync", "/read-only-synchronous",
)

READ_PATHS: dict[str, str] = {
    "/liveness": "liveness",
    "/readiness": "readiness",
    "/patroni": "patroni",
    "/cluster": "cluster",
    "/history": "history",
    "/config": "get_config",
    "/metrics": "metrics",
    "/failsafe": "get_failsafe",
}

UNSAFE_ROUTES: dict[tuple[str, str], str] = {
    ("PATCH", "/config"): "patch_config",
    ("PUT", "/config"): "put_config",
    ("POST", "/switchover"): "switchover",
    ("DELETE", "/switchover"): "delete_switchover",
    ("POST", "/failover"): "failover",
    ("POST", "/restart"): "restart",
    ("DELETE", "/restart"): "delete_restart",
    ("POST", "/reload"): "reload",
    ("POST", "/reinitialize"): "reinitialize",
    ("POST", "/failsafe"): "post_failsafe",
}

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
UNSAFE_METHODS = ("PATCH", "PUT", "POST", "DELETE")


def _build() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for path in HEALTH_PATHS:
        for method in SAFE_METHODS:
            table[(method, path)] = "health"
    for path, name in READ_PATHS.items():
        for method in SAFE_METHODS:
            table[(method, path)] = name
    table.update(UNSAFE_ROUTES)
    return table


ROUTES: dict[tuple[str, str], str] = _build()


def normalize_path(path: str) -> str:
    """'/replica/' -> '/replica'; '' -> '/'."""
    stripped = path.rstrip("/")
    return stripped if stripped.startswith("/") else "/" + stripped


def allowed_methods(path: str) -> list[str]:
    path = normalize_path(path)
    return sorted(method for method, route_path in ROUTES if route_path == path)


def resolve(method: str, path: str) -> str | int:
    """The handler name for this request, or 404 (unknown path) / 405 (known path, other method)."""
    path = normalize_path(path)
    name = ROUTES.get((method.upper(), path))
    if name is not None:
        return name
    return 405 if allowed_methods(path) else 404
