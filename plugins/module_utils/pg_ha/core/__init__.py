# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure core: the cluster model (model.py), the HA rules (ha.py), synchronous and
quorum replication rules, the failsafe rules and the status builders. No I/O, no clock
that is not passed in; imports nothing outside core/ but config.settings (plain values)."""
