"""A real 3-server ZooKeeper ensemble (Debian's 3.8) on 127.0.0.1, for tests that kill
ZooKeeper servers under a running pg_ha cluster.

Each server is a :class:`ZooKeeperServer` with its own client, quorum and election ports,
data dir and ``myid``; ``4lw.commands.whitelist`` lets ``srvr`` tell the leader from the
followers and ``cons`` list the sessions connected to each server. Tracked by PID: ``kill``
(kill -9) and ``cleanup`` wait with deadlines until the process is gone and nothing listens
on its ports.
"""
from __future__ import annotations

import re
import shutil
import signal
import tempfile
from pathlib import Path

from .common import free_port, port_open, spawn, wait_for
from .zookeeper import ZooKeeperServer, four_letter

MODE = re.compile(r"^Mode: (\w+)", re.MULTILINE)


class EnsembleServer(ZooKeeperServer):
    """One server of an ensemble: ``server.N`` lines for every peer, its ``myid`` file."""

    def __init__(self, myid: int, base_dir: Path) -> None:
        super().__init__(name=f"zk{myid}", base_dir=base_dir / f"zk{myid}")
        self.myid = myid
        self.quorum_port = free_port()
        self.election_port = free_port()
        self.peers: list[EnsembleServer] = []

    def write_config(self) -> None:
        super().write_config()
        (self.data_dir / "myid").write_text(f"{self.myid}\n")
        servers = [f"server.{p.myid}=127.0.0.1:{p.quorum_port}:{p.election_port}" for p in self.peers]
        with self.config_path.open("a") as fh:
            fh.write("\n".join(["quorumListenOnAllIPs=false", "standaloneEnabled=false",
                                "reconfigEnabled=false", *servers, ""]))

    def mode(self) -> str | None:
        """``leader``, ``follower``, or None while it serves no clients (no quorum, starting, dead)."""
        if not self.running:
            return None
        try:
            found = MODE.search(four_letter(self.client_port, "srvr", 1))
        except OSError:
            return None
        return found.group(1) if found else None

    def healthy(self) -> bool:
        if not self.running:
            raise RuntimeError(f"zookeeper {self.name} exited with {self.proc and self.proc.returncode}; "
                               f"see {self.log_path}")
        return self.mode() in ("leader", "follower")

    def ports(self) -> tuple[int, int, int]:
        return self.client_port, self.quorum_port, self.election_port

    def stop(self, sig: int = signal.SIGTERM) -> None:
        super().stop(sig)
        for port in (self.quorum_port, self.election_port):
            wait_for(lambda port=port: not port_open(port), 10, f"nothing to listen on 127.0.0.1:{port}")


class ZooKeeperEnsemble:
    """Three (or `size`) servers; ``start`` waits until every one serves as leader or follower."""

    def __init__(self, size: int = 3) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="pg_ha_zkens_"))
        self.servers = [EnsembleServer(i + 1, self.base_dir) for i in range(size)]
        for server in self.servers:
            server.peers = self.servers

    @property
    def hosts(self) -> list[str]:
        return [s.host_port for s in self.servers]

    def start(self, timeout: float = 120) -> ZooKeeperEnsemble:
        for server in self.servers:  # all at once: none serves before a quorum is up
            if not server.running:
                server.write_config()
                server.proc = spawn(server.argv(), server.log_path)
        for server in self.servers:
            wait_for(server.healthy, timeout, f"zookeeper {server.name} to serve as leader or follower")
        return self

    def restart(self, server: EnsembleServer, timeout: float = 120) -> None:
        """Start a stopped (killed) server again, with its data dir; wait until it serves."""
        assert not server.running, f"{server.name} is running"
        server.write_config()
        server.proc = spawn(server.argv(), server.log_path)
        wait_for(server.healthy, timeout, f"zookeeper {server.name} to rejoin as leader or follower")

    def running(self) -> list[EnsembleServer]:
        return [s for s in self.servers if s.running]

    def leader(self, timeout: float = 60) -> EnsembleServer:
        """The server whose ``srvr`` says ``Mode: leader`` (waited for: an election may be under way)."""
        return wait_for(lambda: next((s for s in self.running() if s.mode() == "leader"), None), timeout,
                        "a ZooKeeper leader (srvr: Mode: leader)")

    def followers(self) -> list[EnsembleServer]:
        return [s for s in self.running() if s.mode() == "follower"]

    def server_of_session(self, session_id: int) -> EnsembleServer | None:
        """The server the session is connected to now (its ``cons``)."""
        for server in self.running():
            try:
                if session_id in server.sessions():
                    return server
            except OSError:
                continue
        return None

    def cleanup(self) -> None:
        errors = []
        for server in self.servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                errors.append(exc)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if errors:
            raise errors[0]

    def __enter__(self) -> ZooKeeperEnsemble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
