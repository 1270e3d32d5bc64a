# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL positions and timeline history files: parsing and formatting, no I/O."""
from __future__ import annotations


def parse_lsn(text: str) -> int:
    """'0/3000060' -> 50331744. Raises ValueError on anything else."""
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low:
        raise ValueError(f"not an LSN: {text!r}")
    hi, lo = int(high, 16), int(low, 16)
    if hi > 0xFFFFFFFF or lo > 0xFFFFFFFF or hi < 0 or lo < 0:
        raise ValueError(f"LSN out of range: {text!r}")
    return (hi << 32) | lo


def format_lsn(value: int) -> str:
    """50331744 -> '0/3000060' (the same spelling PostgreSQL uses)."""
    if value < 0 or value > 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"LSN out of range: {value}")
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def maybe_lsn(text: str | None) -> int | None:
    """parse_lsn for values that may be NULL or garbage."""
    if not text:
        return None
    try:
        return parse_lsn(text)
    except ValueError:
        return None


def parse_history(content: str) -> list[tuple[int, int]]:
    """Parse a timeline history file into [(parent_timeline, switch_lsn), ...].

    Each meaningful line is `<parent tli> <tab> <switchpoint> <tab> <reason>`; blank lines
    and `#` comments are ignored, as PostgreSQL does. Malformed lines are skipped.
    """
    result: list[tuple[int, int]] = []
    for line in content.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        if len(fields) < 2:
            continue
        try:
            result.append((int(fields[0]), parse_lsn(fields[1])))
        except ValueError:
            continue
    return result


def timeline_from_walfile(walfile: str | None) -> int | None:
    """The timeline encoded in the first 8 hex digits of a WAL segment file name."""
    if not walfile or len(walfile) < 8:
        return None
    try:
        return int(walfile[:8], 16)
    except ValueError:
        return None
