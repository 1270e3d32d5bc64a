"""Schemathesis fuzz of the REST API of a live leader (real etcd, real PostgreSQL 15).

Every operation of docs/openapi.yaml gets generated requests, valid (positive) and invalid
(negative) ones, on the leader of a 2-member cluster with no authentication, so that the
unsafe handlers really run. Required: no 500 at all, no 5xx the document does not list for
that operation, no unanswered request; afterwards the daemons still run, the leader keeps
the lock, the replica streams, and the log holds no handler traceback. Bounded to ~60 s.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

try:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
except ImportError as exc:  # a failure, not a skip: the fuzz is part of the suite
    raise ImportError(f"{exc}: install the test requirements (pip install -r tests/requirements.txt)") from exc

from tests.harness.cluster import TestCluster, running_cluster
from tests.harness.common import REPO, wait_for

pytestmark = pytest.mark.integration
SCOPE = "fuzzed"
BUDGET = 50.0  # seconds of fuzzing; setup and the health check afterwards come on top
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 40  # per operation and generation mode, while the budget lasts


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    with running_cluster(etcd_server, SCOPE, size=2, healthy=180, log_tail=15000) as c:
        yield c


def documented(operation: Any) -> set[str]:
    return {str(code) for code in operation.definition.raw.get("responses", {})}


def test_fuzz_rest_api_of_a_live_leader(cluster: TestCluster) -> None:
    leader = cluster.wait_leader(60)
    replica = next(m for m in cluster.members if m is not leader)
    base_url = f"http://127.0.0.1:{leader.api_port}"
    config_before = leader.api("/config")[1]
    schema = schemathesis.openapi.from_path(str(REPO / "docs" / "openapi.yaml"))
    session = requests.Session()
    deadline = time.monotonic() + BUDGET
    counts: Counter[str] = Counter()
    problems: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        allowed = documented(operation)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                if time.monotonic() > deadline:
                    return
                try:
                    response = case.call(base_url=base_url, session=session, timeout=60)
                except requests.RequestException as exc:
                    problems.append(f"{case.method} {case.formatted_path}: no answer: {exc}")
                    return
                counts["requests"] += 1
                counts[f"{response.status_code // 100}xx"] += 1
                code = response.status_code
                # 500 is an unhandled error, except Patroni's documented refusal of POST /failsafe by a
                # running primary (reached when a fuzzed PATCH /config turned failsafe_mode on)
                refusal = (case.method, case.formatted_path, response.text) == ("POST", "/failsafe",
                                                                                  "Running as a leader")
                if code == 500 and not refusal or (code >= 500 and str(code) not in allowed):  # noqa: B023
                    problems.append(f"{case.method} {case.formatted_path} query={case.query} "
                                    f"body={case.body!r:.200}: {code} {response.text[:200]}")
                try:  # and the answer is the documented one: status, content type, body schema
                    case.validate_response(response, checks=CONFORMANCE)
                except Exception as exc:  # noqa: BLE001 - schemathesis raises a group of failures
                    counts["nonconforming"] += 1
                    problems.append(f"{case.method} {case.formatted_path} query={case.query} "
                                    f"body={case.body!r:.200}: {code}: not as documented: "
                                    f"{str(exc).strip()[:400]}")

            try:
                fuzz()
            except Unsatisfiable:  # negative mode of an operation without any input to break
                counts["no negative cases"] += 1
            counts["operations"] += mode == GenerationMode.POSITIVE
    elapsed = BUDGET - (deadline - time.monotonic())
    print(f"\nFUZZ schemathesis {schemathesis.__version__ if hasattr(schemathesis, '__version__') else ''}: "
          f"{counts['requests']} requests over {counts['operations']} operations in {elapsed:.1f}s; "
          f"by class: { {k: v for k, v in counts.items() if k.endswith('xx')} }")
    assert counts["requests"] >= 200, counts  # the fuzz really ran
    assert problems == [], "\n".join(problems[:20])

    # the daemons keep serving and the cluster is unharmed: undo what the fuzz may have set
    leader.api("/switchover", "DELETE")
    leader.api("/restart", "DELETE")
    assert leader.api("/config", "PUT", config_before)[0] == 200
    assert leader.running and replica.running
    wait_for(lambda: leader.api("/config")[1] == config_before, 30, "the original config to be back")
    assert cluster.wait_healthy(120) is leader
    assert leader.api("/liveness")[0] == 200 and replica.api("/liveness")[0] == 200
    for m in cluster.members:
        assert "Traceback" not in m.log() and " failed" not in "".join(
            line for line in m.log().splitlines() if "REST API:" in line), m.name
    leader.sql("CREATE TABLE IF NOT EXISTS after_fuzz(x int); INSERT INTO after_fuzz VALUES (1)")
    wait_for(lambda: replica.sql("SELECT to_regclass('after_fuzz') IS NOT NULL")[0][0], 30,
             "a write after the fuzz to reach the replica")
    print(json.dumps(dict(counts)))
