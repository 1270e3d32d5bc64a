# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``zookeeper:`` section (Patroni's schema) -> DcsSettings.

``hosts`` is a list or ``"h1:2181,h2:2181"``; ``use_ssl``, ``cacert``/``cert``/``key``/
``key_password``, ``verify``; ``set_acls`` ({x509 principal: [READ, WRITE, CREATE, DELETE,
ADMIN | ALL]}) and ``auth_data`` ({scheme: credential}). The ``PATRONI_ZOOKEEPER_*`` variables
arrive here as strings: lists and mappings in YAML flow style (``[a, b]`` / ``a, b``,
``{k: v}`` / ``k: v``), as Patroni reads them."""
from __future__ import annotations

from typing import Any

from .parse import ConfigError, as_bool, as_str, expect, split_host_port
from .settings import DcsSettings

ZOOKEEPER_KEYS = {"hosts", "use_ssl", "cacert", "cert", "key", "key_password", "verify", "set_acls",
                  "auth_data", "retry_timeout"}
ENV_KEYS = ("HOSTS", "USE_SSL", "CACERT", "CERT", "KEY", "KEY_PASSWORD", "VERIFY", "SET_ACLS", "AUTH_DATA")
ACL_PERMISSIONS = ("READ", "WRITE", "CREATE", "DELETE", "ADMIN", "ALL")
DEFAULT_PORT = 2181


def _yaml_flow(value: str, key: str, opening: str) -> Any:
    """An environment string as Patroni reads it: YAML, wrapped in [] or {} when bare."""
    import yaml  # local: only an environment string needs it

    text = value.strip()
    if opening == "[" and not (text.startswith("-") or "[" in text):
        text = f"[{text}]"
    elif opening == "{" and not text.startswith("{"):
        text = f"{{{text}}}"
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"zookeeper.{key}: cannot parse {value!r}") from None


def _hosts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = _yaml_flow(value, "hosts", "[")
    items = expect(value, list, "zookeeper.hosts")
    hosts = []
    for item in items:
        text = as_str(item, "zookeeper.hosts").strip()
        if text:
            host, port = split_host_port(text, DEFAULT_PORT, "zookeeper.hosts")
            hosts.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not hosts:
        raise ConfigError("zookeeper.hosts: no ZooKeeper server configured")
    return tuple(hosts)


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = _yaml_flow(value, key, "{") if value.strip() else {}
    if value is None:
        return {}
    return dict(expect(value, dict, f"zookeeper.{key}"))


def _acls(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    result = []
    for principal, permissions in _mapping(value, "set_acls").items():
        where = f"zookeeper.set_acls.{principal}"
        if isinstance(permissions, str):
            permissions = [p for p in permissions.replace(",", " ").split() if p]
        names = tuple(as_str(p, where).upper() for p in expect(permissions, list, where))
        for name in names:
            if name not in ACL_PERMISSIONS:
                raise ConfigError(f"{where}: unknown permission {name!r} (expected {', '.join(ACL_PERMISSIONS)})")
        result.append((as_str(principal, "zookeeper.set_acls"), names))
    return tuple(result)


def _auth(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((as_str(scheme, "zookeeper.auth_data"), as_str(credential, f"zookeeper.auth_data.{scheme}"))
                 for scheme, credential in _mapping(value, "auth_data").items())


def _optional(section: dict[str, Any], key: str) -> str | None:
    value = section.get(key)
    return None if value is None else as_str(value, f"zookeeper.{key}")


def zookeeper_settings(section: dict[str, Any], warnings: list[str]) -> DcsSettings:
    for key in section:
        if key not in ZOOKEEPER_KEYS:
            warnings.append(f"unknown configuration key zookeeper.{key} (ignored)")
    if "hosts" not in section:
        raise ConfigError("zookeeper.hosts: missing (e.g. [zk1:2181, zk2:2181])")
    return DcsSettings(
        kind="zookeeper", hosts=_hosts(section["hosts"]),
        cacert=_optional(section, "cacert"), cert=_optional(section, "cert"), key=_optional(section, "key"),
        key_password=_optional(section, "key_password"),
        use_ssl=as_bool(section.get("use_ssl", False), "zookeeper.use_ssl"),
        verify=as_bool(section.get("verify", True), "zookeeper.verify"),
        set_acls=_acls(section.get("set_acls")), auth_data=_auth(section.get("auth_data")))
