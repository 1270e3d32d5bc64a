# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed settings produced by config.py and consumed by every other part."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .vip import VipSettings

DYNAMIC_DEFAULTS: dict[str, Any] = {
    "ttl": 30,
    "loop_wait": 10,
    "retry_timeout": 10,
    "maximum_lag_on_failover": 1048576,
    "master_start_timeout": 300,
    "check_timeline": False,
    "pause": False,
    "synchronous_mode": False,
    "synchronous_mode_strict": False,
    "synchronous_node_count": 1,
    "failsafe_mode": False,
    "postgresql": {"use_pg_rewind": False, "use_slots": True, "parameters": {}},
}


# libpq options postgresql.authentication.<user> may carry beside username/password (Patroni's list)
AUTH_OPTIONS = ("sslmode", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir",
                "gssencmode", "channel_binding", "sslnegotiation")


@dataclass(frozen=True)
class Auth:
    username: str
    password: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # AUTH_OPTIONS given for this user, in that order

    @property
    def conn_options(self) -> dict[str, str]:
        return dict(self.options)


@dataclass(frozen=True)
class PostgresqlSettings:
    name: str
    scope: str
    data_dir: str
    bin_dir: str = "/usr/lib/postgresql/15/bin"
    listen_hosts: str = "127.0.0.1"  # value of listen_addresses
    port: int = 5432
    connect_host: str = "127.0.0.1"
    connect_port: int = 5432
    pgpass: str = "/tmp/pgpass"
    superuser: Auth = Auth("postgres")
    replication: Auth = Auth("replicator")
    rewind: Auth | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # effective: dynamic <- local
    pg_hba: tuple[str, ...] = ()  # postgresql.pg_hba, or bootstrap.pg_hba when empty
    use_pg_rewind: bool = False
    use_slots: bool = True
    create_replica_methods: tuple[str, ...] = ("basebackup",)
    replica_method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    basebackup: tuple[Any, ...] = ()  # extra pg_basebackup options (str or {k: v})
    initdb: tuple[Any, ...] = ()  # bootstrap.initdb options (str or {k: v})
    bootstrap_method: str | None = None  # bootstrap.method other than initdb: a custom command
    bootstrap_method_options: dict[str, Any] = field(default_factory=dict)  # bootstrap.<method>
    post_bootstrap: str | None = None  # bootstrap.post_bootstrap (or post_init) script
    remove_data_directory_on_rewind_failure: bool = False
    remove_data_directory_on_diverged_timelines: bool = False
    callbacks: dict[str, str] = field(default_factory=dict)
    pre_promote: str | None = None

    @property
    def rewind_auth(self) -> Auth:
        return self.rewind or self.superuser

    @property
    def conn_url(self) -> str:
        return f"postgres://{self.connect_host}:{self.connect_port}/postgres"


@dataclass(frozen=True)
class RestApiSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8008
    connect_address: str = "127.0.0.1:8008"
    username: str | None = None
    password: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    verify_client: str | None = None
    allowlist: tuple[str, ...] = ()
    allowlist_include_members: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    @property
    def api_url(self) -> str:
        return f"{self.scheme}://{self.connect_address}/patroni"


@dataclass(frozen=True)
class DcsSettings:
    kind: str  # "etcd3" or "etcd"
    hosts: tuple[str, ...]  # "host:port"
    protocol: str = "http"
    username: str | None = None
    password: str | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class DynamicSettings:
    """Cluster-wide settings: bootstrap.dcs defaults overlaid by the DCS `config` key."""

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10
    maximum_lag_on_failover: int = 1048576
    maximum_lag_on_syncnode: int = -1  # bytes a synchronous standby may lag before it is replaced; <= 0: off
    master_start_timeout: int = 300
    check_timeline: bool = False
    pause: bool = False
    use_pg_rewind: bool = False
    use_slots: bool = True
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False
    synchronous_node_count: int = 1
    failsafe_mode: bool = False  # keep a primary that reaches every member while the DCS is down
    synchronous_quorum: bool = False  # synchronous_mode: quorum (ANY k, Patroni 4)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)  # permanent replication slots
    member_slots_ttl: int = 1800  # keep a vanished member's slot this long (seconds)
    standby_cluster: dict[str, Any] | None = None  # replicate from another cluster's primary
    parameters: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    scope: str
    name: str
    namespace: str
    restapi: RestApiSettings
    dcs: DcsSettings
    postgresql: PostgresqlSettings
    dynamic: DynamicSettings
    bootstrap_dcs: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    watchdog: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)
    vip: VipSettings | None = None
    local_parameters: dict[str, Any] = field(default_factory=dict)
    local_use_pg_rewind: bool | None = None
    local_use_slots: bool | None = None
    path: str | None = None

    @property
    def nofailover(self) -> bool:
        """As Patroni: the nofailover tag, when given, wins over failover_priority."""
        if self.tags.get("nofailover") is not None:
            return bool(self.tags["nofailover"])
        return "failover_priority" in self.tags and self.failover_priority <= 0

    @property
    def failover_priority(self) -> int:
        value = self.tags.get("failover_priority", 1)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1

    def with_dynamic(self, dynamic: DynamicSettings) -> Config:
        """This config with another dynamic layer; local postgresql settings win."""
        params = dict(dynamic.parameters)
        params.update(self.local_parameters)
        use_rewind = dynamic.use_pg_rewind if self.local_use_pg_rewind is None else self.local_use_pg_rewind
        use_slots = dynamic.use_slots if self.local_use_slots is None else self.local_use_slots
        pg = replace(self.postgresql, parameters=params, use_pg_rewind=use_rewind, use_slots=use_slots)
        return replace(self, dynamic=dynamic, postgresql=pg)
