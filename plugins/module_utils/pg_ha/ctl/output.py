# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering: the +-bordered tables of patronictl, tsv, json and yaml, and timestamps."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

FORMATS = ("pretty", "tsv", "json", "yaml", "yml")


def cell_text(value: Any) -> str:
    return "" if value is None else str(value)


def pretty_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[str] = ()) -> str:
    """A table framed with ``+---+`` lines, one space of padding, left-aligned except ``right``.

    Cells may span several lines; then a rule separates every row, as patronictl does."""
    text_rows = [[cell_text(c).split("\n") for c in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in text_rows:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in lines))
    right_set = set(right)
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            text = cell.rjust(widths[i]) if columns[i] in right_set else cell.ljust(widths[i])
            parts.append(f" {text} ")
        return "|" + "|".join(parts) + "|"

    multiline = any(len(lines) > 1 for row in text_rows for lines in row)
    out = [rule, line(list(columns)), rule]
    for index, row in enumerate(text_rows):
        if multiline and index:
            out.append(rule)
        height = max((len(lines) for lines in row), default=1)
        for n in range(height):
            out.append(line([lines[n] if n < len(lines) else "" for lines in row]))
    out.append(rule)
    return "\n".join(out)


def tsv(columns: Sequence[str] | None, rows: Iterable[Sequence[Any]], delimiter: str = "\t") -> str:
    lines = [delimiter.join(columns)] if columns else []
    lines.extend(delimiter.join(cell_text(c).replace("\n", " ") for c in row) for row in rows)
    return "\n".join(lines)


def dump_yaml(data: Any, flow: bool = False, sort_keys: bool = True) -> str:
    import yaml

    return str(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, width=200, sort_keys=sort_keys))


def dump_json(data: Any) -> str:
    return json.dumps(data, default=str)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "pretty",
           right: Iterable[str] = (), drop_empty: bool = False, delimiter: str = "\t") -> str:
    """One table in the chosen format; json/yaml give a list of {column: value} objects
    (as patronictl: json keeps the column order, yaml sorts the keys)."""
    if fmt in ("json", "yaml", "yml"):
        items = [{c: v for c, v in zip(columns, row, strict=False) if not (drop_empty and cell_text(v) == "")}
                 for row in rows]
        return dump_json(items) if fmt == "json" else dump_yaml(items).rstrip("\n")
    if fmt == "tsv":
        return tsv(columns, rows, delimiter)
    return pretty_table(columns, rows, right)


def echo(text: str = "", stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()


def timestamp(precision: int = 6) -> str:
    """Local time as patronictl prints it: '2018-06-03 16:18:47.41721' (precision 6), or to
    the second (precision 0)."""
    text = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:precision - 7] if precision < 7 else text


def mb(lag: int) -> int:
    """Bytes to whole MB, rounded as patronictl does."""
    return round(lag / 1024 / 1024)
