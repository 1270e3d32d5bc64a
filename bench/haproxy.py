"""HAProxy in front of one cluster: a primary listener routed by ``OPTIONS /primary`` checks on
each member's REST port, with the issue's timing preset (identical for both daemons)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness.common import free_port, port_open, spawn, stop_process, wait_for

from .cluster import BenchMember
from .registry import Registry

# The preset under test ("RTO preset" of issue 7); the haproxy role's defaults are documented beside it.
# the haproxy role's preset (roles/haproxy/defaults/main.yml: haproxy_timing)
CHECK = "inter 1s downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions"
TIMEOUTS = {"connect": "4s", "client": "30m", "server": "30m", "check": "5s", "queue": "1m"}


def render(port: int, members: list[BenchMember]) -> str:
    lines = [
        "global",
        "    log stdout format iso local0",
        "    maxconn 1000",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option dontlognull",
        "    retries 2",
        *(f"    timeout {name} {value}" for name, value in TIMEOUTS.items()),
        "",
        "listen primary",
        f"    bind 127.0.0.1:{port}",
        "    option httpchk",
        "    http-check send meth OPTIONS uri /primary",
        "    http-check expect status 200",
        f"    default-server {CHECK}",
    ]
    lines += [f"    server {m.name} 127.0.0.1:{m.pg_port} maxconn 200 check port {m.api_port}" for m in members]
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, members: list[BenchMember], workdir: Path, registry: Registry) -> None:
        self.port = free_port()
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.config_path.write_text(render(self.port, members))
        self.registry = registry
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(["/usr/sbin/haproxy", "-db", "-f", str(self.config_path)], self.log_path)
        self.registry.add_process(self.proc.pid, "haproxy")
        wait_for(lambda: port_open(self.port), 10, f"haproxy on port {self.port}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=5)
        self.proc = None
