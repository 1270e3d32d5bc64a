"""The etcd3 backend's cache of the scope and the rules that let a cycle skip writes."""
from __future__ import annotations

import threading
import time

import pytest
from pg_ha.dcs.base import Node
from pg_ha.dcs.kvcache import Event, KVCache, LeaderRefresh, leader_refresh, member_write_needed


def loaded(revision: int = 10, **values: Node) -> KVCache:
    cache = KVCache()
    cache.reset({k.replace("__", "/"): v for k, v in values.items()}, revision)
    cache.set_streaming(True)
    return cache


def test_events_move_the_cache_forward() -> None:
    cache = loaded(10, leader=Node("a", 9, 1))
    _, _, stamp = cache.snapshot()
    assert cache.apply([Event("members/b", 11, Node("{}", 11, 2)), Event("leader", 11, None)]) == 2
    nodes, revision, new_stamp = cache.snapshot()
    assert revision == 11 and new_stamp != stamp
    assert nodes == {"members/b": Node("{}", 11, 2)}


def test_events_of_one_revision_all_apply_and_replays_are_skipped() -> None:
    cache = loaded(10)
    # a txn writes two keys at one revision: both events carry it
    assert cache.apply([Event("leader", 12, Node("a", 12, 7)), Event("optime/leader", 12, Node("5", 12))]) == 2
    # after a reconnect from revision 12 etcd replays them: nothing changes, nothing counts
    _, _, stamp = cache.snapshot()
    assert cache.apply([Event("leader", 12, Node("a", 12, 7)), Event("optime/leader", 12, None)]) == 0
    nodes, revision, same = cache.snapshot()
    assert same == stamp and revision == 12 and nodes["optime/leader"].value == "5"
    # and events already contained in the last full read are skipped too
    cache.reset({"leader": Node("b", 20, 8)}, 20)
    assert cache.apply([Event("leader", 15, None)]) == 0
    assert cache.snapshot()[0] == {"leader": Node("b", 20, 8)}


def test_an_older_full_read_does_not_roll_back() -> None:
    cache = loaded(10)
    cache.apply([Event("leader", 14, Node("a", 14, 7))])
    assert not cache.reset({}, 12)
    assert cache.snapshot()[0] == {"leader": Node("a", 14, 7)}
    assert cache.reset({}, 14)  # same revision: the same state
    assert cache.snapshot()[0] == {}


def test_nothing_is_trusted_until_loaded_and_streaming() -> None:
    cache = KVCache()
    assert cache.apply([Event("leader", 3, Node("a", 3))]) == 0  # no base yet
    cache.reset({"leader": Node("a", 3, 1)}, 3)
    assert not cache.streaming and cache.node("leader") is None  # unknown, not "absent"
    cache.set_streaming(True)
    assert cache.node("leader") == Node("a", 3, 1)
    cache.invalidate()  # a watch error: events may have been missed
    assert not cache.loaded and not cache.streaming and cache.node("leader") is None
    cache.set_streaming(True)
    assert not cache.streaming  # streaming needs a base again


def test_wait_for_our_own_write() -> None:
    cache = loaded(10)
    assert cache.wait_for(10, 0)
    started = time.monotonic()
    assert not cache.wait_for(11, 0.1)  # not delivered
    assert time.monotonic() - started >= 0.09
    threading.Timer(0.05, lambda: cache.apply([Event("members/a", 11, Node("{}", 11, 1))])).start()
    started = time.monotonic()
    assert cache.wait_for(11, 5) and time.monotonic() - started < 2
    cache.set_streaming(False)
    assert not cache.wait_for(11, 5)  # a cache that does not stream cannot be waited on


@pytest.mark.parametrize("cached, value, lease, needed", [
    (None, "{}", 7, True),  # absent, or unknown (cache not streaming)
    (Node("{}", 3, 7), "{}", 7, False),  # same value on our live lease: the keepalive keeps it
    (Node("{}", 3, 7), '{"a":1}', 7, True),  # content changed
    (Node("{}", 3, 6), "{}", 7, True),  # bound to an older lease (new grant, ttl change)
    (Node("{}", 3, None), "{}", 7, True),  # written without a lease (by someone else)
])
def test_member_write_needed(cached: Node | None, value: str, lease: int, needed: bool) -> None:
    assert member_write_needed(cached, value, lease) is needed


NONE = LeaderRefresh(False, False, False)


@pytest.mark.parametrize("leader, optime, last_lsn, streaming, expected", [
    # the steady state of an idle leader: the keepalive was the whole refresh
    (Node("me", 5, 7), Node("100", 6), 100, True, NONE),
    (Node("me", 5, 7), None, None, True, NONE),
    # the optime moved: one txn, the lock checked by its value
    (Node("me", 5, 7), Node("100", 6), 200, True, LeaderRefresh(True, False, True)),
    (Node("me", 5, 7), None, 200, True, LeaderRefresh(True, False, True)),
    # bound to another lease (ttl changed, lease re-granted): re-attach under the value check
    (Node("me", 5, 6), Node("100", 6), 100, True, LeaderRefresh(True, True, False)),
    # the cache says it is gone or someone else's: the compare-and-set decides, never the cache
    (None, Node("100", 6), 100, True, LeaderRefresh(True, True, True)),
    (Node("other", 5, 9), Node("100", 6), 100, True, LeaderRefresh(True, True, True)),
    # a cache that does not stream is never trusted
    (Node("me", 5, 7), Node("100", 6), 100, False, LeaderRefresh(True, True, True)),
    (Node("me", 5, 7), Node("100", 6), None, False, LeaderRefresh(True, True, False)),
])
def test_leader_refresh(leader: Node | None, optime: Node | None, last_lsn: int | None, streaming: bool,
                        expected: LeaderRefresh) -> None:
    assert leader_refresh(leader, optime, "me", 7, last_lsn, streaming) == expected
