# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster as a whole, checked from node1 and node3."""
import uuid

from conftest import HOSTS, NOFAILOVER, api_get, pg_ha_config, psql, wait_for, wait_primary_port

testinfra_hosts = ["node1"]


def members(host):
    status, cluster = api_get(host, "/cluster")
    assert status == 200, cluster
    return cluster["members"]


def test_one_leader_two_streaming_replicas(host):
    def settled():
        now = members(host)
        leaders = [m for m in now if m["role"] == "leader" and m["state"] == "running"]
        streaming = [m for m in now if m["role"] in ("replica", "sync_standby") and m["state"] == "streaming"]
        return now if len(leaders) == 1 and len(streaming) == 2 else None

    now = wait_for(settled, 60, what="one leader and two streaming replicas")
    assert {m["name"] for m in now} == set(HOSTS)


def test_nofailover_member_is_not_leader(host):
    now = {m["name"]: m for m in members(host)}
    assert now[NOFAILOVER]["role"] != "leader"
    assert now[NOFAILOVER].get("tags", {}).get("nofailover") is True


def test_write_through_primary_port_read_through_replica_port(host):
    leader = next(m for m in members(host) if m["role"] == "leader")
    # Port 5000 reaches the leader (the side effect switched over just before: allow HAProxy its checks).
    wait_primary_port(host, leader["host"])
    token = uuid.uuid4().hex
    out = psql(host, 5000, "create table if not exists molecule_probe (token text); "
                           f"insert into molecule_probe values ('{token}')")
    assert out.rc == 0, out.stderr

    # Port 5001 reaches a replica, which has the row once it has replayed it.
    def replicated():
        got = psql(host, 5001, f"select pg_is_in_recovery(), count(*) from molecule_probe where token = '{token}'")
        return got.rc == 0 and got.stdout.strip() == "t|1"

    wait_for(replicated, 30, what="the row readable through the replica port")


def test_health_endpoints_for_haproxy(host):
    leader = next(m["name"] for m in members(host) if m["role"] == "leader")
    assert api_get(host, "/primary")[0] == (200 if leader == "node1" else 503)
    assert api_get(host, "/replica")[0] == (503 if leader == "node1" else 200)


def test_feature_variables_reach_the_cluster(host):
    """pg_ha_check_timeline, pg_ha_slots and pg_ha_callbacks from the inventory: in the config,
    a permanent slot on the leader, and the on_start callback run (its line in the journal)."""
    dcs = pg_ha_config(host)["bootstrap"]["dcs"]
    assert dcs["check_timeline"] is True and dcs["slots"] == {"molecule_archiver": {"type": "physical"}}

    def slot():
        out = psql(host, 5000, "select slot_type from pg_replication_slots where slot_name = 'molecule_archiver'")
        return out.rc == 0 and out.stdout.strip() == "physical"

    wait_for(slot, 30, what="the permanent slot molecule_archiver on the leader")
    journal = host.check_output("journalctl -t pg_ha_callback --no-pager -o cat")
    assert "on_start" in journal and "molecule" in journal
