"""The short fault-injection run for CI: a few faults, one run each, asynchronous mode, on
real processes (3 etcd, 3 pg_ha members, HAProxy). Needs root, like the integration tests.

Asserted: 0 split-brain windows for every fault; no acknowledged write lost where no
failover happens or the failover is a clean switchover; after kill -9 of the primary,
losses bounded by maximum_lag_on_failover (in writes, measured) and reported; the cluster
heals (one leader, every member streaming, writes through HAProxy) and replicas converge."""
from __future__ import annotations

import pytest

from tests.chaos.checker import Result
from tests.chaos.env import TTL
from tests.chaos.faults import SHORT_FAULTS
from tests.chaos.report import render
from tests.chaos.run import run_suite

pytestmark = pytest.mark.integration
NO_LOSS = ("kill9_postmaster", "switchovers", "etcd_leader_kill", "partition_primary_from_replicas")


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    done = run_suite(SHORT_FAULTS, ["async"], runs=1, short=True)
    print(render(done))
    return {r.fault: r for r in done}


@pytest.mark.parametrize("fault", SHORT_FAULTS)
def test_fault(results: dict[str, Result], fault: str) -> None:
    r = results[fault]
    detail = f"{fault}: {r.notes}"
    print(f"{fault}: acked {r.acked}, lost {len(r.lost)} {r.lost[:20]} (bound {r.lost_bound}), "
          f"longest unavailability {r.longest_gap:.2f}s, split brain {r.split_brain}")
    assert r.healed, detail
    assert r.converged, detail
    assert r.split_brain == [], detail
    assert r.unexpected == [], detail
    assert r.acked > 100, detail
    assert r.lost_bound is not None and len(r.lost) <= r.lost_bound, detail
    if fault in NO_LOSS:
        assert r.lost == [], detail
    assert r.longest_gap < 3 * TTL, detail
