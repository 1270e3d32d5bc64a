import pytest
from pg_ha.node.restarts import postgres_version_to_int


@pytest.mark.parametrize("text, value", [("9.5.2", 90502), ("9.6", 90600), ("15.4", 150004), ("15", 150000),
                                         ("10.23", 100023), ("x", None), ("1.2.3.4", None), ("", None)])
def test_postgres_version_to_int(text: str, value: int | None) -> None:
    assert postgres_version_to_int(text) == value


def test_a_replica_that_streamed_the_leaders_timeline_is_not_stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_control's timeline lags on a replica until a restartpoint: when the leader dies after
    a promotion, a replica that streamed the new timeline must not stop to check divergence."""
    from types import SimpleNamespace

    from pg_ha.node import daemon as daemon_mod
    from pg_ha.node import observe

    from tests.fakes import FakeDCS, make_config

    monkeypatch.setattr(observe, "STUCK_AFTER", 0.0)
    dcs = FakeDCS(name="pg1")
    dcs.set_member("pg0", timeline=3)
    dcs.set_leader("pg0")
    cluster = dcs.get_cluster()
    pg = SimpleNamespace(data_dir_empty=lambda: True)
    d = daemon_mod.Daemon(make_config("pg1"), dcs, pg)
    stuck_following = d.observer.stuck_following

    def state(streaming: bool, timeline: int) -> SimpleNamespace:
        receiver = {"status": "streaming", "received_tli": 3} if streaming else None
        return SimpleNamespace(running=True, in_recovery=True, timeline=timeline, wal_receiver=receiver)

    assert stuck_following(cluster, state(False, 2), "pg0")  # never streamed timeline 3: check
    assert not stuck_following(cluster, state(True, 3), "pg0")
    assert not stuck_following(cluster, state(False, 2), "pg0")  # leader gone: streamed 3 before
