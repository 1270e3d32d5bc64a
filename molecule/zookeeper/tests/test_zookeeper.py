# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZooKeeper as the DCS: the ensemble, the cluster on it, a switchover and a failover.
The tests run in file order; the last ones move the leader."""
import json
import time
import uuid

import pytest
from conftest import (
    HOSTS,
    NOFAILOVER,
    api_get,
    four_letter,
    leader_of,
    members,
    pg_ha_config,
    psql,
    settled,
    wait_for,
    wait_primary_port,
    zk_mode,
)

testinfra_hosts = ["node1"]
TTL = 15  # pg_ha_ttl of the scenario


def test_ensemble_has_one_leader_and_two_followers(host):
    def modes():
        now = sorted(zk_mode(host, address) or "none" for address in HOSTS.values())
        return now if now == ["follower", "follower", "leader"] else None

    wait_for(modes, 30, what="a ZooKeeper leader and two followers")
    for address in HOSTS.values():
        assert four_letter(host, address, "ruok") == "imok"


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_zookeeper_runs_under_its_unit_as_zookeeper(nodes, name):
    node = nodes[name]
    service = node.service("zookeeper")
    assert service.is_enabled
    assert service.is_running
    pid = node.check_output("systemctl show -p MainPID --value zookeeper")
    assert node.check_output("ps -o user= -p %s", pid) == "zookeeper"
    assert "QuorumPeerMain" in node.check_output("cat /proc/%s/cmdline | tr '\\0' ' '", pid)
    # myid is the host's position in the group zookeeper
    assert node.file("/var/lib/zookeeper/myid").content_string.strip() == str(sorted(HOSTS).index(name) + 1)
    cfg = node.file("/etc/zookeeper/conf/zoo.cfg").content_string
    for i, address in enumerate(HOSTS[n] for n in sorted(HOSTS)):
        assert f"server.{i + 1}={address}:2888:3888" in cfg.splitlines()


def test_config_names_zookeeper_as_the_dcs(host):
    config = pg_ha_config(host)
    assert config["zookeeper"]["hosts"] == [f"{HOSTS[n]}:2181" for n in sorted(HOSTS)]
    assert "etcd3" not in config and "etcd" not in config
    assert host.package("python3-kazoo").is_installed


def test_one_leader_two_streaming_replicas(host):
    now = wait_for(lambda: settled(host), 60, what="one leader and two streaming replicas")
    assert {m["name"] for m in now} == set(HOSTS)
    assert next(m for m in now if m["name"] == NOFAILOVER)["role"] != "leader"


def test_leader_and_members_are_ephemeral_znodes(host):
    """Patroni's layout: /service/molecule/leader holds the leader's name, in its session."""
    script = (
        "import json\n"
        "from kazoo.client import KazooClient\n"
        "zk=KazooClient('127.0.0.1:2181',timeout=10); zk.start(15)\n"
        "data,stat=zk.get('/service/molecule/leader')\n"
        "names=zk.get_children('/service/molecule/members')\n"
        "members={m: zk.get('/service/molecule/members/'+m)[1].ephemeralOwner for m in names}\n"
        "print(json.dumps({'leader': data.decode(), 'owner': stat.ephemeralOwner, 'members': members}))\n"
        "zk.stop(); zk.close()\n"
    )
    got = json.loads(host.check_output("python3 -c %s", script))
    assert got["leader"] == leader_of(host)
    assert got["owner"] != 0
    assert sorted(got["members"]) == sorted(HOSTS)
    assert all(owner != 0 for owner in got["members"].values())


@pytest.mark.parametrize("user", ["root", "postgres"])
def test_pg_hactl_list(host, user):
    with host.sudo(user):
        out = host.check_output("pg_hactl list")
    for name in HOSTS:
        assert name in out
    assert "Leader" in out


def test_switchover_with_pg_hactl(host):
    wait_for(lambda: settled(host), 60, what="a settled cluster before the switchover")
    old = leader_of(host)
    new = next(n for n in sorted(HOSTS) if n not in (old, NOFAILOVER))
    host.check_output("pg_hactl switchover --leader %s --candidate %s --force", old, new)
    now = wait_for(lambda: leader_of(host) == new and settled(host), 90,
                   what=f"{new} leading after the switchover, {old} streaming")
    assert {m["name"] for m in now} == set(HOSTS)

    wait_primary_port(host, HOSTS[new])
    out = psql(host, 5000, "create table if not exists zk_switchover (x int)")
    assert out.rc == 0, out.stderr


def test_failover_when_the_leader_is_killed(host, nodes):
    wait_for(lambda: settled(host), 60, what="a settled cluster before the failover")
    old = leader_of(host)
    new = next(n for n in sorted(HOSTS) if n not in (old, NOFAILOVER))
    witness = nodes[new]
    # kill -9 of pg_ha and PostgreSQL (every process of the unit), then keep systemd from
    # starting it again: the old leader's ZooKeeper session expires after the ttl.
    nodes[old].check_output("systemctl kill -s KILL pg_ha.service && systemctl stop pg_ha.service")
    killed = time.monotonic()

    def new_leader():
        now = {m["name"]: m for m in members(witness)}
        return now.get(new, {}).get("role") == "leader" and now[new]["state"] == "running"

    wait_for(new_leader, TTL + 30, what=f"{new} leading after {old} was killed")
    took = time.monotonic() - killed
    assert took < TTL + 15, f"failover took {took:.1f} s with ttl {TTL}"
    token = uuid.uuid4().hex

    def written():
        out = psql(witness, 5000, f"create table if not exists zk_failover (token text); "
                                  f"insert into zk_failover values ('{token}'); select inet_server_addr()")
        return out.rc == 0 and out.stdout.strip() == HOSTS[new]

    wait_for(written, 30, what="a write through HAProxy on the new leader")

    # The old leader, started again, rejoins as a streaming replica.
    nodes[old].check_output("systemctl start pg_ha.service")

    def rejoined():
        now = {m["name"]: m for m in members(witness)}
        return now.get(old, {}).get("state") == "streaming" and now[new]["role"] == "leader"

    wait_for(rejoined, 120, what=f"{old} streaming from {new}")
    assert api_get(nodes[old], "/replica")[0] == 200
