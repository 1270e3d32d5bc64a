"""Quorum commit planner: the safety check, the transitions (each step keeps every
acknowledging set overlapping every electing set), the sync key and the race rule."""
from __future__ import annotations

import itertools

import pytest
from pg_ha.core import quorum
from pg_ha.core.model import Cluster, Member, SyncState
from pg_ha.core.quorum import Commit, Vote

ME = "pg0"


def fs(*names: str) -> frozenset[str]:
    return frozenset(names)


def cluster(sync: SyncState | None, members: tuple[str, ...] = ("pg0", "pg1", "pg2", "pg3"),
            nosync: tuple[str, ...] = (), tags: dict[str, dict[str, object]] | None = None) -> Cluster:
    return Cluster(initialize="1", config=None, leader=None, last_lsn=0, sync=sync,
                   members=tuple(Member(m, 1, {"tags": {"nosync": m in nosync, **(tags or {}).get(m, {})}})
                                 for m in members))


def streaming(*names: str) -> list[dict[str, object]]:
    return [{"application_name": n, "state": "streaming", "sync_state": "quorum", "flush_lsn": 1} for n in names]


def brute_safe(commit: Commit, vote: Vote) -> bool:
    """Enumerate: every acknowledging set meets every electing set."""
    if commit.block_all or commit.numsync <= 0 or commit.numsync > len(commit.names):
        return True
    if not vote.voters:
        return False
    electors = len(vote.voters) - vote.k + 1
    if electors > len(vote.voters):
        return True
    return all(set(ack) & set(elect)
               for ack in itertools.combinations(sorted(commit.names), commit.numsync)
               for elect in itertools.combinations(sorted(vote.voters), max(electors, 0)))


SETS = [fs(), fs("a"), fs("b"), fs("a", "b"), fs("a", "c"), fs("a", "b", "c")]


@pytest.mark.parametrize("names, n, voters, k", [
    (names, n, voters, k) for names in SETS for n in range(len(names) + 1)
    for voters in SETS for k in range(len(voters) + 1)])
def test_safe_matches_enumeration(names: frozenset[str], n: int, voters: frozenset[str], k: int) -> None:
    assert quorum.safe(Commit(n, names), Vote(k, voters)) == brute_safe(Commit(n, names), Vote(k, voters))


def run(sync: SyncState | None, pg: Commit | None, active: tuple[str, ...], count: int = 1,
        strict: bool = False, rounds: int = 6) -> tuple[Commit, Vote, list[tuple[str, str]]]:
    """Apply plans like the leader does (one key write per cycle) until nothing changes,
    checking the invariant after every single step."""
    trace: list[tuple[str, str]] = []
    commit = pg or Commit(0, frozenset())
    vote = quorum.vote_of(sync, ME) or quorum.NO_VOTE
    version = sync.version if sync else 0
    for _ in range(rounds):
        plan = quorum.plan(cluster(sync), ME, streaming(*active), commit, count, strict)
        if not plan.steps:
            return commit, vote, trace
        wrote = False
        for step in plan.steps:
            if step.target == "dcs":
                if wrote:
                    break
                assert step.vote is not None
                vote, wrote = step.vote, True
                value = quorum.sync_key_value(ME, vote)
                version += 1
                sync = SyncState(version, ME, tuple(sorted(vote.voters)), value["quorum"])
                trace.append(("dcs", f"{value['quorum']}:{value['sync_standby']}"))
            else:
                assert step.commit is not None
                commit = step.commit
                trace.append(("pg", quorum.standby_names_value(commit)))
            assert quorum.safe(commit, vote), trace
    raise AssertionError(f"no steady state: {trace}")


def key(voters: tuple[str, ...], q: int, leader: str = ME) -> SyncState:
    return SyncState(7, leader, voters, q)


def test_fresh_leader_grows_dcs_first_then_postgresql() -> None:
    commit, vote, trace = run(key((), 0), Commit(0, fs()), ("pg1", "pg2"))
    assert trace == [("dcs", "1:pg1,pg2"), ("pg", 'ANY 1 ("pg1","pg2")')]
    assert commit == Commit(1, fs("pg1", "pg2")) and vote == Vote(1, fs("pg1", "pg2"))


