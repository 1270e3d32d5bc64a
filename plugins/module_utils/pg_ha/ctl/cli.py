# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument parser: patronictl's commands and options, with argparse.

Each command names the module and function that run it (imported only when it runs)."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .. import __version__
from .output import FORMATS

ROLE_CHOICES = ("leader", "primary", "standby-leader", "replica", "standby", "any", "master")
PROG = "pg_hactl"


class Parser(argparse.ArgumentParser):
    """Usage errors as one line: ``Error: ...`` and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"Error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _format(p: argparse.ArgumentParser, default: str = "pretty", flags: tuple[str, ...] = ("-f", "--format")) -> None:
    p.add_argument(*flags, dest="fmt", choices=FORMATS, default=default, metavar="FORMAT",
                   help=f"output format: pretty, tsv, json or yaml (default: {default})")


def _watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("-W", dest="W", action="store_true", help="auto update the screen every 2 seconds")
    p.add_argument("-w", "--watch", type=float, metavar="SECONDS", help="auto update the screen every SECONDS")


def _force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="do not ask for confirmation at any point")


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("cluster_name", nargs="?", metavar="CLUSTER",
                   help="cluster name (default: scope from the config)")


def _cluster_members(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="CLUSTER [MEMBER ...]",
                   help="cluster name (default: scope from the config) and member names (default: all)")


def _role(p: argparse.ArgumentParser, what: str, default: str | None = "any") -> None:
    p.add_argument("-r", "--role", choices=ROLE_CHOICES, default=default, metavar="ROLE",
                   help=f"{what} only members with this role: {', '.join(ROLE_CHOICES[:-1])}")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Control a pg_ha (Patroni-compatible) PostgreSQL cluster.")
    parser.add_argument("-c", "--config-file", metavar="FILE",
                        help="configuration file: the daemon's own or a ctl file "
                             "(default: $PG_HACTL_CONFIG_FILE or ~/.config/pg_ha/pg_hactl.yaml)")
    parser.add_argument("-d", "--dcs-url", "--dcs", dest="dcs_url", metavar="URL",
                        help="the DCS to use instead of the config's, e.g. etcd3://127.0.0.1:2379[/namespace] "
                             "or zookeeper://zk1:2181,zk2:2181")
    parser.add_argument("-k", "--insecure", action="store_true",
                        help="do not verify the REST API's TLS certificates")
    parser.add_argument("--version", action="version", version=f"{PROG} version {__version__}")
    sub = parser.add_subparsers(dest="ctl_command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, target: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(target=target)
        return p

    p = command("list", "cmd_show:run_list", "List the members of clusters")
    p.add_argument("clusters", nargs="*", metavar="CLUSTER", help="cluster names (default: scope from the config)")
    p.add_argument("-e", "--extended", action="store_true",
                   help="show pending restart, scheduled restart and tags columns")
    p.add_argument("-t", "--timestamp", action="store_true", help="print a timestamp before the table")
    _format(p)
    _watch(p)

    p = command("topology", "cmd_show:run_topology", "Print the replication topology of clusters as a tree")
    p.add_argument("clusters", nargs="*", metavar="CLUSTER", help="cluster names (default: scope from the config)")
    _format(p)
    _watch(p)

    p = command("show-config", "cmd_config:run_show", "Show the cluster-wide (dynamic) configuration")
    _cluster(p)
    _format(p, "yaml")

    p = command("edit-config", "cmd_config:run_edit", "Edit the cluster-wide (dynamic) configuration")
    _cluster(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not show the changes")
    p.add_argument("-s", "--set", dest="kvpairs", action="append", default=[], metavar="KEY=VALUE",
                   help="set a value: dotted KEY, YAML VALUE (null removes); repeatable")
    p.add_argument("-p", "--pg", dest="pgkvpairs", action="append", default=[], metavar="PARAM=VALUE",
                   help="set a PostgreSQL parameter (= -s postgresql.parameters.PARAM=VALUE); repeatable")
    p.add_argument("--apply", dest="apply_file", metavar="FILE", help="merge the YAML of FILE ('-': stdin)")
    p.add_argument("--replace", dest="replace_file", metavar="FILE",
                   help="replace the whole configuration by the YAML of FILE ('-': stdin)")
    _force(p)

    for name, text in (("switchover", "Switch the leader over to a replica, now or at a scheduled time"),
                       ("failover", "Fail over to a replica (also when the cluster has no leader)")):
        p = command(name, f"cmd_switchover:run_{name}", text)
        _cluster(p)
        if name == "switchover":
            p.add_argument("--leader", "--primary", "--master", dest="leader", metavar="NAME",
                           help="the current leader")
            p.add_argument("--scheduled", metavar="TIME",
                           help="when, in an unambiguous format (e.g. ISO 8601: 2030-10-01T14:30+02:00)")
        p.add_argument("--candidate", metavar="NAME", help="the member to promote")
        _force(p)

    for name, text in (("pause", "Disable automatic failover (maintenance mode)"),
                       ("resume", "Resume automatic failover")):
        p = command(name, f"cmd_members:run_{name}", text)
        _cluster(p)
        p.add_argument("--wait", action="store_true", help="wait until every member reports the change")

    p = command("restart", "cmd_members:run_restart", "Restart PostgreSQL on members, now or at a scheduled time")
    _cluster_members(p)
    _role(p, "restart")
    p.add_argument("--any", dest="p_any", action="store_true", help="restart a single member only")
    p.add_argument("--scheduled", metavar="TIME", help="when, in an unambiguous format (e.g. ISO 8601)")
    p.add_argument("--pg-version", dest="pg_version", metavar="VERSION",
                   help="restart only if the PostgreSQL version is less than VERSION (e.g. 15.4)")
    p.add_argument("--pending", action="store_true", help="restart only members with a pending restart")
    p.add_argument("--timeout", metavar="SECONDS",
                   help="fail (and fail over when needed) if the restart takes longer")
    _force(p)

    p = command("reload", "cmd_members:run_reload", "Reload the configuration of members")
    _cluster_members(p)
    _role(p, "reload")
    _force(p)

    p = command("reinit", "cmd_members:run_reinit", "Reinitialize replicas (wipe and clone them again)")
    _cluster_members(p)
    p.add_argument("--from-leader", action="store_true", help="take the base backup from the leader")
    p.add_argument("--wait", action="store_true", help="wait until the members are running again")
    _force(p)

    p = command("flush", "cmd_members:run_flush", "Discard scheduled restarts or a scheduled switchover")
    p.add_argument("names", nargs="+", metavar="CLUSTER [MEMBER ...] {restart,switchover}",
                   help="cluster name, member names (default: all) and what to discard")
    _role(p, "flush")
    _force(p)

    p = command("history", "cmd_show:run_history", "Show the history of failovers and switchovers")
    _cluster(p)
    _format(p)

    p = command("query", "cmd_query:run_query", "Run SQL on a member")
    _cluster(p)
    p.add_argument("-c", "--command", metavar="SQL", help="the SQL to run")
    p.add_argument("-f", "--file", dest="sql_file", metavar="FILE", help="run the SQL of FILE ('-': stdin)")
    _format(p, "tsv", ("--format",))
    p.add_argument("--delimiter", default="\t", help="column delimiter of tsv output (default: tab)")
    p.add_argument("-m", "--member", metavar="NAME", help="query this member")
    _role(p, "query", None)
    p.add_argument("-d", "--dbname", metavar="DB", help="database name (default: postgres)")
    p.add_argument("-U", "--username", metavar="USER", help="database user (default: the config's superuser)")
    p.add_argument("--password", action="store_true", help="ask for the password")
    _watch(p)

    p = command("dsn", "cmd_show:run_dsn", "Print a libpq connection string of the leader, a member or a replica")
    _cluster(p)
    _role(p, "connect to", None)
    p.add_argument("-m", "--member", metavar="NAME", help="the dsn of this member")
    _format(p)

    p = command("remove", "cmd_show:run_remove", "Remove all information about a cluster from the DCS")
    p.add_argument("cluster_name", metavar="CLUSTER", help="cluster name")
    _format(p)

    p = command("version", "cmd_show:run_version", "Show the version of pg_hactl and of each member")
    p.add_argument("names", nargs="*", metavar="CLUSTER [MEMBER ...]",
                   help="cluster name (default: scope from the config) and member names (default: all)")
    _format(p)

    p = command("demote-cluster", "cmd_cluster_role:run_demote", "Demote cluster to a standby cluster")
    _cluster(p)
    _force(p)
    p.add_argument("--host", help="address of the remote node")
    p.add_argument("--port", type=int, help="port of the remote node")
    p.add_argument("--restore-command", dest="restore_command",
                   help="command to restore WAL records from the remote primary")
    p.add_argument("--primary-slot-name", dest="primary_slot_name",
                   help="name of the slot on the remote node to use for replication")

    p = command("promote-cluster", "cmd_cluster_role:run_promote", "Promote cluster, make it run standalone")
    _cluster(p)
    _force(p)

    p = command("completion", "completion:run", "Print a shell completion script (bash or zsh)")
    p.add_argument("shell", choices=("bash", "zsh"), help="bash: source <(pg_hactl completion bash)")
    return parser


def command_options(parser: Parser) -> dict[str, list[str]]:
    """Every command with its option strings (for the completion scripts)."""
    result: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                result[name] = sorted({o for a in sub._actions for o in a.option_strings})
    return result


def global_options(parser: Parser) -> list[str]:
    return sorted({o for a in parser._actions for o in a.option_strings})

