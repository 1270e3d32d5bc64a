# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hactl's configuration: a light reading of either the daemon's own YAML or a ctl file.

Only what the CLI needs is taken: ``scope``, ``namespace``, the DCS section (``etcd3:``,
``etcd:`` or ``zookeeper:``, or ``--dcs-url``), REST API credentials (``ctl:`` first, then ``restapi:``) and the
database superuser for ``query``. Nothing else is validated, so a file holding just the DCS
section works. ``PATRONI_*`` / ``PG_HA_*`` environment variables override the file as for
the daemon.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..config.load import ConfigError, apply_env
from ..config.load import _dcs as dcs_section  # the daemon's own parsing of etcd3:/etcd:/zookeeper: (hosts, TLS)
from ..config.settings import Auth, Config, DcsSettings, DynamicSettings, PostgresqlSettings, RestApiSettings
from .errors import CtlError, UsageError

DEFAULT_CONFIG_FILE = os.path.join("~", ".config", "pg_ha", "pg_hactl.yaml")
CONFIG_ENV = ("PG_HACTL_CONFIG_FILE", "PATRONICTL_CONFIG_FILE")
DCS_URL_ENV = ("PG_HACTL_DCS_URL", "DCS_URL")
DEFAULT_NAMESPACE = "/service/"
DEFAULT_DCS_TIMEOUT = 5  # seconds for each DCS call of the CLI (ctl.retry_timeout)
DCS_SCHEMES = {"etcd3": ("etcd3", "http"), "etcd": ("etcd", "http"), "zookeeper": ("zookeeper", "http"),
               "http": ("etcd3", "http"), "https": ("etcd3", "https")}
DEFAULT_HOSTS = {"etcd3": "localhost:2379", "etcd": "localhost:2379", "zookeeper": "localhost:2181"}
ZOOKEEPER_PORT = "2181"  # patronictl: a URL without a scheme is ZooKeeper's when its port is 2181
DCS_SECTIONS = ("etcd3", "etcd", "zookeeper")


@dataclass(frozen=True)
class RestAuth:
    """How the CLI talks to the members' REST API."""

    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class CtlConfig:
    scope: str | None
    namespace: str
    dcs: DcsSettings | None
    rest: RestAuth
    superuser: Auth
    dcs_timeout: int = DEFAULT_DCS_TIMEOUT
    path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def dcs_config(self, scope: str) -> Config:
        """A settings.Config good enough for ``get_dcs`` (it reads only the DCS fields)."""
        if self.dcs is None:
            raise CtlError("no DCS configured: give -c CONFIG with an etcd3:, etcd: or zookeeper: section, "
                           "or --dcs-url etcd3://HOST:PORT (or zookeeper://HOST:PORT)")
        return Config(scope=scope, name="pg_hactl", namespace=self.namespace, restapi=RestApiSettings(),
                      dcs=self.dcs, postgresql=PostgresqlSettings(name="pg_hactl", scope=scope, data_dir=""),
                      dynamic=DynamicSettings(retry_timeout=self.dcs_timeout))


