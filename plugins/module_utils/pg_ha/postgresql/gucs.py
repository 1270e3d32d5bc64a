# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server parameters across PostgreSQL majors, as Patroni handles them.

Configs written for one major name parameters another one renamed or removed, and
PostgreSQL refuses to start on an unknown one. Like Patroni: `wal_keep_segments` becomes
`wal_keep_size` (segments x wal_segment_size) from 13 on and back before 13, `wal_level
hot_standby` is `replica` from 9.6 on, and a parameter the server's major no longer has is
dropped with a warning. `translate_parameters` is pure; the helpers below ask the binaries.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
WAL_KEEP_SEGMENTS_DEFAULT = 8  # Patroni's default: 8 segments = 128MB
# name -> (first major without it, its successor or None); majors as server_version_num
REMOVED: dict[str, tuple[int, str | None]] = {
    "krb_srvname": (90400, None),
    "checkpoint_segments": (90500, None),
    "ssl_renegotiation_limit": (90500, None),
    "sql_inheritance": (100000, None),
    "min_parallel_relation_size": (100000, "min_parallel_table_scan_size"),
    "replacement_sort_tuples": (110000, None),
    "default_with_oids": (120000, None),
    "operator_precedence_warning": (140000, None),
    "vacuum_cleanup_index_scale_factor": (140000, None),
    "stats_temp_directory": (150000, None),
    "force_parallel_mode": (160000, "debug_parallel_query"),
    "vacuum_defer_cleanup_age": (160000, None),
    "promote_trigger_file": (160000, None),
    "db_user_namespace": (170000, None),
    "old_snapshot_threshold": (170000, None),
    "trace_recovery_messages": (170000, None),
    "logical_replication_mode": (170000, "debug_logical_replication_streaming"),
    "ssl_ecdh_curve": (180000, "ssl_groups"),
}
_UNITS = {"kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4}
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_warned: set[tuple[str, str]] = set()


def _warn_once(key: tuple[str, str], message: str, *args: Any) -> None:
    """Every config write translates again: say each translation once per process."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def _size_bytes(value: Any) -> int | None:
    """'128MB' / '1GB' / 128 (wal_keep_size's unit is MB) -> bytes; None if unreadable."""
    text = str(value).strip().lower().replace(" ", "")
    match = re.fullmatch(r"(\d+)(kb|mb|gb|tb)?", text)
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2) or "mb"]


