# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Questions on the terminal, worded and answered as with patronictl (click's prompts):
``Text [default]: `` and ``Text [y/N]: ``. Answers are read from stdin, so scripts can pipe
them; end of input aborts the command."""
from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from .errors import CtlError, UsageError

YES = ("y", "yes")
NO = ("n", "no")


def _read(text: str) -> str:
    sys.stdout.write(text)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        raise CtlError("Aborted: no answer on standard input (use --force for scripts)")
    return line.rstrip("\r\n")


def ask(text: str, default: str | None = None, hide: bool = False) -> str:
    """Ask until an answer is given; an empty answer takes ``default`` when there is one."""
    label = f"{text} [{default}]: " if default is not None else f"{text}: "
    while True:
        if hide:
            import getpass

            try:
                answer = getpass.getpass(label)
            except EOFError:
                raise CtlError("Aborted: no answer on standard input") from None
        else:
            answer = _read(label)
        if answer.strip():
            return answer.strip()
        if default is not None:
            return default


def confirm(text: str) -> bool:
    """``Text [y/N]: ``: True only for y/yes; empty means no."""
    while True:
        answer = _read(f"{text} [y/N]: ").strip().lower()
        if answer in YES:
            return True
        if answer in NO or not answer:
            return False
        sys.stdout.write("Error: invalid input\n")


def next_hour_example(now: datetime | None = None) -> str:
    return ((now or datetime.now()) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")


def parse_scheduled(value: str | None, now: datetime | None = None) -> datetime | None:
    """``now``/empty -> None (immediately); ISO 8601 -> an aware datetime. A trailing ``UTC``
    or ``Z`` means UTC (``2018-07-08T03:00UTC`` as in the seeds); without a zone the local
    time zone is assumed, as patronictl does."""
    if value is None or value.strip().lower() in ("", "now"):
        return None
    text = value.strip()
    utc = False
    for suffix in ("UTC", "Z", "z"):
        if text.endswith(suffix):
            text, utc = text[: -len(suffix)].rstrip(), True
            break
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"Unable to parse scheduled timestamp ({value}). It should be in an unambiguous "
                         "format (e.g. ISO 8601)") from None
    if utc:
        if when.tzinfo is not None:
            raise UsageError(f"Unable to parse scheduled timestamp ({value}): two time zones given")
        when = when.replace(tzinfo=UTC)
    elif when.tzinfo is None:
        when = when.astimezone()  # local time zone
    return when
