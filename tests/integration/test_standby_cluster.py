"""Standby cluster: cluster B (standby_cluster -> cluster A's leader) has a standby leader that
streams from A and replicas that stream from it; a switchover moves the role; a failed standby
leader is replaced by another
standby leader (never a read-write primary); removing standby_cluster promotes B's leader."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.harness.cluster import Member, TestCluster
from tests.harness.common import SYSTEM_PYTHON, wait_for
from tests.harness.etcd import keys as etcd_keys

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SLOT = "b_standby"
RESTORE = "/bin/false %f %p"  # never finds a file: PostgreSQL falls back to streaming
RESTORE_2 = "/bin/false %f %p 2"


def standby_leader(c: TestCluster, exclude: tuple[str, ...] = ()) -> Member | None:
    found = []
    for m in c.members:
        if m.running and m.name not in exclude:
            try:
                if m.api("/standby-leader", timeout=2)[0] == 200:
                    found.append(m)
            except OSError:
                continue
    return found[0] if len(found) == 1 else None


def has_rows(m: Member, expected: int) -> bool:
    try:
        return m.sql("SELECT count(*) FROM from_a")[0][0] == expected
    except Exception:  # noqa: BLE001 - not replicated yet / not accepting connections yet
        return False


def receiver_port(m: Member) -> int | None:
    rows = m.sql("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return rows[0][0] if rows else None


def events(m: Member) -> list[str]:
    path = m.workdir / "events"
    return path.read_text().splitlines() if path.exists() else []


def ctl_list(c: TestCluster) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO / "plugins" / "module_utils"),
           "HOME": str(c.root), "LANG": "C.UTF-8"}
    result = subprocess.run([SYSTEM_PYTHON, "-m", "pg_ha.ctl", "-c", str(c.members[0].config_path), "list"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_standby_cluster_follows_fails_over_and_is_promoted(etcd_server) -> None:
    a = TestCluster(etcd_server.host_port, scope="a", size=3, dynamic={"slots": {SLOT: {"type": "physical"}}})
    b: TestCluster | None = None
    try:
        a.start()
        a_leader = a.wait_healthy(timeout=240)
        a_leader.sql("CREATE TABLE from_a(v text); INSERT INTO from_a VALUES ('before-b')")
        b = TestCluster(etcd_server.host_port, scope="b", size=2, dynamic={"standby_cluster": {
            "host": "127.0.0.1", "port": a_leader.pg_port, "primary_slot_name": SLOT, "restore_command": RESTORE}})
        for m in b.members:
            record = m.workdir / "record.sh"
            record.write_text(f'#!/bin/sh\necho "$@" >> {m.workdir}/events\n')
            record.chmod(0o755)
            m.config["postgresql"]["callbacks"] = {"on_start": str(record), "on_role_change": str(record)}
            m.write_config()
        b.start()
        b_leader = wait_for(lambda: standby_leader(b), 180, "a standby leader in cluster b")
        b_replica = next(m for m in b.members if m is not b_leader)
        wait_for(b_replica.is_streaming_replica, 120, "b's replica to stream from the standby leader")

        a_leader.sql("INSERT INTO from_a VALUES ('while-b-runs')")
        for m in b.members:
            wait_for(lambda m=m: has_rows(m, 2), 60, f"{m.name} to have A's write")
        status = b_leader.status() or {}
        assert status.get("role") == "standby_leader", status
        assert b_leader.sql("SELECT pg_is_in_recovery()") == [(True,)]
        assert receiver_port(b_leader) == a_leader.pg_port, "the standby leader streams from A's leader"
        assert receiver_port(b_replica) == b_leader.pg_port, "b's replica streams from the standby leader"
        assert b_leader.api("/primary")[0] == 503
        assert b_leader.sql("SHOW restore_command") == [(RESTORE,)]
        assert b_replica.sql("SHOW restore_command") == [("",)], "only the standby leader restores"
        assert a_leader.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)) == [(True,)]
        a_sysid = a_leader.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
        assert etcd_keys(etcd_server, "etcd3", "/service/b/")["/service/b/initialize"] == a_sysid
        wait_for(lambda: "on_start standby_leader b" in events(b_leader), 30, "on_start on the standby leader")
        wait_for(lambda: "on_start replica b" in events(b_replica), 30, "on_start on b's replica")
        listing = ctl_list(b)
        assert "Standby Leader" in next(line for line in listing.splitlines() if b_leader.name in line), listing
        with pytest.raises(Exception, match="read-only"):
            b_leader.sql("INSERT INTO from_a VALUES ('must-fail')")

        # a changed standby_cluster setting reaches the running standby leader
        code, body = b_replica.api("/config", method="PATCH",
                                   body={"standby_cluster": {"restore_command": RESTORE_2}})
        assert code == 200 and body["standby_cluster"]["restore_command"] == RESTORE_2, body
        wait_for(lambda: b_leader.sql("SHOW restore_command") == [(RESTORE_2,)], 30, "the new restore_command")
        assert receiver_port(b_leader) == a_leader.pg_port

        # switchover inside the standby cluster: the candidate becomes standby leader, nobody is promoted
        code, text = b_leader.api("/switchover", method="POST",
                                  body={"leader": b_leader.name, "candidate": b_replica.name}, timeout=90)
        assert code == 200, text
        assert standby_leader(b) is b_replica
        wait_for(b_leader.is_streaming_replica, 90, "the former standby leader to stream again")
        wait_for(lambda: receiver_port(b_leader) == b_replica.pg_port, 30, "it to stream from the new standby leader")
        assert receiver_port(b_replica) == a_leader.pg_port
        a_leader.sql("INSERT INTO from_a VALUES ('after-b-switchover')")
        for m in b.members:
            wait_for(lambda m=m: has_rows(m, 3), 60, f"{m.name} to have A's write after the switchover")
        assert not any(m.is_primary() for m in b.members)
        wait_for(lambda: "on_role_change standby_leader b" in events(b_replica), 30, "the candidate's role change")
        wait_for(lambda: "on_role_change replica b" in events(b_leader), 30, "the former standby leader's role change")
        b_leader, b_replica = b_replica, b_leader

        # the standby leader dies: the other member takes the role, still streaming from A
        b_leader.kill9()
        new_leader = wait_for(lambda: standby_leader(b, exclude=(b_leader.name,)), 120,
                              "the other b member to become standby leader")
        assert new_leader is b_replica
        a_leader.sql("INSERT INTO from_a VALUES ('after-b-failover')")
        wait_for(lambda: has_rows(new_leader, 4), 60, "the new standby leader to have A's write")
        wait_for(lambda: receiver_port(new_leader) == a_leader.pg_port, 30, "the new standby leader to stream from A")
        assert new_leader.sql("SELECT pg_is_in_recovery()") == [(True,)]
        assert not any(m.is_primary() for m in b.members if m.running), "nobody in b was promoted"
        assert (new_leader.status() or {}).get("role") == "standby_leader"
        wait_for(lambda: "on_role_change standby_leader b" in events(new_leader), 30, "on_role_change standby_leader")
        wait_for(lambda: new_leader.sql("SHOW restore_command") == [(RESTORE_2,)], 30, "restore_command on the new one")

        # removing standby_cluster from the dynamic config promotes the standby leader
        code, body = new_leader.api("/config", method="PATCH", body={"standby_cluster": None})
        assert code == 200, body
        assert "standby_cluster" not in body
        wait_for(new_leader.is_primary, 60, "b's leader to be promoted")
        new_leader.sql("INSERT INTO from_a VALUES ('written-in-b')")
        assert new_leader.sql("SELECT count(*) FROM from_a") == [(5,)]
        assert (new_leader.status() or {}).get("role") == "primary"
        wait_for(lambda: events(new_leader)[-1:] == ["on_role_change primary b"], 30, "on_role_change primary")
        wait_for(lambda: new_leader.sql("SHOW restore_command") == [("",)], 30, "restore_command gone after promotion")
        assert a_leader.sql("SELECT count(*) FROM from_a") == [(4,)], "A does not see B's own writes"
        assert json.loads(etcd_keys(etcd_server, "etcd3", "/service/b/")["/service/b/config"]).get(
            "standby_cluster") is None
    finally:
        print(a.logs()[-8000:])
        if b is not None:
            print(b.logs()[-20000:])
            b.cleanup()
        a.cleanup()
