# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`pg_ha CONFIG.yml`: run the daemon. Exit 2 on an invalid config, 1 on a fatal error."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from . import __version__
from .config import ConfigError, load_config


def setup_logging(log: dict[str, Any]) -> None:
    level = str(log.get("level", "INFO")).upper()
    fmt = log.get("format", "%(asctime)s %(levelname)s: %(message)s")
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format=fmt, stream=sys.stderr)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pg_ha", description="High-availability daemon for PostgreSQL")
    parser.add_argument("config", nargs="?", help="configuration file (Patroni's YAML schema)")
    parser.add_argument("--validate-config", action="store_true", help="check the config file and exit")
    parser.add_argument("--version", action="version", version=f"pg_ha {__version__}")
    args = parser.parse_args(argv)
    if not args.config:
        parser.error("the configuration file is required")
    try:
        config, warnings = load_config(args.config)
    except ConfigError as exc:
        print(f"pg_ha: invalid configuration: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log)
    log = logging.getLogger("pg_ha")
    for warning in warnings:
        log.warning("%s", warning)
    if args.validate_config:
        print(f"{args.config}: configuration is valid")
        return 0
    return run(config)


def run(config: Any) -> int:
    from .api.server import RestApiServer
    from .daemon import Daemon
    from .dcs import get_dcs
    from .postgresql import Postgresql

    log = logging.getLogger("pg_ha")
    dcs = get_dcs(config)
    daemon = Daemon(config, dcs, Postgresql(config.postgresql))
    api = RestApiServer(daemon, config.restapi)
    try:
        api.start()
    except OSError as exc:
        log.critical("cannot start the REST API on %s:%s: %s", config.restapi.listen_host,
                     config.restapi.listen_port, exc)
        return 1

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = daemon.run()
    try:
        if code == 0:
            daemon.shutdown()
    finally:
        api.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
