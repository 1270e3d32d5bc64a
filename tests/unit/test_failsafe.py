"""failsafe_mode helpers: the failsafe key, who is asked, the member's answer and memory,
and the parallel POST /failsafe calls against real REST API servers on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pg_ha.api import RestApiServer
from pg_ha.config.load import ConfigError, dynamic_from
from pg_ha.config.settings import Config, RestApiSettings
from pg_ha.core import failsafe
from pg_ha.core.failsafe import FailsafeLeader, OutageView
from pg_ha.core.ha import Action
from pg_ha.core.model import Cluster, Leader, Member
from pg_ha.dcs.base import DCSError
from pg_ha.dcs.etcd3 import Etcd3
from pg_ha.node.failsafe_keeper import FailsafeKeeper

from tests.fakes import FakeBackend, FakeDCS, make_config, primary_status, replica_status, three_member_dcs


def with_failsafe(config: Config, on: bool = True) -> Config:
    return config.with_dynamic(replace(config.dynamic, failsafe_mode=on))


def members(*names: str) -> tuple[Member, ...]:
    return tuple(Member(n, 1, {"api_url": f"http://127.0.0.1:8008/{n}", "conn_url": f"postgres://x/{n}"})
                 for n in names)


# -- config ---------------------------------------------------------------------------------
def test_failsafe_mode_is_a_dynamic_boolean_default_off() -> None:
    assert dynamic_from({}).failsafe_mode is False
    assert dynamic_from({"failsafe_mode": True}).failsafe_mode is True
    assert dynamic_from({"failsafe_mode": "on"}, "config").failsafe_mode is True
    with pytest.raises(ConfigError, match=r"^bootstrap.dcs.failsafe_mode: expected a boolean"):
        dynamic_from({"failsafe_mode": "sometimes"})


# -- the key ----------------------------------------------------------------------------------
def test_topology_lists_every_member_with_an_api_url_and_the_leader() -> None:
    cluster = Cluster(members=(*members("pg1", "pg2"), Member("pg3", 1, {"conn_url": "postgres://x/pg3"})))
    assert failsafe.topology(cluster, "pg0", "http://me/patroni") == {
        "pg0": "http://me/patroni", "pg1": "http://127.0.0.1:8008/pg1", "pg2": "http://127.0.0.1:8008/pg2"}


def test_key_is_written_only_when_on_and_different() -> None:
    wanted = {"pg0": "a"}
    assert failsafe.key_needs_write(True, None, wanted)
    assert failsafe.key_needs_write(True, {"pg0": "a", "pg1": "b"}, wanted)
    assert not failsafe.key_needs_write(True, {"pg0": "a"}, wanted)
    assert not failsafe.key_needs_write(False, None, wanted)


def test_keeper_publishes_the_key_through_the_dcs() -> None:
    dcs = three_member_dcs()
    keeper = FailsafeKeeper("pg0")
    config = with_failsafe(make_config())
    keeper.seen(dcs.get_cluster())
    assert keeper.topology is None
    keeper.publish(dcs, dcs.get_cluster(), config)
    written = dcs.get_cluster().failsafe
    assert written is not None and set(written) == {"pg0", "pg1", "pg2"}
    assert keeper.topology == written  # known before the next read: the DCS may be gone by then
    writes = len(dcs.writes)
    keeper.publish(dcs, dcs.get_cluster(), config)  # unchanged: no second write
    assert len(dcs.writes) == writes
    off = FakeDCS("pg0")
    keeper.publish(off, off.get_cluster(), make_config())
    assert off.get_cluster().failsafe is None


# -- who is asked -----------------------------------------------------------------------------
def test_members_to_ask() -> None:
    topology = {"pg0": "u0", "pg1": "u1", "pg2": "u2"}
    view = OutageView("pg0", True, False, True, False, known_topology=topology)
    assert failsafe.members_to_ask(view) == {"pg1": "u1", "pg2": "u2"}
    assert failsafe.members_to_ask(replace(view, failsafe_mode=False)) is None
    assert failsafe.members_to_ask(replace(view, in_recovery=True)) is None
    assert failsafe.members_to_ask(replace(view, paused=True)) is None
    assert failsafe.members_to_ask(replace(view, busy="restarting")) is None
    assert failsafe.members_to_ask(replace(view, name="pg9")) is None
    assert failsafe.members_to_ask(replace(view, known_topology={"pg0": "u0"})) == {}


# -- the member side ----------------------------------------------------------------------------
def test_answer_as_patroni() -> None:
    assert failsafe.answer_call(False, False) == (502, "failsafe_mode is not enabled")
    assert failsafe.answer_call(True, True) == (500, "Running as a leader")
    assert failsafe.answer_call(True, False) == (200, "Accepted")


def test_parse_call() -> None:
    caller = failsafe.parse_call({"name": "pg0", "api_url": "http://a/patroni", "conn_url": "postgres://a",
                                  "lsn": 42}, 7.0)
    assert caller == FailsafeLeader("pg0", "http://a/patroni", "postgres://a", 7.0, 42)
    assert isinstance(failsafe.parse_call({"lsn": 1}, 0), str)
    assert isinstance(failsafe.parse_call([1], 0), str)
    assert isinstance(failsafe.parse_call({"name": ""}, 0), str)
    assert failsafe.parse_call({"name": "pg0", "lsn": True}, 0).lsn is None  # type: ignore[union-attr]


def test_failsafe_leader_injected_for_ttl_only() -> None:
    base = Cluster(members=members("pg1", "pg2"))
    caller = FailsafeLeader("pg0", "http://a/patroni", "postgres://a", received_at=100.0)
    seen = failsafe.with_failsafe_leader(base, caller, "pg1", True, now=109.0, ttl=10)
    assert seen.leader is not None and seen.leader.name == "pg0"
    leader_member = seen.get_member("pg0")
    assert leader_member is not None and leader_member.conn_url == "postgres://a"
    assert failsafe.with_failsafe_leader(base, caller, "pg1", True, now=110.0, ttl=10) is base  # expired
    assert failsafe.with_failsafe_leader(base, caller, "pg1", False, now=101.0, ttl=10) is base  # mode off
    assert failsafe.with_failsafe_leader(base, caller, "pg0", True, now=101.0, ttl=10) is base  # ourselves
    assert failsafe.with_failsafe_leader(base, None, "pg1", True, now=101.0, ttl=10) is base
    locked = replace(base, leader=Leader("pg2", 3))
    assert failsafe.with_failsafe_leader(locked, caller, "pg1", True, now=101.0, ttl=10) is locked


def test_keeper_remembers_only_accepted_calls() -> None:
    keeper = FailsafeKeeper("pg1")
    base = Cluster(members=members("pg0", "pg1"))
    assert keeper.receive({"name": "pg0"}, failsafe_mode=True, running_primary=True)[0] == 500
    assert keeper.cluster_view(base, True, 30).leader is None
    assert not keeper.is_active(30)
    assert keeper.receive({"name": "pg0"}, failsafe_mode=True, running_primary=False) == (200, "Accepted")
    seen = keeper.cluster_view(base, True, 30)
    assert seen.leader is not None and seen.leader.name == "pg0"
    assert keeper.is_active(30)
    assert keeper.receive({}, failsafe_mode=True, running_primary=False)[0] == 400


# -- the primary side against real REST API servers ---------------------------------------------
@pytest.fixture
def servers() -> Iterator[dict[str, RestApiServer]]:
    """pg1: a replica with failsafe_mode on; pg2: a primary (refuses); pg3: failsafe_mode off."""
    started: dict[str, RestApiServer] = {}
    specs = {"pg1": (True, replica_status), "pg2": (True, primary_status), "pg3": (False, replica_status)}
    for name, (on, status) in specs.items():
        config = with_failsafe(replace(make_config(), name=name), on)
        backend = FakeBackend(FakeDCS(name), config=config, status=status(config))
        server = RestApiServer(backend, RestApiSettings(listen_host="127.0.0.1", listen_port=0))
        server.start()
        started[name] = server
    yield started
    for server in started.values():
        server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def url(server: RestApiServer) -> str:
    return f"http://127.0.0.1:{server.port}/patroni"


def test_ask_in_parallel_and_decide(servers: dict[str, RestApiServer]) -> None:
    keeper = FailsafeKeeper("pg0")
    config = with_failsafe(make_config())
    dead = f"http://127.0.0.1:{closed_port()}/patroni"
    body = {"name": "pg0", "conn_url": "postgres://pg0", "api_url": "http://pg0/patroni", "lsn": 1}
    answers = keeper.ask({"pg1": url(servers["pg1"]), "pg2": url(servers["pg2"]), "pg3": url(servers["pg3"]),
                          "dead": dead}, body, config)
    assert answers == {"pg1": True, "pg2": False, "pg3": False, "dead": False}
    remembered = servers["pg1"].backend.failsafe.cluster_view(Cluster(), True, 30)  # type: ignore[attr-defined]
    assert remembered.leader is not None and remembered.leader.name == "pg0"

    view = OutageView("pg0", True, False, True, False, known_topology={"pg0": "x", "pg1": url(servers["pg1"])})
    started = time.monotonic()
    decision = keeper.decide(view, config, "postgres://pg0", 1)
    assert decision.action == Action.NOOP and decision.message == failsafe.CONTINUE and decision.consented
    assert keeper.is_active(30)
    refused = replace(view, known_topology={"pg0": "x", "pg1": url(servers["pg1"]), "dead": dead})
    decision = keeper.decide(refused, config, "postgres://pg0", 1)
    assert decision.action == Action.DEMOTE_OFFLINE and "no consent from dead" in decision.message
    assert not decision.consented
    assert not keeper.is_active(30)
    assert time.monotonic() - started < 10


# -- every etcd error class takes the one DCSError path -------------------------------------------
def answering(status: int, doc: dict[str, object]) -> type[BaseHTTPRequestHandler]:
    class Always(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass
    return Always


NO_LEADER = (503, {"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": 14})
AUTH_FAILED = (400, {"error": "etcdserver: authentication failed, invalid user ID or password",
                     "message": "etcdserver: authentication failed, invalid user ID or password", "code": 3})


@pytest.mark.parametrize("kind", ["refused", "timeout", "no-leader", "auth-failed"])
def test_every_etcd_error_class_is_a_dcs_error(kind: str) -> None:
    """What the daemon's outage path (and so failsafe_mode) sees: DCSError, within retry_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts, never answers: a SIGSTOPped etcd
        server = None
        if kind in ("no-leader", "auth-failed"):
            status, doc = NO_LEADER if kind == "no-leader" else AUTH_FAILED
            server = ThreadingHTTPServer(("127.0.0.1", 0), answering(status, doc))
            threading.Thread(target=server.serve_forever, daemon=True).start()
        host = {"refused": f"127.0.0.1:{closed_port()}", "timeout": f"127.0.0.1:{silent.getsockname()[1]}"}.get(
            kind, f"127.0.0.1:{server.server_address[1] if server else 0}")
        dcs = Etcd3("/service", "demo", "pg0", ttl=10, retry_timeout=1, hosts=[host],
                    username="root" if kind == "auth-failed" else None, password="wrong")
        try:
            started = time.monotonic()
            with pytest.raises(DCSError):
                dcs.get_cluster()
            with pytest.raises(DCSError):
                dcs.update_leader(Leader("pg0", 1, 7), 0)
            assert time.monotonic() - started < 4
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()


