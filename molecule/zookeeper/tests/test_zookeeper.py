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
    PG_HA_ZK_TLS,
    ZK_PORT,
    ZK_TLS,
    api_get,
    four_letter,
    kazoo_script,
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
    cfg = node.file("/etc/zookeeper/conf/zoo.cfg").content_string.splitlines()
    for i, address in enumerate(HOSTS[n] for n in sorted(HOSTS)):
        assert f"server.{i + 1}={address}:2888:3888" in cfg
    for line in (f"secureClientPort={ZK_PORT}", "ssl.clientAuth=need", "sslQuorum=true",
                 "X509AuthenticationProvider.superUser=CN=zookeeper-superuser"):
        assert line in cfg
    assert not [line for line in cfg if line.startswith("clientPort=")]
    pem = node.file(f"{ZK_TLS}/server.pem")
    assert (pem.user, pem.mode) == ("zookeeper", 0o600)


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_zookeeper_serves_only_tls_clients_with_a_certificate(host, name):
    """No plain client port; a TLS client without a certificate is refused the handshake."""
    address = HOSTS[name]
    plain = host.run("python3 -c %s", f"import socket; socket.create_connection(('{address}', 2181), timeout=3)")
    assert plain.rc != 0 and "refused" in plain.stderr.lower(), plain.stderr
    no_cert = host.run("python3 -c %s", (
        "import socket,ssl\n"
        f"c=ssl.create_default_context(cafile='{ZK_TLS}/ca.crt')\n"
        f"s=c.wrap_socket(socket.create_connection(('{address}',{ZK_PORT}),timeout=3),server_hostname='{address}')\n"
        "s.sendall(b'ruok'); assert s.recv(10) == b'imok'\n"))
    assert no_cert.rc != 0, "a TLS client without a certificate was served"


def test_config_names_zookeeper_as_the_dcs(host):
    config = pg_ha_config(host)
    assert config["zookeeper"] == {
        "hosts": [f"{HOSTS[n]}:{ZK_PORT}" for n in sorted(HOSTS)], "use_ssl": True,
        "cacert": f"{PG_HA_ZK_TLS}/ca.crt", "cert": f"{PG_HA_ZK_TLS}/client.crt", "key": f"{PG_HA_ZK_TLS}/client.key",
        "set_acls": {"CN=pg_ha": ["ALL"]}}
    assert "etcd3" not in config and "etcd" not in config
    assert host.package("python3-kazoo").is_installed
    key = host.file(f"{PG_HA_ZK_TLS}/client.key")
    assert (key.user, key.mode) == ("postgres", 0o600)


def test_one_leader_two_streaming_replicas(host):
    now = wait_for(lambda: settled(host), 60, what="one leader and two streaming replicas")
    assert {m["name"] for m in now} == set(HOSTS)
    assert next(m for m in now if m["name"] == NOFAILOVER)["role"] != "leader"


def test_leader_and_members_are_ephemeral_znodes(host):
    """Patroni's layout: /service/molecule/leader holds the leader's name, in its session."""
    script = kazoo_script(
        "data,stat=zk.get('/service/molecule/leader')\n"
        "names=zk.get_children('/service/molecule/members')\n"
        "members={m: zk.get('/service/molecule/members/'+m)[1].ephemeralOwner for m in names}\n"
        "acl=[[a.id.scheme, a.id.id, a.acl_list] for a in zk.get_acls('/service/molecule/leader')[0]]\n"
        "print(json.dumps({'leader': data.decode(), 'owner': stat.ephemeralOwner, 'members': members, 'acl': acl}))")
    got = json.loads(host.check_output("python3 -c %s", script))
    assert got["leader"] == leader_of(host)
    assert got["owner"] != 0
    assert sorted(got["members"]) == sorted(HOSTS)
    assert all(owner != 0 for owner in got["members"].values())
    # set_acls: the members' principal alone
    assert got["acl"] == [["x509", "CN=pg_ha", ["ALL"]]]


def test_another_certificate_of_the_ca_is_refused_the_clusters_znodes(host):
    """The server's own certificate (subject CN=node1, not the members' principal) connects
    but may not read the leader key."""
    script = kazoo_script("from kazoo.exceptions import NoAuthError\n"
                          "try:\n    zk.get('/service/molecule/leader'); print('read')\n"
                          "except NoAuthError:\n    print('refused')",
                          cert=f"{ZK_TLS}/server.pem", key=f"{ZK_TLS}/server.pem")
    assert host.check_output("python3 -c %s", script) == "refused"


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
