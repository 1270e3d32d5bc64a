# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the configuration files live, as Patroni lays them out.

`postgresql.config_dir` (default: the data directory) holds postgresql.conf,
postgresql.base.conf, pg_hba.conf and pg_ident.conf; PostgreSQL is then started with
`config_file` pointing there, and postgresql.conf names hba_file/ident_file in it.
`postgresql.custom_conf` is included instead of postgresql.base.conf, which is then
neither created nor kept.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

from ..config.settings import PostgresqlSettings
from . import config

logger = logging.getLogger(__name__)
IDENT_CONF = "pg_ident.conf"


def conf_dir(settings: PostgresqlSettings) -> str:
    return settings.config_dir or settings.data_dir


def separate(settings: PostgresqlSettings) -> bool:
    """True when the configuration files live outside the data directory."""
    return os.path.realpath(conf_dir(settings)) != os.path.realpath(settings.data_dir)


def main_conf(settings: PostgresqlSettings) -> str:
    return os.path.join(conf_dir(settings), config.MAIN_CONF)


def hba_conf(settings: PostgresqlSettings) -> str:
    return os.path.join(conf_dir(settings), config.HBA_CONF)


def ident_conf(settings: PostgresqlSettings) -> str:
    return os.path.join(conf_dir(settings), IDENT_CONF)


def server_options(settings: PostgresqlSettings) -> dict[str, str]:
    """`-c` options for postgres (pg_ctl start, postgres --single): config_file when it
    is not the data directory's."""
    return {"config_file": main_conf(settings)} if separate(settings) else {}


def file_parameters(settings: PostgresqlSettings) -> dict[str, str]:
    """hba_file and ident_file in config_dir (the files exist or pg_ha writes them)."""
    if not separate(settings):
        return {}
    found: dict[str, str] = {}
    for name, path, lines in (("hba_file", hba_conf(settings), settings.pg_hba),
                              ("ident_file", ident_conf(settings), settings.pg_ident)):
        if lines or os.path.exists(path):
            found[name] = path
    return found


def prepare(settings: PostgresqlSettings) -> None:
    """Create config_dir and keep the postgresql.conf found there (or initdb's, in the data
    directory) as postgresql.base.conf; nothing to keep when custom_conf replaces it."""
    directory = conf_dir(settings)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if settings.custom_conf:
        return
    if separate(settings) and not os.path.exists(main_conf(settings)) \
            and not os.path.exists(os.path.join(directory, config.BASE_CONF)):
        for name in (config.MAIN_CONF, config.BASE_CONF):  # initdb's, or the one pg_ha kept of it
            initdb_conf = os.path.join(settings.data_dir, name)
            if os.path.exists(initdb_conf) and not _ours(initdb_conf):
                shutil.copyfile(initdb_conf, os.path.join(directory, config.BASE_CONF))
                os.chmod(os.path.join(directory, config.BASE_CONF), 0o600)
                logger.info("copied %s to %s as %s", initdb_conf, directory, config.BASE_CONF)
                break
    config.ensure_base_conf(directory)


def _ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            return config.MARKER in fh.read()
    except OSError:
        return False


def unix_socket_host(settings: PostgresqlSettings) -> str | None:
    """With postgresql.use_unix_socket, as Patroni: the first absolute directory of
    unix_socket_directories, "" (libpq's default socket directory) when that is not set,
    None (TCP) when it names no usable directory or unix sockets are not asked for."""
    if not settings.use_unix_socket:
        return None
    directories = settings.parameters.get("unix_socket_directories")
    if directories is None:
        return ""
    for item in str(directories).split(","):
        if item.strip().startswith("/"):
            return item.strip()
    return None


def render(settings: PostgresqlSettings, recovery: Mapping[str, Any] | None) -> str:
    """postgresql.conf as config.render_postgresql_conf writes it, including custom_conf
    or postgresql.base.conf, with hba_file/ident_file when config_dir is separate."""
    return config.render_postgresql_conf(settings, recovery, settings.custom_conf or config.BASE_CONF,
                                         file_parameters(settings))


def write_files(settings: PostgresqlSettings, recovery: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """(postgresql.conf changed, pg_hba.conf changed); pg_ident.conf too when configured."""
    conf_changed = config.write_if_changed(main_conf(settings), render(settings, recovery))
    hba_changed = False
    if settings.pg_hba:
        hba_changed = config.write_if_changed(hba_conf(settings), config.render_pg_hba(settings.pg_hba))
    if settings.pg_ident:
        hba_changed |= config.write_if_changed(ident_conf(settings), config.render_pg_hba(settings.pg_ident))
    return conf_changed, hba_changed
