# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The REST status between two HA cycles (node/live_status.py): the published view, or the
server's own answer when it came up since the cycle published."""
from __future__ import annotations

from typing import Any

from pg_ha.core.status import CycleFacts, patroni_status
from pg_ha.node.live_status import LiveStatus
from pg_ha.postgresql.query import LocalState

from tests.fakes import make_config

CONFIG = make_config("pg0")
PRIMARY_UP = LocalState(running=True, accepting=True, in_recovery=False, timeline=1, wal_lsn=5000,
                        server_version=150004)
REPLICA_UP = LocalState(running=True, accepting=True, in_recovery=True, timeline=2, receive_lsn=4000,
                        replay_lsn=3000, wal_receiver={"status": "streaming"})


class Pg:
    def __init__(self, alive: bool, probe: LocalState | None = None) -> None:
        self.alive = alive
        self.probe = probe or LocalState()
        self.probes = 0
        self.closed = 0

    def is_running(self) -> bool:
        return self.alive

    def probe_state(self) -> LocalState:
        self.probes += 1
        return self.probe

    def close_probe(self) -> None:
        self.closed += 1


def published(**facts: Any) -> tuple[dict[str, Any], CycleFacts]:
    f = CycleFacts(**facts)
    return patroni_status(CONFIG, f), f


def test_running_status_is_the_answer_without_a_query() -> None:
    status, facts = published(running=True, in_recovery=False, timeline=1, wal_lsn=10)
    pg = Pg(alive=True)
    assert LiveStatus(pg).view(CONFIG, status, facts, None) is status
    assert pg.probes == 0


def test_a_postmaster_dead_since_the_cycle_is_unknown() -> None:
    status, facts = published(running=True, in_recovery=False, timeline=1, wal_lsn=10)
    got = LiveStatus(Pg(alive=False)).view(CONFIG, status, facts, None)
    assert got["state"] == "unknown" and got["role"] == "primary"


def test_a_primary_started_after_a_crash_answers_from_the_server() -> None:
    status, facts = published(running=False, crashed=True, dcs_last_seen=123)
    assert (status["state"], status["role"]) == ("crashed", "replica")
    got = LiveStatus(Pg(alive=True, probe=PRIMARY_UP)).view(CONFIG, status, facts, None)
    assert (got["state"], got["role"], got["timeline"]) == ("running", "primary", 1)
    assert got["xlog"] == {"location": 5000} and got["dcs_last_seen"] == 123


def test_while_the_start_runs_the_state_is_the_step_and_the_role_the_servers() -> None:
    status, facts = published(running=False, busy="starting")
    got = LiveStatus(Pg(alive=True, probe=REPLICA_UP)).view(CONFIG, status, facts, "starting")
    assert (got["state"], got["role"], got["timeline"]) == ("starting", "replica", 2)
    assert got["xlog"]["received_location"] == 4000 and got["replication_state"] == "streaming"


def test_a_server_not_accepting_yet_leaves_the_published_view() -> None:
    status, facts = published(running=False, crashed=True)
    pg = Pg(alive=True, probe=LocalState(running=True, error="the database system is starting up"))
    assert LiveStatus(pg).view(CONFIG, status, facts, None) is status
    assert pg.probes == 1


def test_a_stopped_server_is_not_queried() -> None:
    status, facts = published(running=False)
    pg = Pg(alive=False)
    assert LiveStatus(pg).view(CONFIG, status, facts, None) is status
    assert pg.probes == 0


def test_the_probe_connection_closes_once_the_cycle_published_running() -> None:
    pg = Pg(alive=True, probe=PRIMARY_UP)
    live = LiveStatus(pg)
    down, down_facts = published(running=False, crashed=True)
    live.view(CONFIG, down, down_facts, None)
    up, up_facts = published(running=True, in_recovery=False, timeline=1, wal_lsn=10)
    live.view(CONFIG, up, up_facts, None)
    live.view(CONFIG, up, up_facts, None)
    assert pg.closed == 1


def test_get_patroni_answers_the_positions_of_now() -> None:
    """Peers compare these in the leader race: a replica's position of the last cycle could
    miss the old primary's shutdown checkpoint it received since."""
    status, facts = published(running=True, in_recovery=True, timeline=2, receive_lsn=1000, replay_lsn=1000,
                              wal_lsn=1000)
    got = LiveStatus(Pg(alive=True, probe=REPLICA_UP)).fresh(CONFIG, status, facts, None)
    assert (got["state"], got["role"]) == ("running", "replica")
    assert got["xlog"]["received_location"] == 4000 and got["xlog"]["replayed_location"] == 3000


def test_get_patroni_falls_back_to_the_published_view() -> None:
    status, facts = published(running=True, in_recovery=False, timeline=1, wal_lsn=10)
    pg = Pg(alive=True, probe=LocalState(running=True, error="too many connections"))
    assert LiveStatus(pg).fresh(CONFIG, status, facts, None) is status
    dead = LiveStatus(Pg(alive=False)).fresh(CONFIG, status, facts, None)
    assert dead["state"] == "unknown"


def test_a_step_begun_since_the_cycle_published_is_the_state_at_once() -> None:
    """POST /reinitialize between two cycles: the published "running" of before must not
    reach `reinit --wait`, which would call the re-clone complete before it began."""
    status, facts = published(running=True, in_recovery=True, timeline=1, wal_lsn=10)
    stopped = LiveStatus(Pg(alive=False)).view(CONFIG, status, facts, "creating replica")
    assert stopped["state"] == "creating replica"
    starting = Pg(alive=True, probe=LocalState(running=True, error="the database system is starting up"))
    assert LiveStatus(starting).fresh(CONFIG, status, facts, "creating replica")["state"] == "creating replica"
    assert LiveStatus(Pg(alive=True, probe=REPLICA_UP)).fresh(CONFIG, status, facts,
                                                             "creating replica")["state"] == "creating replica"
