# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`pg_ha CONFIG.yml`: run the daemon. Exit 2 on an invalid config, 1 on a fatal error."""
from __future__ import annotations

import logging
import os
import signal
import sys
from logging.handlers import RotatingFileHandler
from typing import Any, NoReturn

from . import __version__
from .config.load import ConfigError, load_config
from .config.settings import LogSettings

LOG_FILE = "pg_ha.log"  # in log.dir (Patroni writes patroni.log there)


def setup_logging(log: LogSettings) -> None:
    """Patroni's log section: level, format, dateformat, per-logger levels, and with log.dir a
    rotating file (file_size bytes, file_num kept, mode) instead of stderr."""
    handler: logging.Handler
    if log.dir:
        handler = LogFileHandler(os.path.join(log.dir, LOG_FILE), log.file_size, log.file_num, log.mode)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(log.format, log.dateformat))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, log.level, logging.INFO))
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    for name, level in log.loggers.items():
        logging.getLogger(name).setLevel(getattr(logging, level, logging.INFO))


class LogFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose files get `mode` (Patroni's log.mode), else the umask's."""

    def __init__(self, path: str, max_bytes: int, backups: int, mode: int | None) -> None:
        self._file_mode = mode
        super().__init__(path, maxBytes=max_bytes, backupCount=backups)

    def _open(self) -> Any:
        stream = super()._open()
        if self._file_mode is not None:
            os.chmod(self.baseFilename, self._file_mode)
        return stream


USAGE = "usage: pg_ha [-h] [--validate-config] [--version] config"
HELP = f"""{USAGE}

High-availability daemon for PostgreSQL

positional arguments:
  config             configuration file (Patroni's YAML schema)

options:
  -h, --help         show this help message and exit
  --validate-config  check the config file and exit
  --version          show program's version number and exit
"""


def usage_error(message: str) -> NoReturn:
    print(f"{USAGE}\npg_ha: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: list[str]) -> tuple[str, bool]:
    """(config path, --validate-config). Three options do not need argparse, which would
    stay in the daemon's memory for good."""
    config: list[str] = []
    validate = False
    options = True
    for arg in argv:
        if options and arg == "--":
            options = False
        elif options and arg in ("-h", "--help"):
            print(HELP, end="")
            raise SystemExit(0)
        elif options and arg == "--version":
            print(f"pg_ha {__version__}")
            raise SystemExit(0)
        elif options and arg == "--validate-config":
            validate = True
        elif options and arg.startswith("-") and arg != "-":
            usage_error(f"unrecognized arguments: {arg}")
        else:
            config.append(arg)
    if len(config) > 1:
        usage_error(f"unrecognized arguments: {' '.join(config[1:])}")
    if not config:
        usage_error("the configuration file is required")
    return config[0], validate


def main(argv: list[str] | None = None) -> int:
    path, validate = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config, warnings = load_config(path)
    except ConfigError as exc:
        print(f"pg_ha: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        setup_logging(config.log)
    except OSError as exc:
        print(f"pg_ha: invalid configuration: log.dir: cannot open the log file: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("pg_ha")
    for warning in warnings:
        log.warning("%s", warning)
    if validate:
        print(f"{path}: configuration is valid")
        return 0
    return run(config)


def another_daemon_named(config: Any, dcs: Any) -> bool:
    """Before touching anything: does a live daemon already run under our name? (DCS
    unreachable: nobody can tell; the HA loop handles the outage as usual.)"""
    from .dcs.base import DCSError
    from .node.peers import name_in_use

    try:
        cluster = dcs.get_cluster()
    except DCSError as exc:
        logging.getLogger("pg_ha").warning("cannot check whether the name %s is taken: %s", config.name, exc)
        return False
    return name_in_use(cluster, config.name, float(config.dynamic.retry_timeout) / 2, config.restapi)


def run(config: Any) -> int:
    from .api.server import RestApiServer
    from .dcs import get_dcs
    from .node.daemon import Daemon
    from .postgresql import Postgresql

    log = logging.getLogger("pg_ha")
    dcs = get_dcs(config)
    if another_daemon_named(config, dcs):
        log.critical("Can't start; there is already a node named '%s' running", config.name)
        return 1
    daemon = Daemon(config, dcs, Postgresql(config.postgresql))
    api = RestApiServer(daemon, config.restapi)
    try:
        api.start()
    except OSError as exc:
        log.critical("cannot start the REST API on %s:%s: %s", config.restapi.listen_host,
                     config.restapi.listen_port, exc)
        return 1

    install_signal_handlers(daemon, log)
    code = daemon.run()
    try:
        if code == 0:
            daemon.shutdown()
    finally:
        api.stop()
    return code


def install_signal_handlers(daemon: Any, log: logging.Logger) -> None:
    """SIGTERM, SIGINT: stop (PostgreSQL too). SIGHUP: reload the config file, as Patroni
    does; its systemd unit's `ExecReload=/bin/kill -s HUP $MAINPID` must not kill us."""
    def on_stop(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        daemon.stop()

    def on_reload(_signum: int, _frame: Any) -> None:
        log.info("received SIGHUP: reloading the configuration")
        daemon.reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)


if __name__ == "__main__":
    sys.exit(main())
