# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two ways a pg_hactl command fails: printed as one ``Error: ...`` line on stderr."""
from __future__ import annotations


class CtlError(Exception):
    """The command could not be done (exit code 1); nothing was changed after the failure."""

    exit_code = 1


class UsageError(CtlError):
    """Options that cannot go together or are missing (exit code 2, as argparse's own)."""

    exit_code = 2