def test_calls_carry_the_rest_api_credentials() -> None:
    """POST /failsafe is an unsafe method: members with restapi authentication want the
    shared credentials, which the caller takes from its own restapi section."""
    config = with_failsafe(replace(make_config(), name="pg1"))
    backend = FakeBackend(FakeDCS("pg1"), config=config, status=replica_status(config))
    server = RestApiServer(backend, RestApiSettings(listen_host="127.0.0.1", listen_port=0, username="u",
                                                    password="secret"))
    server.start()
    try:
        body = {"name": "pg0"}
        caller = with_failsafe(make_config())
        assert FailsafeKeeper("pg0").ask({"pg1": url(server)}, body, caller) == {"pg1": False}  # 401
        authed = replace(caller, restapi=replace(caller.restapi, username="u", password="secret"))
        assert FailsafeKeeper("pg0").ask({"pg1": url(server)}, body, authed) == {"pg1": True}
    finally:
        server.stop()


def test_the_slot_positions_of_a_primarys_call_stand_in_for_the_status_key() -> None:
    """Patroni's Failsafe.update_cluster: while the DCS is down a replica advances its copies
    of the permanent slots to the positions the primary sent with POST /failsafe."""
    from pg_ha.core.failsafe import parse_call, with_failsafe_slots
    from pg_ha.core.model import Cluster, Leader, Member
    body = {"name": "pg0", "conn_url": "postgres://h:1/postgres", "api_url": "http://h:8008/patroni",
            "slots": {"logical_1": 500, "pg_2": 700, "junk": "x", "flag": True}}
    caller = parse_call(body, received_at=100.0)
    assert not isinstance(caller, str) and caller.slots == {"logical_1": 500, "pg_2": 700}
    known = Cluster(initialize="1", leader=Leader("pg0", 1), status={"optime": 10, "slots": {"logical_1": 100}},
                    members=(Member("pg1", 1, {}), Member("pg-2", 1, {"tags": {"replicatefrom": "pg1"},
                                                                        "xlog_location": 1})))
    view = with_failsafe_slots(known, caller, now=105.0, ttl=20)
    assert view is not None and view.status == {"optime": 10, "slots": {"logical_1": 500, "pg_2": 700}}
    assert view.get_member("pg-2").data["xlog_location"] == 700  # a cascading member: its slot position
    assert known.status == {"optime": 10, "slots": {"logical_1": 100}}  # the input is untouched
    assert with_failsafe_slots(known, caller, now=121.0, ttl=20) is None  # the call is too old
    no_slots = parse_call({"name": "pg0"}, received_at=100.0)
    assert with_failsafe_slots(known, no_slots, now=101.0, ttl=20) is None  # type: ignore[arg-type]