def _wal_keep(params: dict[str, Any], major: int, segment_bytes: int) -> None:
    """wal_keep_segments <-> wal_keep_size, Patroni's default of 8 segments when neither is set."""
    if major >= 130000:
        segments = params.pop("wal_keep_segments", None)
        if segments is not None and "wal_keep_size" not in params:
            try:
                size_mb = int(segments) * segment_bytes // (1024 * 1024)
            except (TypeError, ValueError):
                _warn_once(("bad", "wal_keep_segments"), "dropping wal_keep_segments=%r: not a number", segments)
                size_mb = WAL_KEEP_SEGMENTS_DEFAULT * segment_bytes // (1024 * 1024)
            else:
                _warn_once(("wal_keep", str(segments)), "translated wal_keep_segments=%s to wal_keep_size=%sMB "
                           "(PostgreSQL 13 renamed it)", segments, size_mb)
            params["wal_keep_size"] = f"{size_mb}MB"
        params.setdefault("wal_keep_size", f"{WAL_KEEP_SEGMENTS_DEFAULT * segment_bytes // (1024 * 1024)}MB")
        return
    size = params.pop("wal_keep_size", None)
    if size is not None and "wal_keep_segments" not in params:
        size_bytes = _size_bytes(size)
        segments = WAL_KEEP_SEGMENTS_DEFAULT if size_bytes is None \
            else (size_bytes + segment_bytes // 2) // segment_bytes
        _warn_once(("wal_keep", str(size)), "translated wal_keep_size=%s to wal_keep_segments=%s "
                   "(PostgreSQL before 13 has no wal_keep_size)", size, segments)
        params["wal_keep_segments"] = segments
    params.setdefault("wal_keep_segments", WAL_KEEP_SEGMENTS_DEFAULT)


def translate_parameters(params: Mapping[str, Any], major: int | None,
                         segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> dict[str, Any]:
    """`params` (names lowercased) as the server of `major` (server_version_num) accepts them."""
    result = dict(params)
    if not major:
        return result
    if str(result.get("wal_level", "")).lower() == ("hot_standby" if major >= 90600 else "replica"):
        result["wal_level"] = "replica" if major >= 90600 else "hot_standby"
    _wal_keep(result, major, segment_bytes)
    for name, (removed_in, successor) in REMOVED.items():
        if name not in result or major < removed_in:
            continue
        value = result.pop(name)
        if successor and successor not in result:
            result[successor] = value
            _warn_once(("renamed", name), "translated parameter %s to %s (renamed in PostgreSQL %s)",
                       name, successor, removed_in // 10000)
        else:
            _warn_once(("removed", name), "removing parameter %s: PostgreSQL %s has no such parameter",
                       name, major // 10000)
    return result


# ---------------------------------------------------------------- facts from the binaries
_major_cache: dict[str, int | None] = {}
_segment_cache: dict[tuple[str, int], int] = {}


def parse_version_output(text: str) -> int | None:
    """'postgres (PostgreSQL) 15.18 (Debian ...)' -> 150000; '9.6.24' -> 90600."""
    match = _VERSION.search(text)
    if not match:
        return None
    first, second = int(match.group(1)), int(match.group(2) or 0)
    return first * 10000 if first >= 10 else first * 10000 + second * 100


def binary_major(bin_dir: str) -> int | None:
    """The major (server_version_num, minor 0) of `bin_dir/postgres`; None if it cannot run."""
    if bin_dir not in _major_cache:
        try:
            out = subprocess.run([os.path.join(bin_dir, "postgres"), "-V"], capture_output=True,
                                 text=True, timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("cannot ask %s/postgres for its version (%s): parameters are not translated",
                           bin_dir, exc)
            out = ""
        _major_cache[bin_dir] = parse_version_output(out)
    return _major_cache[bin_dir]


def wal_segment_bytes(bin_dir: str, data_dir: str) -> int:
    """pg_controldata's "Bytes per WAL segment" (16MB, initdb's default, before a data dir exists)."""
    try:
        inode = os.stat(os.path.join(data_dir, "global", "pg_control")).st_ino
    except OSError:
        return DEFAULT_SEGMENT_BYTES
    key = (data_dir, inode)
    if key not in _segment_cache:
        size = DEFAULT_SEGMENT_BYTES
        try:
            out = subprocess.run([os.path.join(bin_dir, "pg_controldata"), "-D", data_dir],
                                 capture_output=True, text=True, timeout=30, check=False,
                                 env={**os.environ, "LC_ALL": "C"}).stdout
            match = re.search(r"^Bytes per WAL segment:\s+(\d+)", out, re.M)
            size = int(match.group(1)) if match else size
        except (OSError, subprocess.SubprocessError):
            pass
        _segment_cache[key] = size
    return _segment_cache[key]


# ---------------------------------------------------------------- a replica's floor: pg_control
# a standby refuses to start with less than the primary had (Patroni's effective_configuration)
CONTROLDATA_FLOORS = {"max_connections": "max_connections setting",
                      "max_prepared_transactions": "max_prepared_xacts setting",
                      "max_locks_per_transaction": "max_locks_per_xact setting",
                      "max_worker_processes": "max_worker_processes setting",
                      "max_wal_senders": "max_wal_senders setting"}
# PostgreSQL 15's defaults: what the server runs with when the configuration names none
SERVER_DEFAULTS = {"max_connections": 100, "max_prepared_transactions": 0, "max_locks_per_transaction": 64,
                   "max_worker_processes": 8, "max_wal_senders": 10}
_controldata_cache: dict[tuple[str, int, int], dict[str, str]] = {}


def controldata_settings(bin_dir: str, data_dir: str) -> dict[str, str]:
    """The "... setting" lines of pg_controldata (empty without a data directory)."""
    try:
        st = os.stat(os.path.join(data_dir, "global", "pg_control"))
    except OSError:
        return {}
    key = (data_dir, st.st_ino, st.st_mtime_ns)
    if key not in _controldata_cache:
        try:
            out = subprocess.run([os.path.join(bin_dir, "pg_controldata"), "-D", data_dir], capture_output=True,
                                 text=True, timeout=30, check=False, env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        _controldata_cache.clear()
        _controldata_cache[key] = {k.strip(): v.strip() for k, _, v in
                                   (line.partition(":") for line in out.splitlines()) if k.endswith(" setting")}
    return _controldata_cache[key]


def raise_to_controldata(params: Mapping[str, Any], controldata: Mapping[str, str]) -> dict[str, Any]:
    """`params` with every CONTROLDATA_FLOORS value at least what pg_control recorded."""
    result = dict(params)
    for name, label in CONTROLDATA_FLOORS.items():
        try:
            recorded = int(controldata[label])
            configured = int(result.get(name, SERVER_DEFAULTS[name]))
        except (KeyError, TypeError, ValueError):
            continue
        if recorded > configured:
            _warn_once(("floor", f"{name}={recorded}"), "%s value in pg_controldata: %s, in the configuration: %s. "
                       "pg_controldata value will be used", name, recorded, configured)
            result[name] = recorded
    return result
