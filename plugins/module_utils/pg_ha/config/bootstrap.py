# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of Patroni's custom bootstrap (bootstrap.method / bootstrap.<method>,
post_bootstrap) and of the dynamic `standby_cluster` section. One-line ConfigErrors
naming the key, as everywhere in config.py."""
from __future__ import annotations

from typing import Any

from .parse import ConfigError, as_bool, as_int, as_str, expect

METHOD_RESERVED = ("command", "keep_existing_recovery_conf", "no_params", "recovery_conf")
STANDBY_KEYS = ("host", "port", "primary_slot_name", "restore_command", "create_replica_methods",
                "archive_cleanup_command", "recovery_min_apply_delay")


def bootstrap_method(bootstrap: dict[str, Any]) -> tuple[str | None, dict[str, Any], str | None]:
    """(method, its options, post_bootstrap script); method None means initdb."""
    post = bootstrap.get("post_bootstrap") or bootstrap.get("post_init")
    post_script = None if post is None else as_str(post, "bootstrap.post_bootstrap")
    method = bootstrap.get("method")
    if method is None:
        return None, {}, post_script
    method = as_str(method, "bootstrap.method")
    if method == "initdb":
        return None, {}, post_script
    options = bootstrap.get(method)
    if options is None:
        raise ConfigError(f"bootstrap.{method}: missing (bootstrap.method names it)")
    expect(options, dict, f"bootstrap.{method}")
    command = options.get("command")
    if not command:
        raise ConfigError(f"bootstrap.{method}.command: missing (the command that creates the data directory)")
    opts = dict(options)
    opts["command"] = as_str(command, f"bootstrap.{method}.command")
    for flag in ("keep_existing_recovery_conf", "no_params"):
        if flag in opts:
            opts[flag] = as_bool(opts[flag], f"bootstrap.{method}.{flag}")
    if opts.get("recovery_conf") is not None:
        expect(opts["recovery_conf"], dict, f"bootstrap.{method}.recovery_conf")
    return method, opts, post_script


def standby_cluster(data: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The validated standby_cluster section of a dynamic config (None: not a standby cluster)."""
    section = data.get("standby_cluster")
    if section is None:
        return None
    key = f"{where}.standby_cluster"
    expect(section, dict, key)
    result: dict[str, Any] = {}
    for name in ("host", "primary_slot_name", "restore_command", "archive_cleanup_command"):
        if section.get(name) is not None:
            result[name] = as_str(section[name], f"{key}.{name}")
    if section.get("port") is not None:
        result["port"] = as_int(section["port"], f"{key}.port", 1)
        if result["port"] > 65535:
            raise ConfigError(f"{key}.port: must be <= 65535, got {result['port']}")
    if section.get("recovery_min_apply_delay") is not None:
        result["recovery_min_apply_delay"] = as_str(section["recovery_min_apply_delay"],
                                                  f"{key}.recovery_min_apply_delay")
    methods = section.get("create_replica_methods")
    if methods is not None:
        expect(methods, list, f"{key}.create_replica_methods")
        result["create_replica_methods"] = [as_str(m, f"{key}.create_replica_methods") for m in methods]
    if not (result.get("host") or result.get("restore_command")):
        raise ConfigError(f"{key}: needs host (and port) or restore_command")
    return result
