"""A permanent logical slot survives a failover at its position (Patroni 4.1 on PG 15):
the replicas keep copies of it (state file copied from the primary, then advanced with
pg_replication_slot_advance to the position the leader publishes in the status key), so a
real logical consumer (pg_recvlogical, test_decoding) reconnecting to the new leader
continues where it confirmed and loses no committed row."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import SUPERUSER_PASSWORD, Member, TestCluster
from tests.harness.common import stop_process, wait_for
from tests.harness.etcd import scope_key

pytestmark = pytest.mark.integration
SCOPE = "lslots"
SLOT = "cdc"
SLOTS = {SLOT: {"type": "logical", "database": "postgres", "plugin": "test_decoding"},
         "archive": None}  # Patroni's shorthand: an empty value is a physical slot
PG_RECVLOGICAL = "/usr/lib/postgresql/15/bin/pg_recvlogical"
ROW = re.compile(r"table public\.cdc_rows: INSERT: id\[integer\]:(\d+)")


@pytest.fixture(scope="module")
def cluster(etcd_server) -> Iterator[TestCluster]:
    c = TestCluster(etcd_server.host_port, scope=SCOPE, size=3, dcs_kind="etcd3",
                    dynamic={"slots": SLOTS, "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                                            "parameters": {"wal_level": "logical",
                                                                           "wal_keep_size": "64MB"}}})
    try:
        c.start()
        yield c
    finally:
        print(c.logs()[-30000:])
        c.cleanup()


class Consumer:
    """pg_recvlogical streaming the slot into a file, confirming every second."""

    def __init__(self, member: Member, out: Path) -> None:
        self.out = out
        env = {**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD}
        self.log = open(out.with_suffix(".log"), "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PG_RECVLOGICAL, "-h", "127.0.0.1", "-p", str(member.pg_port), "-U", "postgres", "-d", "postgres",
             "-S", SLOT, "--start", "--no-loop", "-s", "1", "-F", "1", "-f", str(out)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def ids(self) -> list[int]:
        try:
            text = self.out.read_text()
        except OSError:
            return []
        return [int(m.group(1)) for m in ROW.finditer(text)]

    def stop(self) -> None:
        """SIGINT: pg_recvlogical flushes, confirms what it wrote and exits."""
        stop_process(self.proc, signal.SIGINT, timeout=30)
        self.log.close()


def write_rows(member: Member, first: int, last: int) -> None:
    member.sql("INSERT INTO cdc_rows SELECT g FROM generate_series(%s, %s) g", (first, last))


def slot_lsn(member: Member) -> int | None:
    rows = member.sql("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint FROM pg_replication_slots "
                      "WHERE slot_name = %s AND slot_type = 'logical'", (SLOT,))
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def replayed(member: Member, lsn: int) -> bool:
    rows = member.sql("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint")
    return bool(rows and rows[0][0] is not None and int(rows[0][0]) >= lsn)



def consume_batch(leader: Member, out: Path, first: int, last: int) -> tuple[list[int], int]:
    """Rows first..last written on the leader, received and confirmed by a consumer through the
    permanent logical slot: the ids it got and the slot's confirmed position."""
    consumer = Consumer(leader, out)
    try:
        write_rows(leader, first, last)
        batch = int(leader.sql("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint")[0][0])
        wait_for(lambda: set(range(first, last + 1)) <= set(consumer.ids()), 60,
                 f"the consumer received rows {first}..{last}")
        wait_for(lambda: (slot_lsn(leader) or 0) >= batch, 60, f"the consumer confirmed rows {first}..{last}")
    finally:
        consumer.stop()
    confirmed = slot_lsn(leader)
    assert confirmed is not None and confirmed >= batch
    return consumer.ids(), confirmed

