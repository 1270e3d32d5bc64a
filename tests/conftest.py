import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "module_utils"))


import pytest  # noqa: E402
from pg_ha.node.lease_guard import LeaseGuard  # noqa: E402


@pytest.fixture(autouse=True)
def _no_lease_guard_outlives_its_test(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every Executor starts a lease guard thread once it takes the lock; a test that builds one
    in-process (a daemon started as a subprocess stops its own) must not leave the thread
    running into the next test: stop and join each guard the test made."""
    made: list[LeaseGuard] = []
    original = LeaseGuard.__init__

    def tracked(self: LeaseGuard, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(LeaseGuard, "__init__", tracked)
    yield
    for guard in made:
        guard.stop()
    alive = [g for g in made if g._thread is not None and g._thread.is_alive()]
    assert not alive, f"{len(alive)} lease guard thread(s) did not stop"
