# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_ha: a Patroni-compatible high-availability daemon for PostgreSQL.

This file and client.py import only the standard library."""

__version__ = "0.1.0"
