# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""show-config and edit-config: the DCS ``config`` key as YAML, changed with compare-and-swap.

edit-config builds the new config from --replace, --apply, -s/-p (in that order) or, when
none is given, from $EDITOR; shows a unified diff of the YAML; asks; validates the result as
the daemon will (refused: nothing written); writes it only if the key still has the version
that was read (a concurrent change is an error, never a lost update)."""
from __future__ import annotations

import copy
import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from argparse import Namespace
from typing import Any

from ..config.load import ConfigError, dynamic_from
from ..config.parse import patch_config
from ..dcs import DCSError
from .context import Ctx
from .errors import CtlError, UsageError
from .output import dump_json, dump_yaml, echo
from .prompt import confirm

PG_PARAMETERS = ("postgresql", "parameters")


def config_yaml(data: dict[str, Any]) -> str:
    """The config as patronictl shows it for editing (block style, sorted keys)."""
    return dump_yaml(data) if data else ""


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """{'a': {'b': 1}} -> [('a.b', 1)] (for -f tsv)."""
    if isinstance(data, dict) and data:
        items: list[tuple[str, Any]] = []
        for key in sorted(data, key=str):
            items.extend(flatten(data[key], f"{prefix}.{key}" if prefix else str(key)))
        return items
    return [(prefix, json.dumps(data) if isinstance(data, (dict, list)) else data)]


def run_show(ctx: Ctx, args: Namespace) -> int:
    scope = ctx.scope(args.cluster_name)
    cluster = ctx.cluster(scope)
    data = cluster.config.data if cluster.config is not None else {}
    if args.fmt == "json":
        echo(dump_json(data))
    elif args.fmt == "tsv":
        for key, value in flatten(data):
            echo(f"{key}\t{'' if value is None else value}")
    else:
        text = config_yaml(data)
        if text:
            echo(text.rstrip("\n"))
    return 0


def set_path(config: dict[str, Any], path: list[str], value: Any) -> None:
    """Set (None: remove) the dotted path; below postgresql.parameters the rest of the
    path is one name, since PostgreSQL parameters may contain dots."""
    if tuple(path[:2]) == PG_PARAMETERS and len(path) > 3:
        path = [*path[:2], ".".join(path[2:])]
    key = path[0]
    if len(path) == 1:
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
        return
    if not isinstance(config.get(key), dict):
        config[key] = {}
    set_path(config[key], path[1:], value)
    if config[key] == {}:
        del config[key]


def apply_pairs(data: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """``key.path=YAML value`` pairs applied to a copy of data."""
    import yaml

    changed = copy.deepcopy(data)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise UsageError(f"Invalid parameter setting {pair!r} (expected KEY=VALUE)")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise UsageError(f"invalid YAML value in {pair!r}: {exc}") from None
        set_path(changed, key.strip().split("."), value)
    return changed


def read_yaml_source(name: str) -> dict[str, Any]:
    import yaml

    try:
        if name == "-":
            loaded = yaml.safe_load(sys.stdin)
        else:
            with open(name, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh)
    except OSError as exc:
        raise CtlError(f"cannot read {name}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CtlError(f"{name}: invalid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise CtlError(f"{name}: expected a YAML mapping")
    return loaded


def run_editor(before: str, scope: str) -> dict[str, Any]:
    import yaml

    command = os.environ.get("EDITOR") or next((e for e in ("editor", "vi") if shutil.which(e)), None)
    if not command:
        raise CtlError("EDITOR environment variable is not set. editor or vi are not available")
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix=f"{scope.replace('/', '_')}-config-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(before)
        try:
            code = subprocess.call([*shlex.split(command), path])
        except OSError as exc:
            raise CtlError(f"cannot run the editor {command!r}: {exc.strerror}") from None
        if code:
            raise CtlError(f"Editor exited with return code {code}")
        with open(path, encoding="utf-8") as fh:
            after = fh.read()
    finally:
        os.unlink(path)
    try:
        data = yaml.safe_load(after)
    except yaml.YAMLError as exc:
        raise CtlError(f"the edited config is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise CtlError("the edited config is not a YAML mapping")
    return data or {}


def unified_diff(before: str, after: str) -> list[str]:
    """Lines of the unified diff between two YAML texts (headers '---' and '+++')."""
    def lines(text: str) -> list[str]:
        return [line + "\n" for line in text.rstrip("\n").split("\n")] if text.strip() else []
    return [line.rstrip("\n").rstrip() if line.startswith(("---", "+++")) else line.rstrip("\n")
            for line in difflib.unified_diff(lines(before), lines(after))]


def validate(data: dict[str, Any]) -> None:
    try:
        dynamic_from(data, "config", [])
    except ConfigError as exc:
        raise CtlError(f"the new configuration is invalid, nothing changed: {exc}") from None


def run_edit(ctx: Ctx, args: Namespace) -> int:
    if args.apply_file == "-" and args.replace_file == "-":
        raise UsageError("--apply and --replace can not both read stdin")
    scope = ctx.scope(args.cluster_name)
    cluster = ctx.cluster(scope)
    if cluster.config is None:
        raise CtlError(f"The config key does not exist in the cluster {scope}")
    current = cluster.config.data
    before = config_yaml(current)
    changed: dict[str, Any] | None = None
    if args.replace_file:
        changed = read_yaml_source(args.replace_file)
    if args.apply_file:
        changed = patch_config(current if changed is None else changed, read_yaml_source(args.apply_file))
    pairs = list(args.kvpairs) + [f"postgresql.parameters.{p.lstrip()}" for p in args.pgkvpairs]
    if pairs:
        changed = apply_pairs(current if changed is None else changed, pairs)
    if changed is None:
        changed = run_editor(before, scope)
    if changed == current:
        if not args.quiet:
            echo("Not changed")
        return 0
    if not args.quiet:
        for line in unified_diff(before, config_yaml(changed)):
            echo(line)
    validate(changed)
    if "-" in (args.apply_file, args.replace_file) and not args.force:
        echo("Use --force option to apply changes")
        return 0
    if not args.force and not confirm("Apply these changes?"):
        echo("Not applied")
        return 0
    try:
        written = ctx.dcs(scope).set_config_value(json.dumps(changed, separators=(",", ":")), cluster.config.version)
    except DCSError as exc:
        raise CtlError(f"writing the config to the DCS failed: {exc}") from None
    if not written:
        raise CtlError("Config modification aborted due to concurrent changes: read it again and retry")
    echo("Configuration changed")
    return 0
