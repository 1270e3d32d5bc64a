# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node: the HA loop (daemon.py) and the parts of one cycle: observe (read-only),
the Executor (the only writer of node state), the lease's effects, the leader's
housekeeping, the outage path, restarts, callbacks. I/O lives here and in dcs/, postgresql/."""
