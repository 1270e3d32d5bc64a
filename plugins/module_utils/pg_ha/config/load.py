# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local YAML (Patroni's schema) + PATRONI_*/PG_HA_* environment -> one validated Config.

The dynamic (cluster-wide) layer is `bootstrap.dcs` until the DCS `config` key exists;
:func:`dynamic_from` turns either into DynamicSettings. Errors are one line naming the key.
"""
from __future__ import annotations

import copy
import logging
import os
import re
from typing import Any

from ..vip import parse_vip
from ..watchdog.settings import WatchdogConfigError, parse_watchdog
from .compat import DYNAMIC_NOT_SUPPORTED, not_supported_lines, report_local
from .defaults import DYNAMIC_DEFAULTS
from .local import BIN_NAMES, log_settings, postgresql_local
from .parse import (
    MAX_SECONDS,
    ConfigError,
    adjust_timing,
    as_bool,
    as_int,
    as_section,
    as_str,
    duration,
    expect,
    split_host_port,
)
from .settings import (
    AUTH_OPTIONS,
    Auth,
    Config,
    DcsSettings,
    DynamicSettings,
    PostgresqlSettings,
    RestApiSettings,
)
from .slots import parse_ignore_slots, parse_slots, raw_slots
from .zookeeper import ENV_KEYS as ZOOKEEPER_ENV_KEYS
from .zookeeper import zookeeper_settings

logger = logging.getLogger(__name__)


KNOWN_KEYS: dict[str, Any] = {
    "scope": None, "name": None, "namespace": None, "thread_pool_size": None, "thread_stack_size": None,
    "restapi": {"listen", "connect_address", "authentication", "certfile", "keyfile", "keyfile_password",
                "cafile", "ciphers", "verify_client", "allowlist", "allowlist_include_members",
                "http_extra_headers", "https_extra_headers", "request_queue_size", "server_tokens",
                "thread_pool_size"},
    "etcd": None, "etcd3": None, "zookeeper": None,
    "bootstrap": {"dcs", "initdb", "pg_hba", "method", "post_bootstrap",
                                                "post_init", "users"},
    "postgresql": None, "watchdog": {"mode", "device", "safety_margin", "driver"}, "tags": None,
    "log": None, "ctl": None, "citus": None, "vip": None, "failsafe": None,
}
KNOWN_DCS = ("etcd3", "etcd", "zookeeper")
UNSUPPORTED_DCS = ("consul", "kubernetes", "exhibitor", "raft")
ETCD_KEYS = {"host", "hosts", "url", "proxy", "srv", "srv_suffix", "protocol", "username", "password",
             "cacert", "cert", "key", "retry_timeout", "use_proxies"}
POSTGRESQL_KEYS = {"listen", "connect_address", "proxy_address", "data_dir", "bin_dir", "bin_name",
                   "config_dir", "pgpass", "authentication", "parameters", "pg_hba", "pg_ident",
                   "create_replica_methods", "basebackup", "callbacks", "use_pg_rewind", "use_slots",
                   "use_unix_socket", "use_unix_socket_repl", "remove_data_directory_on_rewind_failure",
                   "remove_data_directory_on_diverged_timelines", "pg_ctl_timeout", "recovery_conf",
                   "custom_conf", "pre_promote", "before_stop", "retry_timeout"}


# -- environment --------------------------------------------------------------
_ENV_PATHS: dict[str, tuple[str, ...]] = {
    "NAME": ("name",), "SCOPE": ("scope",), "NAMESPACE": ("namespace",),
    "RESTAPI_LISTEN": ("restapi", "listen"), "RESTAPI_CONNECT_ADDRESS": ("restapi", "connect_address"),
    "RESTAPI_USERNAME": ("restapi", "authentication", "username"),
    "RESTAPI_PASSWORD": ("restapi", "authentication", "password"),
    "RESTAPI_CERTFILE": ("restapi", "certfile"), "RESTAPI_KEYFILE": ("restapi", "keyfile"),
    "RESTAPI_CAFILE": ("restapi", "cafile"), "RESTAPI_VERIFY_CLIENT": ("restapi", "verify_client"),
    "RESTAPI_ALLOWLIST": ("restapi", "allowlist"),
    "POSTGRESQL_LISTEN": ("postgresql", "listen"),
    "POSTGRESQL_CONNECT_ADDRESS": ("postgresql", "connect_address"),
    "POSTGRESQL_DATA_DIR": ("postgresql", "data_dir"), "POSTGRESQL_BIN_DIR": ("postgresql", "bin_dir"),
    "POSTGRESQL_PGPASS": ("postgresql", "pgpass"),
    "SUPERUSER_USERNAME": ("postgresql", "authentication", "superuser", "username"),
    "SUPERUSER_PASSWORD": ("postgresql", "authentication", "superuser", "password"),
    "REPLICATION_USERNAME": ("postgresql", "authentication", "replication", "username"),
    "REPLICATION_PASSWORD": ("postgresql", "authentication", "replication", "password"),
    "REWIND_USERNAME": ("postgresql", "authentication", "rewind", "username"),
    "REWIND_PASSWORD": ("postgresql", "authentication", "rewind", "password"),
    "POSTGRESQL_PROXY_ADDRESS": ("postgresql", "proxy_address"),
    "POSTGRESQL_CONFIG_DIR": ("postgresql", "config_dir"),
    # Patroni's old spellings first: the new ones below override them
    "LOGLEVEL": ("log", "level"), "LOGFORMAT": ("log", "format"), "LOG_DATEFMT": ("log", "dateformat"),
    **{f"{role.upper()}_{option.upper()}": ("postgresql", "authentication", role, option)
       for role in ("superuser", "replication", "rewind") for option in AUTH_OPTIONS},
}
for _key in ("type", "level", "traceback_level", "format", "dateformat", "max_queue_size", "dir", "mode",
             "file_size", "file_num"):
    _ENV_PATHS[f"LOG_{_key.upper()}"] = ("log", _key)
for _tool in BIN_NAMES:
    _ENV_PATHS[f"POSTGRESQL_BIN_{_tool.upper()}"] = ("postgresql", "bin_name", _tool)
for _dcs in ("etcd3", "etcd"):
    for _key in ("HOST", "HOSTS", "URL", "PROTOCOL", "USERNAME", "PASSWORD", "CACERT", "CERT", "KEY"):
        _ENV_PATHS[f"{_dcs.upper()}_{_key}"] = (_dcs, _key.lower())
for _key in ZOOKEEPER_ENV_KEYS:
    _ENV_PATHS[f"ZOOKEEPER_{_key}"] = ("zookeeper", _key.lower())


def apply_env(raw: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """PATRONI_X (Patroni's spelling) or PG_HA_X override the file; PG_HA_ wins."""
    environ = dict(os.environ if environ is None else environ)
    result = copy.deepcopy(raw)
    for suffix, path in _ENV_PATHS.items():
        for prefix in ("PATRONI_", "PG_HA_"):
            value = environ.get(prefix + suffix)
            if value is None:
                continue
            node = result
            for part in path[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[path[-1]] = value
    return result


GUC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _check_parameter(name: Any, value: Any, where: str) -> None:
    """A PostgreSQL setting as postgresql.conf can hold it: a GUC-like name, a scalar value."""
    if not isinstance(name, str) or not GUC_NAME.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not a valid PostgreSQL parameter name")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ConfigError(f"{where}.{name}: expected a string, number or boolean, got {type(value).__name__}")


def dynamic_from(data: dict[str, Any], where: str = "bootstrap.dcs",
                 warnings: list[str] | None = None) -> DynamicSettings:
    """Validate a dynamic config dict (bootstrap.dcs or the DCS `config` key). Timings are
    adjusted as Patroni does; each adjustment is appended to `warnings`, or logged when
    no list is given."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    merged = merge_dicts(DYNAMIC_DEFAULTS, data)
    ttl, loop_wait, retry_timeout, adjusted = adjust_timing(
        *(as_int(merged[k], f"{where}.{k}", None, MAX_SECONDS) for k in ("ttl", "loop_wait", "retry_timeout")))
    for line in adjusted:
        if warnings is None:
            logger.warning("%s: %s", where, line)
        else:
            warnings.append(f"{where}: {line}")
    for line in not_supported_lines(data, DYNAMIC_NOT_SUPPORTED, f"{where}."):
        if warnings is None:
            logger.warning("%s", line)
        else:
            warnings.append(line)
    pg = merged.get("postgresql") or {}
    expect(pg, dict, f"{where}.postgresql")
    params = pg.get("parameters") or {}
    expect(params, dict, f"{where}.postgresql.parameters")
    for pname, pvalue in params.items():
        _check_parameter(pname, pvalue, f"{where}.postgresql.parameters")
    sync_mode = merged["synchronous_mode"]
    quorum = isinstance(sync_mode, str) and sync_mode.strip().lower() == "quorum"
    slots_key, raw = raw_slots(data)  # not `merged`: a null value is a physical slot here
    slots, problems = parse_slots(raw, f"{where}.{slots_key}")
    ignore_slots, ignore_problems = parse_ignore_slots(merged.get("ignore_slots"), f"{where}.ignore_slots")
    if problems or ignore_problems:
        raise ConfigError("; ".join(problems + ignore_problems))
    from .bootstrap import standby_cluster  # local: it imports this module's validators

    pg_defaults = DYNAMIC_DEFAULTS["postgresql"]
    remote = standby_cluster(data, where)
    # as Patroni (is_synchronous_mode): a standby cluster replicates from another cluster, it
    # runs no synchronous replication of its own whatever synchronous_mode says
    sync_on = (quorum or as_bool(sync_mode, f"{where}.synchronous_mode")) and remote is None
    strict = as_bool(merged["synchronous_mode_strict"], f"{where}.synchronous_mode_strict")

    return DynamicSettings(
        standby_cluster=remote,
        member_slots_ttl=duration(merged.get("member_slots_ttl", DYNAMIC_DEFAULTS["member_slots_ttl"]),
                                  f"{where}.member_slots_ttl"),
        slots=slots,
        ignore_slots=ignore_slots,
        synchronous_mode=sync_on,
        synchronous_quorum=sync_on and quorum,
        synchronous_mode_strict=sync_on and strict,
        synchronous_node_count=as_int(merged["synchronous_node_count"], f"{where}.synchronous_node_count", 1, 1000),
        ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout,
        maximum_lag_on_failover=as_int(merged["maximum_lag_on_failover"],
                                     f"{where}.maximum_lag_on_failover", 0),
        maximum_lag_on_syncnode=as_int(merged.get("maximum_lag_on_syncnode", -1),
                                     f"{where}.maximum_lag_on_syncnode", -1),
        master_start_timeout=as_int(merged.get("primary_start_timeout", merged["master_start_timeout"]),
                                  f"{where}.primary_start_timeout", 0, MAX_SECONDS),
        check_timeline=as_bool(merged["check_timeline"], f"{where}.check_timeline"),
        failsafe_mode=as_bool(merged["failsafe_mode"], f"{where}.failsafe_mode"),
        pause=as_bool(merged["pause"], f"{where}.pause"),
        use_pg_rewind=as_bool(pg.get("use_pg_rewind", pg_defaults["use_pg_rewind"]),
                              f"{where}.postgresql.use_pg_rewind"),
        use_slots=as_bool(pg.get("use_slots", pg_defaults["use_slots"]), f"{where}.postgresql.use_slots"),
        parameters=dict(params),
        raw=data,
    )


def merge_dicts(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged into it recursively; a key whose
    override value is None is removed (at any depth). Neither argument is modified."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = merge_dicts(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# -- sections -------------------------------------------------------------------
def _warn_unknown(section: dict[str, Any], known: set[str], where: str, warnings: list[str]) -> None:
    for key in section:
        if key not in known:
            warnings.append(f"unknown configuration key {where}.{key} (ignored)")


def _dcs(raw: dict[str, Any], warnings: list[str]) -> DcsSettings:
    present = [k for k in KNOWN_DCS if k in raw]
    unsupported = [k for k in UNSUPPORTED_DCS if k in raw]
    if not present:
        if unsupported:
            raise ConfigError(f"{unsupported[0]}: DCS not supported by pg_ha (use etcd3, etcd or zookeeper)")
        raise ConfigError("etcd3: no DCS configured (need an etcd3:, etcd: or zookeeper: section)")
    if len(present) > 1:
        raise ConfigError(f"{present[1]}: more than one DCS configured ({', '.join(present)})")
    kind = present[0]
    section = as_section(raw, kind)
    if kind == "zookeeper":
        return zookeeper_settings(section, warnings)
    _warn_unknown(section, ETCD_KEYS, kind, warnings)
    protocol = as_str(section.get("protocol", "http"), f"{kind}.protocol")
    if protocol not in ("http", "https"):
        raise ConfigError(f"{kind}.protocol: expected http or https, got {protocol!r}")
    hosts: list[str] = []
    if "hosts" in section:
        value = section["hosts"]
        items = value.split(",") if isinstance(value, str) else expect(value, list, f"{kind}.hosts")
        hosts = [str(h).strip() for h in items if str(h).strip()]
    elif "host" in section:
        hosts = [as_str(section["host"], f"{kind}.host")]
    elif "url" in section:
        hosts = [as_str(section["url"], f"{kind}.url")]
    else:
        raise ConfigError(f"{kind}.hosts: no etcd endpoint configured (host, hosts or url)")
    clean = []
    for item in hosts:
        if "://" in item:
            scheme, _, item = item.partition("://")
            protocol = scheme
        item = item.rstrip("/")
        host, port = split_host_port(item, 2379, f"{kind}.hosts")
        clean.append(f"{host}:{port}")
    return DcsSettings(kind=kind, hosts=tuple(clean), protocol=protocol,
                       username=section.get("username"), password=section.get("password"),
                       cacert=section.get("cacert"), cert=section.get("cert"), key=section.get("key"))


def _restapi(raw: dict[str, Any], warnings: list[str]) -> RestApiSettings:
    section = as_section(raw, "restapi")
    _warn_unknown(section, KNOWN_KEYS["restapi"], "restapi", warnings)
    listen = section.get("listen")
    if listen is None:
        raise ConfigError("restapi.listen: missing (e.g. 127.0.0.1:8008)")
    host, port = split_host_port(listen, 8008, "restapi.listen")
    connect = section.get("connect_address")
    if connect is None:
        connect_address = f"{'127.0.0.1' if host in ('0.0.0.0', '*', '::') else host}:{port}"
    else:
        chost, cport = split_host_port(connect, port, "restapi.connect_address")
        connect_address = f"{chost}:{cport}"
    auth = section.get("authentication") or {}
    expect(auth, dict, "restapi.authentication")
    if auth:  # half a credential would leave the unsafe methods open: refuse it
        for key in ("username", "password"):
            if auth.get(key) in (None, ""):
                raise ConfigError(f"restapi.authentication.{key}: missing (give both username and password)")
    allow = section.get("allowlist") or ()
    if isinstance(allow, str):
        allow = [a.strip() for a in allow.split(",") if a.strip()]
    return RestApiSettings(
        listen_host="0.0.0.0" if host == "*" else host, listen_port=port,
        connect_address=connect_address,
        username=auth.get("username"), password=None if auth.get("password") is None
        else str(auth.get("password")),
        certfile=section.get("certfile"), keyfile=section.get("keyfile"), cafile=section.get("cafile"),
        verify_client=_verify_client(section.get("verify_client")), allowlist=tuple(str(a) for a in allow),
        allowlist_include_members=as_bool(section.get("allowlist_include_members", False),
                                        "restapi.allowlist_include_members"))


def _verify_client(value: Any) -> str | None:
    if value is None:
        return None
    if str(value).lower() not in ("none", "optional", "required"):
        raise ConfigError(f"restapi.verify_client: expected none, optional or required, got {value!r}")
    return str(value).lower()


def _conflicting_tags(tags: dict[str, Any]) -> list[str]:
    """Patroni's warning when nofailover/nosync and their priority tag disagree (the boolean wins)."""
    found = []
    for flag, priority in (("nofailover", "failover_priority"), ("nosync", "sync_priority")):
        if flag not in tags or tags.get(priority) is None:
            continue
        value = int(tags[priority])
        if bool(tags[flag]) and value > 0 or not bool(tags[flag]) and value <= 0:
            found.append(f"Conflicting configuration between {flag}: {tags[flag]} and {priority}: {value}. "
                         f"Defaulting to {flag}: {tags[flag]}")
    return found


def _auth(section: dict[str, Any], role: str, default_user: str | None) -> Auth | None:
    value = section.get(role)
    if value is None:
        return Auth(default_user) if default_user else None
    expect(value, dict, f"postgresql.authentication.{role}")
    user = value.get("username", default_user)
    if not user:
        raise ConfigError(f"postgresql.authentication.{role}.username: missing")
    password = value.get("password")
    options = tuple((key, as_str(value[key], f"postgresql.authentication.{role}.{key}"))
                    for key in AUTH_OPTIONS if value.get(key) not in (None, ""))
    return Auth(as_str(user, f"postgresql.authentication.{role}.username"),
                None if password is None else str(password), options)


def _postgresql(raw: dict[str, Any], scope: str, name: str, bootstrap: dict[str, Any],
                warnings: list[str]) -> tuple[PostgresqlSettings, dict[str, Any]]:
    section = as_section(raw, "postgresql")
    methods = section.get("create_replica_methods") or ["basebackup"]
    expect(methods, list, "postgresql.create_replica_methods")
    method_options = {m: section[m] for m in methods if isinstance(section.get(m), dict)}
    _warn_unknown(section, POSTGRESQL_KEYS | set(method_options), "postgresql", warnings)
    data_dir = section.get("data_dir")
    if not data_dir:
        raise ConfigError("postgresql.data_dir: missing (the PostgreSQL data directory)")
    listen = section.get("listen")
    if listen is None:
        raise ConfigError("postgresql.listen: missing (e.g. 127.0.0.1:5432)")
    listen_hosts, port = split_host_port(listen, 5432, "postgresql.listen")
    connect = section.get("connect_address")
    if connect is None:
        first = listen_hosts.split(",")[0].strip()
        connect_host, connect_port = ("127.0.0.1" if first in ("*", "0.0.0.0", "::") else first), port
    else:
        connect_host, connect_port = split_host_port(connect, port, "postgresql.connect_address")
    auth = section.get("authentication") or {}
    expect(auth, dict, "postgresql.authentication")
    params = section.get("parameters") or {}
    expect(params, dict, "postgresql.parameters")
    pg_hba = section.get("pg_hba") or bootstrap.get("pg_hba") or []
    expect(pg_hba, list, "postgresql.pg_hba")
    initdb = bootstrap.get("initdb") or []
    expect(initdb, list, "bootstrap.initdb")
    basebackup = section.get("basebackup") or []
    if isinstance(basebackup, dict):
        basebackup = [{k: v} for k, v in basebackup.items()]
    expect(basebackup, list, "postgresql.basebackup")
    callbacks = section.get("callbacks") or {}
    expect(callbacks, dict, "postgresql.callbacks")
    from .bootstrap import bootstrap_method  # local: it imports this module's validators

    boot_method, boot_options, post_bootstrap = bootstrap_method(bootstrap)
    settings = PostgresqlSettings(
        name=name, scope=scope, data_dir=as_str(data_dir, "postgresql.data_dir"),
        bin_dir=as_str(section.get("bin_dir") or "/usr/lib/postgresql/15/bin", "postgresql.bin_dir"),
        listen_hosts=listen_hosts, port=port, connect_host=connect_host, connect_port=connect_port,
        pgpass=as_str(section.get("pgpass") or f"/tmp/pgpass_{name}", "postgresql.pgpass"),
        superuser=_auth(auth, "superuser", "postgres") or Auth("postgres"),
        replication=_auth(auth, "replication", "replicator") or Auth("replicator"),
        rewind=_auth(auth, "rewind", None),
        pg_hba=tuple(str(x) for x in pg_hba),
        create_replica_methods=tuple(str(m) for m in methods),
        replica_method_options=method_options,
        basebackup=tuple(basebackup), initdb=tuple(initdb),
        bootstrap_method=boot_method, bootstrap_method_options=boot_options, post_bootstrap=post_bootstrap,
        remove_data_directory_on_rewind_failure=as_bool(
            section.get("remove_data_directory_on_rewind_failure", False),
            "postgresql.remove_data_directory_on_rewind_failure"),
        remove_data_directory_on_diverged_timelines=as_bool(
            section.get("remove_data_directory_on_diverged_timelines", False),
            "postgresql.remove_data_directory_on_diverged_timelines"),
        callbacks={str(k): str(v) for k, v in callbacks.items()},
        pre_promote=None if section.get("pre_promote") is None else as_str(section["pre_promote"],
                                                                          "postgresql.pre_promote"),
        **postgresql_local(section, warnings),
    )
    return settings, params


def build_config(raw: Any, path: str | None = None,
                 environ: dict[str, str] | None = None) -> tuple[Config, list[str]]:
    """Validate a parsed YAML document; returns the Config and warnings."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: expected a YAML mapping at the top level")
    raw = apply_env(raw, environ)
    warnings: list[str] = []
    _warn_unknown(raw, set(KNOWN_KEYS) | set(UNSUPPORTED_DCS), "", warnings)
    warnings = [w.replace("key .", "key ") for w in warnings]
    scope = raw.get("scope")
    if not scope:
        raise ConfigError("scope: missing (the cluster name)")
    name = raw.get("name")
    if not name:
        raise ConfigError("name: missing (this member's name)")
    scope, name = as_str(scope, "scope"), as_str(name, "name")
    if "/" in scope or "/" in name:
        raise ConfigError("scope: '/' is not allowed in scope or name")
    namespace = as_str(raw.get("namespace", "/service/"), "namespace")
    bootstrap = as_section(raw, "bootstrap")
    _warn_unknown(bootstrap, KNOWN_KEYS["bootstrap"] | {str(bootstrap.get("method"))}, "bootstrap", warnings)
    if "users" in bootstrap:
        warnings.append("bootstrap.users is not applied (Patroni removed it in 3.0): create roles in "
                        "bootstrap.post_bootstrap instead")
    bootstrap_dcs = bootstrap.get("dcs") or {}
    dynamic = dynamic_from(bootstrap_dcs, "bootstrap.dcs", warnings)
    dcs = _dcs(raw, warnings)
    restapi = _restapi(raw, warnings)
    pg, local_params = _postgresql(raw, scope, name, bootstrap, warnings)
    pg_section = as_section(raw, "postgresql")
    tags = as_section(raw, "tags")
    for tag in ("nofailover", "noloadbalance", "nosync", "nostream"):
        if tag in tags:
            tags[tag] = as_bool(tags[tag], f"tags.{tag}")
    for tag in ("failover_priority", "sync_priority"):
        if tag in tags:  # validated; published as written, as Patroni does
            as_int(tags[tag], f"tags.{tag}", 0)
    warnings += _conflicting_tags(tags)
    watchdog = as_section(raw, "watchdog")
    try:
        parse_watchdog(watchdog)
    except WatchdogConfigError as exc:
        raise ConfigError(str(exc)) from None
    log = log_settings(as_section(raw, "log"), warnings)
    report_local(raw, warnings)
    try:
        vip = parse_vip(raw.get("vip"), warnings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config = Config(
        scope=scope, name=name, namespace=namespace, restapi=restapi, dcs=dcs, postgresql=pg,
        dynamic=dynamic, bootstrap_dcs=bootstrap_dcs, tags=tags, watchdog=watchdog, log=log, vip=vip,
        local_parameters=dict(local_params),
        local_use_pg_rewind=None if "use_pg_rewind" not in pg_section
        else as_bool(pg_section["use_pg_rewind"], "postgresql.use_pg_rewind"),
        local_use_slots=None if "use_slots" not in pg_section
        else as_bool(pg_section["use_slots"], "postgresql.use_slots"),
        path=path)
    return config.with_dynamic(dynamic), warnings


def load_config(path: str, environ: dict[str, str] | None = None) -> tuple[Config, list[str]]:
    import yaml  # local: pg_ha/__init__ and client.py stay stdlib-only

    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return build_config(raw, path, environ)
