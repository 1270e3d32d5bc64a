# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The members table as pg_hactl prints it: pretty (members.py, the seeds' layout) or
tsv/json/yaml (machine.py, patronictl 4.1's keys)."""
from __future__ import annotations

from ..core.model import Cluster
from .machine import machine_table
from .members import RIGHT, member_table, service_info
from .output import dump_yaml, echo, render


def print_members(cluster: Cluster, scope: str, extended: bool = False, fmt: str = "pretty",
                  topology: bool = False) -> None:
    """The table (pretty: the seeds' layout); tsv/json/yaml have patronictl 4.1's columns."""
    if fmt == "pretty":
        columns, rows = member_table(cluster, scope, extended, topology, fmt)
    else:
        columns, rows = machine_table(cluster, scope, extended)
        if fmt == "tsv" and "Tags" in columns:
            i = columns.index("Tags")
            for row in rows:
                row[i] = dump_yaml(row[i], flow=True).strip() if row[i] else ""
    echo(render(columns, rows, fmt, RIGHT, drop_empty=True))
    if fmt == "pretty":
        info = service_info(cluster)
        if info:
            echo(" " + "\n ".join(info))
