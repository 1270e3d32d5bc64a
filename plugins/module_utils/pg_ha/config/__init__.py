# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration: Patroni's YAML + environment -> one validated, typed Config
(load.py), the typed settings and their defaults (settings.py), the small validators
(parse.py) and the bootstrap sections (bootstrap.py)."""