def test_adding_a_voter_widens_the_key_before_postgresql() -> None:
    _, vote, trace = run(key(("pg1", "pg2"), 1), Commit(1, fs("pg1", "pg2")), ("pg1", "pg2", "pg3"))
    assert trace == [("dcs", "2:pg1,pg2,pg3"), ("pg", 'ANY 1 ("pg1","pg2","pg3")')]
    assert vote.quorum == 2


def test_removing_a_voter_changes_postgresql_first() -> None:
    _, _, trace = run(key(("pg1", "pg2"), 1), Commit(1, fs("pg1", "pg2")), ("pg1",))
    assert trace == [("pg", 'ANY 1 ("pg1")'), ("dcs", "0:pg1")]


def test_raising_the_count_changes_postgresql_first() -> None:
    _, vote, trace = run(key(("pg1", "pg2", "pg3"), 2), Commit(1, fs("pg1", "pg2", "pg3")),
                         ("pg1", "pg2", "pg3"), count=2)
    assert trace == [("pg", 'ANY 2 ("pg1","pg2","pg3")'), ("dcs", "1:pg1,pg2,pg3")]
    assert vote == Vote(2, fs("pg1", "pg2", "pg3"))


def test_lowering_the_count_changes_the_key_first() -> None:
    _, _, trace = run(key(("pg1", "pg2"), 0), Commit(2, fs("pg1", "pg2")), ("pg1",), count=1)
    assert trace[0] == ("dcs", "1:pg1,pg2")  # accept 2 electors before PostgreSQL waits for 1
    assert trace[1:] == [("pg", 'ANY 1 ("pg1")'), ("dcs", "0:pg1")]


def test_no_standby_left_non_strict_and_strict() -> None:
    commit, vote, trace = run(key(("pg1",), 0), Commit(1, fs("pg1")), ())
    assert trace == [("pg", ""), ("dcs", "0:None")] and vote == quorum.NO_VOTE
    commit, _, trace = run(key(("pg1",), 0), Commit(1, fs("pg1")), (), strict=True)
    assert commit.block_all and trace[0] == ("pg", "*")


def test_nosync_members_are_never_voters() -> None:
    plan = quorum.plan(cluster(key((), 0), nosync=("pg2",)), ME, streaming("pg1", "pg2"), Commit(0, fs()), 1, False)
    assert plan.wanted == Commit(1, fs("pg1"))


def test_members_that_may_not_promote_are_never_voters() -> None:
    tags = {"pg2": {"nofailover": True}, "pg3": {"failover_priority": 0}}
    plan = quorum.plan(cluster(key((), 0), tags=tags), ME, streaming("pg1", "pg2", "pg3"), Commit(0, fs()), 1, False)
    assert plan.wanted == Commit(1, fs("pg1"))


def test_key_of_another_leader_is_claimed_first() -> None:
    plan = quorum.plan(cluster(key(("pg0", "pg2"), 1, leader="pg1")), ME, streaming("pg1"), None, 1, False)
    assert plan.steps[0] == quorum.Step("dcs", vote=quorum.NO_VOTE)


def test_steady_state_plans_nothing() -> None:
    plan = quorum.plan(cluster(key(("pg1", "pg2"), 1)), ME, streaming("pg1", "pg2"), Commit(1, fs("pg1", "pg2")), 1,
                       False)
    assert plan.steps == ()


@pytest.mark.parametrize("start_voters, start_q, start_n, start_names, active, count", [
    (voters, q, n, names, active, count)
    for voters in [(), ("pg1",), ("pg1", "pg2"), ("pg1", "pg2", "pg3")]
    for q in range(len(voters) + 1)
    for names in [voters]
    for n in range(len(names) + 1)
    for active in [(), ("pg1",), ("pg2", "pg3"), ("pg1", "pg2", "pg3")]
    for count in (1, 2, 3)
    if quorum.safe(Commit(n, frozenset(names)), Vote(len(voters) - q, frozenset(voters)))])
def test_every_safe_start_reaches_the_wanted_state_safely(start_voters: tuple[str, ...], start_q: int,
                                                         start_n: int, start_names: tuple[str, ...],
                                                         active: tuple[str, ...], count: int) -> None:
    commit, vote, _ = run(key(start_voters, start_q), Commit(start_n, frozenset(start_names)), active, count)
    want_commit, want_vote = quorum.wanted_state(active, count, False)
    assert (commit, vote) == (want_commit, want_vote)


