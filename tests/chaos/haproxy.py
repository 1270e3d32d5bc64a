"""HAProxy 2.6 as a process, routing a primary listener to whichever member's REST API
answers 200 to ``OPTIONS /primary`` (the configuration Patroni documents)."""
from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.harness.common import free_port, pid_alive, port_open, spawn, stop_process, wait_for

HAPROXY = "/usr/sbin/haproxy"


def render_config(port: int, servers: Sequence[tuple[str, int, int]], stats_socket: Path) -> str:
    """servers: (name, pg_port, api_port)."""
    lines = [
        "global",
        "    maxconn 200",
        f"    stats socket {stats_socket} mode 600 level admin",
        "defaults",
        "    mode tcp",
        "    retries 1",
        "    timeout connect 1s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 1s",
        "listen primary",
        f"    bind 127.0.0.1:{port}",
        "    option httpchk OPTIONS /primary",
        "    http-check expect status 200",
        "    default-server inter 1s downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions",
    ]
    lines += [f"    server {name} 127.0.0.1:{pg} maxconn 100 check port {api}" for name, pg, api in servers]
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, workdir: Path, servers: Sequence[tuple[str, int, int]]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "haproxy.cfg"
        self.stats_socket = workdir / "haproxy.sock"
        self.log_path = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.set_servers(servers)

    def set_servers(self, servers: Sequence[tuple[str, int, int]]) -> None:
        self.servers = list(servers)
        self.config_path.write_text(render_config(self.port, self.servers, self.stats_socket))

    def start(self, timeout: float = 15) -> HAProxy:
        self.proc = spawn([HAPROXY, "-db", "-f", str(self.config_path)], self.log_path)
        wait_for(lambda: self._alive() and port_open(self.port), timeout, f"haproxy on {self.port}")
        return self

    def server_states(self) -> dict[str, str]:
        """Server name -> status (UP, DOWN, "UP 1/2"...) from the stats socket."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "primary" and row.get("svname") not in ("FRONTEND", "BACKEND"):
                states[row["svname"]] = row.get("status", "")
        return states

    def wait_only_up(self, name: str, timeout: float = 30) -> None:
        """HAProxy starts with every server UP until checked: wait until only `name` is. A
        server going down ("UP 1/2") still gets connections, so it counts as up."""
        def only() -> bool:
            states = self.server_states()
            return [n for n, st in states.items() if st.startswith("UP")] == [name] and states[name] == "UP"
        wait_for(only, timeout, f"haproxy to route only to {name}")

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"haproxy exited; see {self.log_path}")
        return True

    def stop(self) -> None:
        if self.proc is not None:
            pid = self.proc.pid
            stop_process(self.proc, signal.SIGTERM, timeout=5)
            wait_for(lambda: not pid_alive(pid), 10, f"haproxy {pid} to exit")
            self.proc = None
