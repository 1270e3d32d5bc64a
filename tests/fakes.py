"""In-memory fakes shared by the unit tests: a DCS implementing AbstractDCS, an ApiBackend,
and a Config factory.

FakeDCS keeps every key of one scope as text with a global revision counter (as etcd3),
honours compare-and-swap on ``version`` and can be told to fail (``fail_with``) or to run
a hook after each write (``on_write``), e.g. to play the HA loop of another member.
"""
from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pg_ha.config.settings import (
    Config,
    DcsSettings,
    DynamicSettings,
    PostgresqlSettings,
    RestApiSettings,
)
from pg_ha.core.model import Cluster, ClusterConfig, Failover, Leader, Member, SyncState, TimelineHistory
from pg_ha.dcs.base import AbstractDCS, DCSError


def make_config(name: str = "pg0", scope: str = "demo", tags: dict[str, Any] | None = None,
                restapi: RestApiSettings | None = None, **dynamic: Any) -> Config:
    """A valid Config for tests; ``dynamic`` overrides DynamicSettings fields."""
    raw = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576}
    raw.update({k: v for k, v in dynamic.items() if k != "raw"})
    raw.update(dynamic.get("raw", {}))
    fields = {k: v for k, v in dynamic.items() if k in DynamicSettings.__dataclass_fields__}
    fields["raw"] = raw
    return Config(
        scope=scope, name=name, namespace="/service",
        restapi=restapi or RestApiSettings(listen_host="127.0.0.1", listen_port=0),
        dcs=DcsSettings(kind="etcd3", hosts=("127.0.0.1:2379",)),
        postgresql=PostgresqlSettings(name=name, scope=scope, data_dir=f"/tmp/{name}"),
        dynamic=DynamicSettings(**fields),
        tags=dict(tags or {}),
    )


def member_data(role: str = "replica", state: str = "running", lsn: int = 0, port: int = 5432,
                api_port: int = 8008, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "conn_url": f"postgres://127.0.0.1:{port}/postgres",
        "api_url": f"http://127.0.0.1:{api_port}/patroni",
        "state": state, "role": role, "xlog_location": lsn, "timeline": 1, "version": "0.1.0",
    }
    data.update(extra)
    return data