def parse_dcs_url(url: str) -> tuple[DcsSettings, str | None]:
    """``etcd3://h1:2379,h2:2379/namespace`` -> (DcsSettings, namespace or None).

    Schemes: etcd3, etcd (v2 API), zookeeper, http/https (etcd3 over that protocol). No scheme
    means etcd3, or zookeeper when the (first) port is 2181, as patronictl picks by port."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        first = text.partition("/")[0].split(",")[0].strip()
        scheme, rest = ("zookeeper" if first.rpartition(":")[2] == ZOOKEEPER_PORT else "etcd3"), text
    if scheme.lower() not in DCS_SCHEMES:
        raise UsageError(f"unknown DCS scheme in --dcs-url {url!r} (use etcd3://, etcd:// or zookeeper://)")
    kind, protocol = DCS_SCHEMES[scheme.lower()]
    netloc, _, path = rest.partition("/")
    hosts = [h.strip() for h in netloc.split(",") if h.strip()] or [DEFAULT_HOSTS[kind]]
    section: dict[str, Any] = {"hosts": hosts} if kind == "zookeeper" else {"hosts": hosts, "protocol": protocol}
    try:
        parsed = dcs_section({kind: section}, [])
    except ConfigError as exc:
        raise UsageError(f"invalid --dcs-url {url!r}: {exc}") from None
    namespace = "/" + path.strip("/") if path.strip("/") else None
    return parsed, namespace


def config_path(option: str | None, environ: dict[str, str]) -> tuple[str, bool]:
    """The file to read and whether the user named it (then it must exist)."""
    if option:
        return os.path.expanduser(option), True
    for name in CONFIG_ENV:
        if environ.get(name):
            return os.path.expanduser(environ[name]), True
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, DEFAULT_CONFIG_FILE[2:]), False


def read_yaml(path: str, required: bool) -> dict[str, Any]:
    if not os.path.exists(path):
        if required:
            raise CtlError(f"config file {path} does not exist (check -c/--config-file or PG_HACTL_CONFIG_FILE)")
        return {}
    import yaml  # only when there is a file to read

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise CtlError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise CtlError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CtlError(f"{path}: expected a YAML mapping at the top level")
    return data


def _mapping(raw: dict[str, Any], *keys: str) -> dict[str, Any]:
    node: Any = raw
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def rest_auth(raw: dict[str, Any], insecure: bool) -> RestAuth:
    """Credentials and TLS files: ``ctl:`` wins over ``restapi:`` (the daemon's own file)."""
    ctl, restapi = _mapping(raw, "ctl"), _mapping(raw, "restapi")
    auth = _mapping(ctl, "authentication") or _mapping(restapi, "authentication")
    insecure = insecure or str(ctl.get("insecure", "")).lower() in ("true", "1", "yes", "on")
    return RestAuth(username=_text(auth.get("username")), password=_text(auth.get("password")),
                    cafile=_text(ctl.get("cacert") or ctl.get("cacerts") or restapi.get("cafile")),
                    certfile=_text(ctl.get("certfile") or restapi.get("certfile")),
                    keyfile=_text(ctl.get("keyfile") or restapi.get("keyfile")),
                    verify=not insecure)


def load(option: str | None = None, dcs_url: str | None = None, insecure: bool = False,
         environ: dict[str, str] | None = None) -> CtlConfig:
    """Read the ctl config (see the module docstring); raise CtlError with one line."""
    env = dict(os.environ if environ is None else environ)
    path, required = config_path(option, env)
    raw = apply_env(read_yaml(path, required), env)
    dcs_url = dcs_url or next((env[n] for n in DCS_URL_ENV if env.get(n)), None)
    namespace = raw.get("namespace") or DEFAULT_NAMESPACE
    dcs: DcsSettings | None = None
    if dcs_url:
        dcs, url_namespace = parse_dcs_url(dcs_url)
        namespace = url_namespace or namespace
    elif any(kind in raw for kind in DCS_SECTIONS):
        try:
            dcs = dcs_section(raw, [])
        except ConfigError as exc:
            raise CtlError(f"{path}: {exc}") from None
    superuser = _mapping(raw, "postgresql", "authentication", "superuser")
    timeout = _mapping(raw, "ctl").get("retry_timeout", DEFAULT_DCS_TIMEOUT)
    try:
        dcs_timeout = max(1, int(timeout))
    except (TypeError, ValueError):
        raise CtlError(f"{path}: ctl.retry_timeout: expected a number of seconds, got {timeout!r}") from None
    scope = raw.get("scope")
    return CtlConfig(scope=None if scope is None else str(scope), namespace=str(namespace), dcs=dcs,
                     rest=rest_auth(raw, insecure),
                     superuser=Auth(str(superuser.get("username") or "postgres"), _text(superuser.get("password"))),
                     dcs_timeout=dcs_timeout, path=path if raw or required else None, raw=raw)
