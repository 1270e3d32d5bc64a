# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``pg_hactl [-c CONFIG] [--dcs-url URL] COMMAND ...`` (= ``python3 -m pg_ha.ctl``).

Exit codes: 0 done, 1 the command failed (one ``Error: ...`` line on stderr), 2 usage error,
130 interrupted."""
from __future__ import annotations

import importlib
import logging
import sys

from .cli import build_parser
from .errors import CtlError

QUIET_LIBRARIES = ("kazoo",)  # their reconnect warnings would reach the terminal through logging's last resort


def main(argv: list[str] | None = None) -> int:
    for name in QUIET_LIBRARIES:  # a failure is the one "Error: ..." line below, not a log line per retry
        logging.getLogger(name).addHandler(logging.NullHandler())
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.ctl_command:
        parser.print_help()
        return 2
    module_name, _, function = args.target.partition(":")
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
        if module_name == "completion":
            return int(getattr(module, function)(parser, args) or 0)
        from .context import Ctx
        from .ctlconfig import load

        ctx = Ctx(load(args.config_file, args.dcs_url, args.insecure))
        try:
            return int(getattr(module, function)(ctx, args) or 0)
        finally:
            ctx.close()
    except CtlError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130
    except BrokenPipeError:  # `pg_hactl list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