class FakeDCS(AbstractDCS):
    """Every key of the scope in a dict: path -> (revision, text)."""

    def __init__(self, name: str = "pg0", scope: str = "demo", ttl: int = 30,
                 retry_timeout: float = 10) -> None:
        super().__init__("/service", scope, name, ttl, retry_timeout)
        self.keys: dict[str, tuple[int, str]] = {}
        self.revision = 0
        self.lock = threading.RLock()
        self.fail_with: str | None = None  # every call raises DCSError(fail_with) while set
        self.on_write: list[Callable[[FakeDCS, str, str], None]] = []
        self.writes: list[tuple[str, str]] = []
        self.get_cluster_calls = 0
        self._event = threading.Event()

    # -- storage ----------------------------------------------------------------
    def _check(self) -> None:
        if self.fail_with:
            raise DCSError(self.fail_with)

    def _put(self, key: str, value: str, version: int | None = None, create: bool = False) -> bool:
        with self.lock:
            self._check()
            current = self.keys.get(key)
            if create and current is not None:
                return False
            if version is not None and (current is None or current[0] != version):
                return False
            self.revision += 1
            if value == "" and key in ("failover", "sync"):
                self.keys.pop(key, None)
            else:
                self.keys[key] = (self.revision, value)
            self.writes.append((key, value))
        if key in ("leader", "failover"):
            self._event.set()
        for hook in list(self.on_write):
            hook(self, key, value)
        return True

    def _delete(self, key: str) -> bool:
        with self.lock:
            self._check()
            existed = self.keys.pop(key, None) is not None
            self.revision += 1
        if key in ("leader", "failover"):
            self._event.set()
        return existed

    def _get(self, key: str) -> tuple[int, str] | None:
        return self.keys.get(key)

    # -- test helpers -------------------------------------------------------
    def set_json(self, key: str, value: Any) -> None:
        with self.lock:
            self.revision += 1
            self.keys[key] = (self.revision, value if isinstance(value, str) else json.dumps(value))

    def set_member(self, name: str, **data: Any) -> None:
        self.set_json(f"members/{name}", member_data(**data))

    def set_leader(self, name: str | None) -> None:
        with self.lock:
            if name is None:
                self.keys.pop("leader", None)
            else:
                self.set_json("leader", name)
        self._event.set()

    def set_config(self, data: dict[str, Any]) -> None:
        self.set_json("config", data)

    def delete(self, key: str) -> None:
        with self.lock:
            self.keys.pop(key, None)

    def value(self, key: str) -> Any:
        item = self.keys.get(key)
        return None if item is None else json.loads(item[1]) if item[1][:1] in "{[" else item[1]

    # -- AbstractDCS --------------------------------------------------------
    def get_cluster(self) -> Cluster:
        with self.lock:
            self._check()
            self.get_cluster_calls += 1
            keys = dict(self.keys)
        members = tuple(sorted(
            (Member.from_value(k.split("/", 1)[1], rev, text) for k, (rev, text) in keys.items()
             if k.startswith("members/")), key=lambda m: m.name))
        leader = Leader(keys["leader"][1], keys["leader"][0]) if "leader" in keys else None
        config = ClusterConfig.from_value(*keys["config"]) if "config" in keys else None
        failover = Failover.from_value(*keys["failover"]) if "failover" in keys else None
        sync = SyncState.from_value(*keys["sync"]) if "sync" in keys else None
        history = TimelineHistory.from_value(*keys["history"]) if "history" in keys else None
        optime = keys.get("optime/leader")
        status = json.loads(keys["status"][1]) if "status" in keys else None
        last_lsn = int(optime[1]) if optime else int((status or {}).get("optime", 0))
        failsafe = json.loads(keys["failsafe"][1]) if "failsafe" in keys else None
        return Cluster(initialize=keys["initialize"][1] if "initialize" in keys else None, config=config,
                       leader=leader, last_lsn=last_lsn, members=members, failover=failover, sync=sync,
                       history=history, status=status, failsafe=failsafe)

    def touch_member(self, data: dict[str, Any]) -> bool:
        return self._put(f"members/{self.name}", json.dumps(data))

    def attempt_to_acquire_leader(self) -> bool:
        return self._put("leader", self.name, create=True)

    def update_leader(self, leader: Leader, last_lsn: int | None) -> bool:
        with self.lock:
            self._check()
            if self.keys.get("leader", (0, ""))[1] != self.name:
                return False
        if last_lsn is not None:
            self._put("optime/leader", str(last_lsn))
        return True

    def delete_leader(self, leader: Leader | None, last_lsn: int | None = None) -> bool:
        with self.lock:
            self._check()
            if self.keys.get("leader", (0, ""))[1] != self.name:
                return False
        if last_lsn is not None:
            self._put("optime/leader", str(last_lsn))
        return self._delete("leader")

    def initialize(self, create_new: bool = True, sysid: str = "") -> bool:
        return self._put("initialize", sysid, create=create_new)

    def cancel_initialization(self) -> bool:
        return self._delete("initialize")

    def set_config_value(self, value: str, version: int | None = None) -> bool:
        return self._put("config", value, version)

    def set_failover_value(self, value: str, version: int | None = None) -> bool:
        return self._put("failover", value, version)

    def set_history_value(self, value: str) -> bool:
        return self._put("history", value)

    def set_sync_state_value(self, value: str, version: int | None = None) -> bool:
        return self._put("sync", value, version)

    def delete_sync_state(self, version: int | None = None) -> bool:
        return self._put("sync", "", version)

    def write_status(self, value: dict[str, Any]) -> bool:
        ok = self._put("status", json.dumps(value))
        if "optime" in value:
            self._put("optime/leader", str(value["optime"]))
        return ok

    def write_failsafe(self, value: dict[str, Any]) -> bool:
        return self._put("failsafe", json.dumps(value))

    def delete_cluster(self) -> bool:
        with self.lock:
            self._check()
            self.keys.clear()
        return True

    def watch(self, timeout: float) -> bool:
        fired = self._event.wait(timeout)
        self._event.clear()
        return fired

    def wakeup(self) -> None:
        self._event.set()


