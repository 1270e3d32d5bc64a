# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hactl: the control CLI of pg_ha, with patronictl's commands, options, prompts and tables.

It reads the cluster state from the DCS and acts through each member's REST API (the DCS
is written directly only where patronictl does so: the config key with compare-and-swap,
the failover key as a fallback, ``remove``). Standard library + PyYAML; psycopg2 is imported
only by ``query``. Each command lives in its own module and is imported when it runs, so
``pg_hactl list`` loads little more than the DCS client.
"""
