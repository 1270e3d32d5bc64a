"""Three etcd members on 127.0.0.1 forming one etcd cluster, built from the harness's
EtcdServer (each keeps its own ports, data dir, log and PID)."""
from __future__ import annotations

import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.harness.common import spawn, wait_for
from tests.harness.etcd import EtcdServer, v3_post


class EtcdCluster:
    def __init__(self, size: int = 3, base_dir: Path | None = None, extra_hosts: Sequence[str] = ()) -> None:
        """extra_hosts: more loopback addresses every member also serves clients on (same port)."""
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="chaos_etcd_"))
        self.servers = [EtcdServer(name=f"etcd{i}", base_dir=self.base_dir / f"etcd{i}") for i in range(size)]
        initial = ",".join(f"{s.name}={s.peer_url}" for s in self.servers)
        for server in self.servers:
            server.base_dir.mkdir(parents=True, exist_ok=True)
            # later flags win: these override the single-member --initial-cluster of EtcdServer.argv()
            listen = ",".join([server.client_url] + [f"http://{h}:{server.client_port}" for h in extra_hosts])
            server.extra_args = ["--initial-cluster", initial, "--initial-cluster-token", "chaos",
                                 "--listen-client-urls", listen]

    @property
    def hosts(self) -> list[str]:
        return [s.host_port for s in self.servers]

    def hosts_via(self, address: str) -> list[str]:
        """Every member's client endpoint on one of the extra addresses."""
        return [f"{address}:{s.client_port}" for s in self.servers]

    def start(self, timeout: float = 60) -> EtcdCluster:
        for server in self.servers:  # all at once: none is healthy before a quorum runs
            if not server.running:
                server.proc = spawn(server.argv(), server.log_path)
                server.paused = False
        for server in self.servers:
            wait_for(server.healthy, timeout, f"etcd {server.name} healthy")
        return self

    def start_member(self, server: EtcdServer, timeout: float = 60) -> None:
        """Restart one stopped member (same data dir and ports); it needs a quorum to be healthy."""
        if not server.running:
            server.proc = spawn(server.argv(), server.log_path)
            server.paused = False

    def leader(self) -> EtcdServer | None:
        """The member every reachable member names as leader, if they agree."""
        ids: dict[str, EtcdServer] = {}
        leaders: set[str] = set()
        for server in self.servers:
            if not server.running or server.paused:
                continue
            try:
                doc = v3_post(server, "/v3/maintenance/status", {})
            except OSError:
                continue
            ids[str(doc["header"]["member_id"])] = server
            leaders.add(str(doc.get("leader", "0")))
        if len(leaders) != 1:
            return None
        return ids.get(leaders.pop())

    def wait_leader(self, timeout: float = 30) -> EtcdServer:
        return wait_for(self.leader, timeout, "an etcd leader")

    def wait_healthy(self, timeout: float = 60) -> None:
        for server in self.servers:
            wait_for(server.healthy, timeout, f"etcd {server.name} healthy")

    def pause_all(self) -> None:
        for server in self.servers:
            server.pause()

    def resume_all(self) -> None:
        for server in self.servers:
            server.resume()

    def cleanup(self) -> None:
        for server in self.servers:
            try:
                server.stop(signal.SIGKILL)
            except Exception:  # noqa: BLE001 - stop the others anyway
                pass
        for server in self.servers:
            server.cleanup()