class FakeBackend:
    """ApiBackend over a FakeDCS: status() and cluster() are what tests put there."""

    def __init__(self, dcs: FakeDCS | None = None, config: Config | None = None,
                 status: dict[str, Any] | None = None) -> None:
        self._config = config or make_config()
        self._dcs = dcs or FakeDCS(self._config.name, self._config.scope)
        self._status: dict[str, Any] = status if status is not None else primary_status(self._config)
        self._cluster: Cluster | None = None
        self.cycle_age = 1.0
        self.lease_until: float | None = float("inf")  # the leader lease deadline (monotonic)
        self.wakeups = 0
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers: dict[str, tuple[int, str]] = {
            "restart": (200, "restarted successfully"),
            "cancel_scheduled_restart": (404, "no restarts are scheduled"),
            "reload": (202, "reload scheduled"),
            "reinitialize": (200, "reinitialize started"),
        }
        self.refresh()

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, value: Config) -> None:
        self._config = value

    @property
    def dcs(self) -> FakeDCS:
        return self._dcs

    def set_status(self, **changes: Any) -> None:
        self._status = {**self._status, **changes}

    def replace_status(self, status: dict[str, Any]) -> None:
        self._status = status

    def status(self) -> dict[str, Any]:
        return dict(self._status)

    def fresh_status(self) -> dict[str, Any]:
        return dict(self._status)

    def refresh(self) -> None:
        """Take a fresh DCS snapshot, as an HA cycle would."""
        try:
            self._cluster = self._dcs.get_cluster()
        except DCSError:
            self._cluster = None

    def forget_cluster(self) -> None:
        self._cluster = None

    def cluster(self) -> Cluster | None:
        return self._cluster

    def lease_deadline(self) -> float | None:
        return self.lease_until

    def last_cycle_age(self) -> float:
        return self.cycle_age

    def wakeup(self) -> None:
        self.wakeups += 1

    def restart(self, scheduled_at: datetime | None, postgres_version: str | None, role: str | None,
                restart_pending: bool, timeout: float | None) -> tuple[int, str]:
        self.calls.append(("restart", (scheduled_at, postgres_version, role, restart_pending, timeout)))
        return self.answers["restart"]

    def cancel_scheduled_restart(self) -> tuple[int, str]:
        self.calls.append(("cancel_scheduled_restart", ()))
        return self.answers["cancel_scheduled_restart"]

    def reload(self) -> tuple[int, str]:
        self.calls.append(("reload", ()))
        return self.answers["reload"]

    def reinitialize(self, force: bool, from_leader: bool) -> tuple[int, str]:
        self.calls.append(("reinitialize", (force, from_leader)))
        return self.answers["reinitialize"]

    def failsafe_call(self, body: Any) -> tuple[int, str]:
        """The daemon's answer, from the real keeper, for this backend's status and config."""
        from pg_ha.node.failsafe_keeper import FailsafeKeeper
        if not hasattr(self, "failsafe"):
            self.failsafe = FailsafeKeeper(self._config.name)
        running_primary = self._status.get("state") == "running" and self._status.get("role") == "primary"
        return self.failsafe.receive(body, self._config.dynamic.failsafe_mode, running_primary)

    def failsafe_topology(self) -> dict[str, Any] | None:
        cluster = self._cluster
        return cluster.failsafe if cluster is not None and self._config.dynamic.failsafe_mode else None


def primary_status(config: Config, lsn: int = 50331648) -> dict[str, Any]:
    return {
        "state": "running", "postmaster_start_time": "2024-05-01 10:00:00.000000+00:00",
        "role": "primary", "server_version": 150006, "xlog": {"location": lsn}, "timeline": 1,
        "replication": [], "dcs_last_seen": 1714557600, "database_system_identifier": "7363758386436935412",
        "patroni": {"version": "0.1.0", "scope": config.scope, "name": config.name},
    }


def replica_status(config: Config, received: int = 50331648, replayed: int = 50331648) -> dict[str, Any]:
    return {
        "state": "running", "postmaster_start_time": "2024-05-01 10:00:00.000000+00:00",
        "role": "replica", "server_version": 150006,
        "xlog": {"received_location": received, "replayed_location": replayed,
                 "replayed_timestamp": None, "paused": False},
        "timeline": 1, "replication_state": "streaming", "dcs_last_seen": 1714557600,
        "database_system_identifier": "7363758386436935412",
        "patroni": {"version": "0.1.0", "scope": config.scope, "name": config.name},
    }


def three_member_dcs(leader: str = "pg0", name: str = "pg0", config: dict[str, Any] | None = None) -> FakeDCS:
    """A FakeDCS with members pg0..pg2 (leader running as primary), config and optime."""
    dcs = FakeDCS(name)
    dcs.set_config(config if config is not None else
                   {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576})
    for index, member in enumerate(("pg0", "pg1", "pg2")):
        role = "primary" if member == leader else "replica"
        dcs.set_member(member, role=role, lsn=50331648, port=5432 + index, api_port=8008 + index)
    dcs.set_leader(leader)
    dcs.set_json("optime/leader", "50331648")
    dcs.initialize(sysid="7363758386436935412")
    return dcs


def with_dynamic(config: Config, **changes: Any) -> Config:
    return replace(config, dynamic=replace(config.dynamic, **changes))


def self_signed_certs(directory: Path) -> dict[str, str]:
    """Self-signed EC certificates for 127.0.0.1 made with the openssl CLI: 'server.crt',
    'server.key', 'client.crt', 'client.key' -> path. Each certificate is its own CA."""
    paths: dict[str, str] = {}
    for name in ("server", "client"):
        key, crt = directory / f"{name}.key", directory / f"{name}.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={name}",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        paths[f"{name}.key"], paths[f"{name}.crt"] = str(key), str(crt)
    return paths
