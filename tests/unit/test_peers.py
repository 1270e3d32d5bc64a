"""peers.peer_from_status: another member's GET /patroni body, garbage included, never raises."""
from __future__ import annotations

from typing import Any

import pytest
from pg_ha.peers import client_context, peer_from_status
from pg_ha.settings import RestApiSettings


@pytest.mark.parametrize("body, reachable, lsn, running", [
    ({"state": "running", "role": "replica", "xlog": {"received_location": 10, "replayed_location": 20}},
     True, 20, True),
    ({"state": "running", "role": "primary", "xlog": {"location": 30}}, True, 30, True),
    ({"state": "running", "role": "replica", "xlog": {"received_location": "abc", "replayed_location": [1]}},
     True, 0, True),
    ({"role": "primary", "xlog": {"location": -5}}, True, 0, False),
    ({"role": "primary", "xlog": {"location": {"x": 1}}, "tags": "garbage", "timeline": "2"}, True, 0, False),
    ({"xlog": "garbage"}, True, 0, False),
    ("garbage", False, 0, False),
    ([1, 2], False, 0, False),
    (None, False, 0, False),
])
def test_peer_from_status(body: Any, reachable: bool, lsn: int, running: bool) -> None:
    info = peer_from_status("pg1", body)
    assert (info.reachable, info.wal_lsn, info.running) == (reachable, lsn, running)


def test_no_tls_context_without_certfile() -> None:
    assert client_context(None) is None
    assert client_context(RestApiSettings()) is None
