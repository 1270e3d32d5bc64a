# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quorum commit (``synchronous_mode: quorum``), planned purely.

Two records describe the state, both "ANY n of a set":

* PostgreSQL (``Commit``): ``synchronous_standby_names = 'ANY n ("a","b",...)'``: a commit is
  acknowledged once ``n`` of the listed standbys flushed it.
* the DCS ``sync`` key (``Vote``): ``sync_standby`` lists the voters V and ``quorum`` q says
  how many *other* voters a candidate must reach in the leader race (Patroni 4's layout:
  ``q = |V| - k`` where ``k`` is the number of voters a commit waits for).

A candidate may promote when it reaches ``q + 1 = |V| - k + 1`` voters counting itself; any
such set overlaps every set of ``k`` voters that acknowledged a commit, so the highest WAL
position among them has every acknowledged commit. The invariant kept at every moment is
that each set of standbys that can acknowledge a commit under the PostgreSQL record meets
each set of voters that can elect a leader under the DCS record (``safe``). The planner moves
from the current records to the wanted ones through steps that each keep it: it widens the
DCS record first (more voters, fewer needed acknowledgements counted), then changes
PostgreSQL, then narrows the DCS record.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Cluster, SyncState
from .sync import sync_key_value as _key_value


@dataclass(frozen=True)
class Commit:
    """What PostgreSQL waits for: ANY ``numsync`` of ``names``; ``block_all``: '*' (strict,
    no standby: no commit is acknowledged at all)."""

    numsync: int
    names: frozenset[str]
    block_all: bool = False


@dataclass(frozen=True)
class Vote:
    """What the sync key says: voters and k = the acknowledgements a commit waited for."""

    k: int
    voters: frozenset[str]

    @property
    def quorum(self) -> int:  # the DCS field: other voters a candidate must reach
        return len(self.voters) - self.k


@dataclass(frozen=True)
class Step:
    target: str           # "pg" or "dcs"
    commit: Commit | None = None
    vote: Vote | None = None


@dataclass(frozen=True)
class QuorumPlan:
    steps: tuple[Step, ...]  # apply in order; stop at the first that fails
    wanted: Commit


NO_VOTE = Vote(0, frozenset())


def safe(commit: Commit, vote: Vote) -> bool:
    """Every set of ``numsync`` standbys that acknowledges a commit meets every set of
    ``|V| - k + 1`` voters that may elect a leader. A commit that waits for nobody
    (numsync 0, non-strict without standbys) protects nothing and is accepted, as in
    Patroni's non-strict mode; '*' acknowledges nothing and is always safe."""
    if commit.block_all or commit.numsync <= 0:
        return True
    if commit.numsync > len(commit.names):
        return True  # commits can never be acknowledged
    if not vote.voters:
        return False  # anybody may be elected, with or without the acknowledged commits
    electors = len(vote.voters) - vote.k + 1
    if electors > len(vote.voters):
        return True  # k = 0 with voters: nobody can be elected
    # the electing set avoids acknowledging standbys as far as it can: it takes the voters
    # outside the commit set first; the acknowledgers are the commit-set members left out
    outside = len(vote.voters - commit.names)
    forced_inside = max(0, electors - outside)
    return len(commit.names) - forced_inside < commit.numsync


def wanted_state(active: Sequence[str], count: int, strict: bool) -> tuple[Commit, Vote]:
    names = frozenset(active)
    n = min(max(count, 1), len(names))
    if not names:
        return Commit(0, frozenset(), block_all=strict), NO_VOTE
    return Commit(n, names), Vote(n, names)


def vote_of(sync: SyncState | None, me: str) -> Vote | None:
    """The DCS record as the leader ``me`` sees it; None when the key is not ours."""
    if sync is None or sync.leader != me:
        return None
    voters = frozenset(sync.sync_standby)
    quorum = sync.quorum if sync.quorum is not None else 0
    return Vote(max(0, len(voters) - quorum), voters)