def test_sync_key_value_and_standby_names() -> None:
    vote = Vote(1, fs("pg2", "pg1"))
    assert quorum.sync_key_value("pg0", vote) == {"leader": "pg0", "sync_standby": "pg1,pg2", "quorum": 1}
    assert quorum.standby_names_value(Commit(1, fs('a"b', "c"))) == 'ANY 1 ("a""b","c")'
    assert SyncState.from_value(3, '{"leader":"pg0","sync_standby":"pg1,pg2","quorum":1}') == \
        SyncState(3, "pg0", ("pg1", "pg2"), 1)


@pytest.mark.parametrize("sync, me, reached, allowed", [
    (None, "pg1", [], True),                                      # key not written: usual rules
    (SyncState(1, "pg0", (), 0), "pg1", [], True),                 # no voter: no commit waited
    (SyncState(1, "pg0", ("pg1", "pg2"), 1), "pg1", ["pg2"], True),   # 2 of 2 voters incl. me
    (SyncState(1, "pg0", ("pg1", "pg2"), 1), "pg1", [], False),       # the other voter unseen
    (SyncState(1, "pg0", ("pg1", "pg2"), 0), "pg1", [], True),        # ANY 2: every voter has it
    (SyncState(1, "pg0", ("pg1", "pg2"), 1), "pg3", ["pg1"], False),  # non-voter: me does not count
    (SyncState(1, "pg0", ("pg1", "pg2"), 1), "pg3", ["pg1", "pg2"], True),
    (SyncState(1, "pg1", ("pg2",), 0), "pg1", [], True),              # the former leader itself
])
def test_race_refusal(sync: SyncState | None, me: str, reached: list[str], allowed: bool) -> None:
    assert (quorum.race_refusal(sync, me, reached) is None) is allowed


@pytest.mark.parametrize("sync, me, expected", [
    (None, "pg1", None),
    (SyncState(1, "pg0", (), 0), "pg1", None),
    # ANY 1 of pg1, pg2 under pg0: pg1 wins; pg2 or the old leader must ack, both are voters
    (SyncState(1, "pg0", ("pg1", "pg2"), 1), "pg1", (1, {"pg0", "pg2"})),
    # ANY 2 of 3: one more acknowledger than the winner left behind
    (SyncState(1, "pg0", ("pg1", "pg2", "pg3"), 1), "pg1", (2, {"pg0", "pg2", "pg3"})),
    # a non-voter won with quorum + 1 votes: it does not count, the others need k + 1
    (SyncState(1, "pg0", ("pg1", "pg2"), 1), "pg3", (2, {"pg0", "pg1", "pg2"})),
    # the former leader takes over again
    (SyncState(1, "pg1", ("pg2",), 0), "pg1", (1, {"pg2"})),
])
def test_promotion_state(sync: SyncState | None, me: str, expected: tuple[int, set[str]] | None) -> None:
    result = quorum.promotion_state(sync, me)
    if expected is None:
        assert result is None
        return
    assert result is not None
    commit, vote = result
    assert (commit.numsync, set(commit.names)) == expected and vote == Vote(commit.numsync, commit.names)
    assert quorum.safe(commit, vote)


@pytest.mark.parametrize("voters, q", [(v, q) for v in [("a",), ("a", "b"), ("a", "b", "c")]
                                       for q in range(len(v))])
def test_promotion_keeps_every_old_commit_reachable(voters: tuple[str, ...], q: int) -> None:
    """For every way the old commits may have been acknowledged (on L and k voters) and every
    winner of the race, any electing set under the handed-over vote holds each commit."""
    k = len(voters) - q
    for acked in itertools.combinations(voters, k):
        holders = set(acked) | {"L"}
        for me in voters:
            if me not in holders:
                continue  # a winner reached q + 1 voters incl. itself and was the most advanced
            handed = quorum.promotion_state(SyncState(1, "L", voters, q), me)
            assert handed is not None
            _, vote = handed
            electors = len(vote.voters) - vote.k + 1
            for elect in itertools.combinations(sorted(vote.voters), electors):
                assert holders & set(elect), (voters, q, acked, me, elect)
