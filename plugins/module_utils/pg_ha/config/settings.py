# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed settings produced by config.py and consumed by every other part."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .defaults import DYNAMIC_DEFAULTS

if TYPE_CHECKING:
    from ..vip import VipSettings

_DYN = DYNAMIC_DEFAULTS  # the one table of defaults; the fields below take theirs from it
_PG = DYNAMIC_DEFAULTS["postgresql"]


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
    use_pg_rewind: bool = _PG["use_pg_rewind"]  # the dynamic default unless postgresql.* sets it locally
    use_slots: bool = _PG["use_slots"]
    enforce_hot_standby_feedback: bool = False  # permanent logical slots here need it (Patroni)
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
    # Patroni's local postgresql.* settings of config/postgresql_local.py
    bin_name: dict[str, str] = field(default_factory=dict)  # tool -> executable name in bin_dir
    pg_ctl_timeout: int = 60  # seconds pg_ctl may take to start, stop or restart
    config_dir: str | None = None  # where postgresql.conf, pg_hba.conf, pg_ident.conf live (data_dir)
    custom_conf: str | None = None  # included instead of postgresql.base.conf
    use_unix_socket: bool = False  # our own connections go through unix_socket_directories
    use_unix_socket_repl: bool = False
    before_stop: str | None = None  # run, and waited for, before every stop
    proxy_address: str | None = None  # published as proxy_url in the member key
    pg_ident: tuple[str, ...] = ()  # lines of pg_ident.conf (left alone when empty)

    @property
    def rewind_auth(self) -> Auth:
        return self.rewind or self.superuser

    @property
    def conn_url(self) -> str:
        return f"postgres://{self.connect_host}:{self.connect_port}/postgres"

    @property
    def proxy_url(self) -> str | None:
        return None if self.proxy_address is None else f"postgres://{self.proxy_address}/postgres"


@dataclass(frozen=True)
class LogSettings:
    """Patroni's `log` section (the keys pg_ha acts on)."""

    level: str = "INFO"
    format: str = "%(asctime)s %(levelname)s: %(message)s"
    dateformat: str | None = None
    dir: str | None = None  # a rotating file <dir>/pg_ha.log instead of stderr
    file_size: int = 25000000  # bytes per file before it rotates
    file_num: int = 4  # rotated files kept
    mode: int | None = None  # permissions of the log files (umask when None)
    loggers: dict[str, str] = field(default_factory=dict)  # logger name -> level


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
    kind: str  # "etcd3", "etcd" or "zookeeper"
    hosts: tuple[str, ...]  # "host:port"
    protocol: str = "http"
    username: str | None = None
    password: str | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    # zookeeper only (Patroni's names): TLS switch and key password, certificate check,
    # x509 ACLs {principal: permissions} for the znodes we create, add_auth credentials
    use_ssl: bool = False
    key_password: str | None = None
    verify: bool = True
    set_acls: tuple[tuple[str, tuple[str, ...]], ...] = ()
    auth_data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DynamicSettings:
    """Cluster-wide settings: bootstrap.dcs defaults overlaid by the DCS `config` key."""

    ttl: int = _DYN["ttl"]
    loop_wait: int = _DYN["loop_wait"]
    retry_timeout: int = _DYN["retry_timeout"]
    maximum_lag_on_failover: int = _DYN["maximum_lag_on_failover"]
    maximum_lag_on_syncnode: int = _DYN["maximum_lag_on_syncnode"]  # bytes a sync standby may lag; <= 0: off
    master_start_timeout: int = _DYN["master_start_timeout"]
    check_timeline: bool = _DYN["check_timeline"]
    pause: bool = _DYN["pause"]
    use_pg_rewind: bool = _PG["use_pg_rewind"]
    use_slots: bool = _PG["use_slots"]
    synchronous_mode: bool = _DYN["synchronous_mode"]
    synchronous_mode_strict: bool = _DYN["synchronous_mode_strict"]
    synchronous_node_count: int = _DYN["synchronous_node_count"]
    failsafe_mode: bool = _DYN["failsafe_mode"]  # keep a primary that reaches every member while the DCS is down
    synchronous_quorum: bool = False  # synchronous_mode: quorum (ANY k, Patroni 4)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)  # permanent slots (config/slots.py)
    ignore_slots: tuple[dict[str, str], ...] = ()  # matchers of slots pg_ha leaves alone
    member_slots_ttl: int = _DYN["member_slots_ttl"]  # keep a vanished member's slot this long (seconds)
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
    log: LogSettings = field(default_factory=LogSettings)
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
    def nostream(self) -> bool:
        """The nostream tag: WAL from the archive (restore_command) and pg_wal only, never
        over the replication protocol (no primary_conninfo, no slot)."""
        return bool(self.tags.get("nostream"))

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
        # Patroni (should_enforce_hot_standby_feedback): a member that keeps copies of permanent
        # logical slots runs with hot_standby_feedback=on, whatever the parameters say
        feedback = use_slots and dynamic.standby_cluster is None and not self.nofailover and \
            not self.tags.get("nostream") and any(s.get("type") == "logical" for s in dynamic.slots.values())
        pg = replace(self.postgresql, parameters=params, use_pg_rewind=use_rewind, use_slots=use_slots,
                     enforce_hot_standby_feedback=feedback)
        return replace(self, dynamic=dynamic, postgresql=pg)