def active_standbys(cluster: Cluster, me: str, replication: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Members streaming from us that may vote, the higher sync_priority first, then by name:
    not ``nosync`` (nor sync_priority <= 0), and not
    ``nofailover`` (or failover_priority 0): the race skips members that may not promote, so
    a commit acknowledged only by one of them could be lost."""
    streaming = {row.get("application_name") for row in replication if row.get("state") == "streaming"}
    voters = [m for m in cluster.members if m.name != me and m.name in streaming and not m.nosync and not m.nofailover]
    return tuple(m.name for m in sorted(voters, key=lambda m: (-m.sync_priority, m.name)))


def plan(cluster: Cluster, me: str, replication: Sequence[Mapping[str, Any]], current: Commit | None,
         count: int, strict: bool) -> QuorumPlan:
    """The steps that take PostgreSQL and the sync key to the wanted state, each safe."""
    active = active_standbys(cluster, me, replication)
    want_commit, want_vote = wanted_state(active, count, strict)
    pg = current if current is not None else Commit(0, frozenset())
    dcs = vote_of(cluster.sync, me)
    steps: list[Step] = []
    if dcs is None:
        # the key is not ours yet: claim it with no voter (safe only while commits wait for nobody)
        first = NO_VOTE if safe(pg, NO_VOTE) else Vote(pg.numsync, pg.names)
        steps.append(Step("dcs", vote=first))
        dcs = first
    if pg != want_commit and safe(want_commit, dcs):
        steps.append(Step("pg", commit=want_commit))
        pg = want_commit
    elif pg != want_commit:
        wide = Vote(min(dcs.k, want_vote.k) if dcs.voters else want_vote.k, dcs.voters | want_vote.voters)
        if safe(pg, wide) and safe(want_commit, wide):
            steps.append(Step("dcs", vote=wide))
            steps.append(Step("pg", commit=want_commit))
            dcs, pg = wide, want_commit
    if dcs != want_vote and pg == want_commit and safe(pg, want_vote):
        steps.append(Step("dcs", vote=want_vote))
    return QuorumPlan(tuple(steps), want_commit)


def describe(commit: Commit) -> str:
    if commit.block_all:
        return "commits wait for any standby (none available, strict)"
    if commit.numsync == 0:
        return "commits wait for no standby"
    return f"commits wait for {commit.numsync} of {', '.join(sorted(commit.names))}"


def describe_vote(vote: Vote) -> str:
    if not vote.voters:
        return "no voter"
    return f"{vote.quorum + 1} of the voters {', '.join(sorted(vote.voters))}"


def standby_names_value(commit: Commit) -> str:
    if commit.block_all:
        return "*"
    if commit.numsync <= 0 or not commit.names:
        return ""
    listed = ",".join('"' + n.replace('"', '""') + '"' for n in sorted(commit.names))
    return f"ANY {commit.numsync} ({listed})"


def sync_key_value(leader: str, vote: Vote) -> dict[str, Any]:
    return _key_value(leader, tuple(vote.voters), vote.quorum)


def promotion_state(sync: SyncState | None, me: str) -> tuple[Commit, Vote] | None:
    """What a winner of the quorum race keeps while it promotes, or None to start afresh.

    Every commit the former leader L acknowledged is on L and on k = |V| - q voters. The new
    leader hands the vote on to V' = V - {me} + {L}: each such commit is on k' = k - 1 + 1 of
    them (k + 1 when I was not a voter, as I do not count any more), and PostgreSQL waits for
    ANY k' of V' too, so a later race again needs a voter with every acknowledged commit; the
    planner then moves to the wanted state as replicas stream from the new leader."""
    if sync is None or not sync.sync_standby:
        return None
    voters = set(sync.sync_standby)
    k = len(voters) - (sync.quorum if sync.quorum is not None else 0)
    if me in voters:
        voters.discard(me)
    else:
        k += 1
    if sync.leader and sync.leader != me:
        voters.add(sync.leader)
    k = min(max(k, 1), len(voters))
    if not voters:
        return None
    names = frozenset(voters)
    return Commit(k, names), Vote(k, names)


def race_refusal(sync: SyncState | None, me: str, reached: Iterable[str]) -> str | None:
    """Quorum leader race: None when ``me`` may take part, else why not. ``reached``: the
    other members that answered this cycle and run as replicas."""
    if sync is None or sync.leader == me or not sync.sync_standby:
        return None  # no commit ever waited for a voter / we are the former leader
    voters = set(sync.sync_standby)
    quorum = sync.quorum if sync.quorum is not None else 0
    needed = quorum + 1
    seen = (set(reached) & voters) | ({me} & voters)
    if len(seen) >= needed:
        return None
    return (f"quorum commit: reached {len(seen)} of the voters {', '.join(sorted(voters))}, "
            f"{needed} needed to be sure to see every acknowledged commit")
