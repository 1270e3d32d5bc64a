"""Side-by-side benchmark of pg_ha and Patroni (``bash bench/run.sh``; see docs/BENCHMARKS.md).

Reports numbers only: nothing here passes or fails.
"""
