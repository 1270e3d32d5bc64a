"""The one DCS server both daemons run on in a bench: etcd (the default) or ZooKeeper
(``--dcs zookeeper``), started as a process and tracked by PID, and how its load is counted."""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.harness.etcd import EtcdServer
from tests.harness.zookeeper import ZooKeeperServer, four_letter, znodes

from . import probes

KINDS = ("etcd", "zookeeper")
CONS_LINE = re.compile(r"recved=(\d+).*?sid=0x([0-9a-f]+)")


@dataclass
class BenchDcs:
    """`section` is the config file's DCS section for both daemons (``etcd3`` / ``zookeeper``);
    `load_metric` the name of the idle-load sample."""

    kind: str
    server: EtcdServer | ZooKeeperServer

    @classmethod
    def create(cls, kind: str) -> BenchDcs:
        if kind == "zookeeper":
            return cls(kind, ZooKeeperServer(name="bench", base_dir=Path(tempfile.mkdtemp(prefix="bench_zk_"))))
        return cls(kind, EtcdServer(base_dir=Path(tempfile.mkdtemp(prefix="bench_etcd_"))))

    @property
    def section(self) -> str:
        return "zookeeper" if self.kind == "zookeeper" else "etcd3"

    @property
    def load_metric(self) -> str:
        return "zk_packets_per_member_min" if self.kind == "zookeeper" else "etcd_req_per_member_min"

    @property
    def host_port(self) -> str:
        return self.server.host_port

    @property
    def base_dir(self) -> Path:
        return self.server.base_dir

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def start(self) -> None:
        self.server.start()

    def cleanup(self) -> None:
        self.server.cleanup()

    def requests(self, scope: str) -> dict[str, float]:
        """Counters of what the scope's members sent so far, by kind of request.

        etcd: its /metrics per method (the whole server: one cluster runs at a time).
        ZooKeeper: ``cons``' ``recved`` (packets received: requests and pings) of the sessions
        that own the scope's member znodes, one counter per member session."""
        if isinstance(self.server, EtcdServer):
            return probes.etcd_requests(self.server.client_url)
        prefix = f"/service/{scope}/members/"
        sessions = {stat.ephemeralOwner for path, (_value, stat) in znodes(self.server, prefix).items()
                    if stat.ephemeralOwner}
        counts: dict[str, float] = {}
        for line in four_letter(self.server.client_port, "cons").splitlines():
            found = CONS_LINE.search(line)
            if found and int(found.group(2), 16) in sessions:
                counts[f"zk session 0x{found.group(2)}"] = float(found.group(1))
        return counts