def test_logical_consumer_loses_nothing_across_failover(cluster: TestCluster, etcd_server, tmp_path: Path) -> None:
    leader = cluster.wait_healthy()
    replicas = [m for m in cluster.members if m is not leader]
    wait_for(lambda: slot_lsn(leader) is not None, 60, "the permanent logical slot on the leader")
    leader.sql("CREATE TABLE cdc_rows(id int PRIMARY KEY)")

    # the leader publishes the slot's position; every replica copies the slot and runs
    # with hot_standby_feedback (Patroni enforces it for members with logical slots)
    def published() -> int | None:
        status = json.loads(scope_key(etcd_server, SCOPE, "status") or "{}")
        return (status.get("slots") or {}).get(SLOT)
    wait_for(published, 60, "the slot's position in the status key")
    for m in replicas:
        wait_for(lambda m=m: slot_lsn(m) is not None, 90, f"a copy of the logical slot on {m.name}")
        assert m.sql("SHOW hot_standby_feedback")[0][0] == "on"
        others = {o.name.replace("-", "_") for o in cluster.members if o is not m}
        wait_for(lambda m=m, others=others: {"archive"} | others <= {
            r[0] for r in m.sql("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical'")},
            60, f"the permanent physical slot and the other members' slots on {m.name}")
    status = json.loads(scope_key(etcd_server, SCOPE, "status") or "{}")
    assert set(status.get("retain_slots") or ()) == {m.name.replace("-", "_") for m in cluster.members}, status

    # consume a first batch through the leader
    consumed_before, confirmed = consume_batch(leader, tmp_path / "before.out", 1, 300)

    # more rows the consumer has not seen yet; they must all reach it after the failover
    write_rows(leader, 301, 600)
    end = int(leader.sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0][0])
    for m in replicas:  # no row is lost to asynchronous replication: the replicas have it all
        wait_for(lambda m=m: replayed(m, end), 60, f"{m.name} replayed the writes")
    # each copy is advanced to the published position the consumer confirmed
    for m in replicas:
        wait_for(lambda m=m: (slot_lsn(m) or 0) >= confirmed, 60,
                 f"the copy on {m.name} advanced to the consumer's confirmed position")
        assert (slot_lsn(m) or 0) <= end

    leader.kill9()
    new = cluster.wait_leader(90, exclude=(leader.name,))
    assert slot_lsn(new) is not None, "the new leader kept the logical slot"
    old_slot = leader.name.replace("-", "_")
    wait_for(lambda: old_slot in {r[0] for r in new.sql("SELECT slot_name FROM pg_replication_slots")}, 30,
             "the new leader keeps the killed leader's slot (retain_slots)")
    write_rows(new, 601, 700)

    consumer = Consumer(new, tmp_path / "after.out")  # reconnect through the new leader's port
    try:
        wait_for(lambda: set(range(301, 701)) <= set(consumer.ids()), 90,
                 "the consumer received rows 301..700 from the new leader")
    finally:
        consumer.stop()
    consumed_after = consumer.ids()
    received = set(consumed_before) | set(consumed_after)
    lost = set(range(1, 701)) - received
    duplicates = len(consumed_before) + len(consumed_after) - len(received)
    print(f"rows written 700, consumed before failover {len(consumed_before)}, after {len(consumed_after)}, "
          f"duplicates {duplicates}, lost {len(lost)}")
    assert not lost

    # the old leader comes back as a replica and keeps a copy at the new leader's position
    leader.start()
    wait_for(leader.is_streaming_replica, 120, f"{leader.name} to stream from the new leader")
    position = slot_lsn(new)
    assert position is not None
    wait_for(lambda: (slot_lsn(leader) or 0) >= position, 90, f"{leader.name}'s copy of the slot at the leader's")
    # the new leader's slot was at the consumer's confirmed position: what it had confirmed
    # (the transaction of rows 1..300) is not decoded again
    assert not set(consumed_after) & set(range(1, 301))


def test_logical_consumer_loses_nothing_across_switchover(cluster: TestCluster, tmp_path: Path) -> None:
    """The same through a switchover (the old leader stops cleanly and follows the new one)."""
    leader = cluster.wait_healthy()
    candidate = next(m for m in cluster.members if m is not leader)
    consumed_before, confirmed = consume_batch(leader, tmp_path / "before.out", 1001, 1200)
    write_rows(leader, 1201, 1400)
    wait_for(lambda: (slot_lsn(candidate) or 0) >= confirmed, 60, f"the copy on {candidate.name} advanced")

    code, body = leader.api("/switchover", method="POST", body={"leader": leader.name, "candidate": candidate.name},
                            timeout=90)
    assert code == 200, body
    assert cluster.wait_leader(60).name == candidate.name
    write_rows(candidate, 1401, 1500)
    consumer = Consumer(candidate, tmp_path / "after.out")
    try:
        wait_for(lambda: set(range(1201, 1501)) <= set(consumer.ids()), 90,
                 "the consumer received rows 1201..1500 from the new leader")
    finally:
        consumer.stop()
    consumed_after = consumer.ids()
    lost = set(range(1001, 1501)) - set(consumed_before) - set(consumed_after)
    # (the first consumer may also get rows of the previous test that were never confirmed)
    print(f"switchover: rows written 500, consumed before {sum(1 for i in consumed_before if i > 1000)}, "
          f"after {len(consumed_after)}, lost {len(lost)}")
    assert not lost
    assert not set(consumed_after) & set(range(1001, 1201))
