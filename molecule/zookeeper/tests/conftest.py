# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the zookeeper scenario: the shared ones (../../shared/tests/conftest.py), a
testinfra host for every node, and ZooKeeper's four-letter words asked on a host."""
import importlib.util
import pathlib

import pytest

_spec = importlib.util.spec_from_file_location(
    "shared_conftest", pathlib.Path(__file__).resolve().parents[2] / "shared" / "tests" / "conftest.py")
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

HOSTS = shared.HOSTS
NOFAILOVER = shared.NOFAILOVER
api_get = shared.api_get
pg_ha_config = shared.pg_ha_config
psql = shared.psql
wait_for = shared.wait_for
wait_primary_port = shared.wait_primary_port


@pytest.fixture(scope="module")
def nodes(host):
    """name -> testinfra host, through the same Ansible inventory as `host`."""
    inventory = host.backend.ansible_inventory
    return {name: host.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in HOSTS}


ZK_PORT = 2281  # zookeeper_secure_client_port: the scenario runs ZooKeeper over TLS only
ZK_TLS = "/etc/zookeeper/tls"  # the zookeeper role's CA and server key + certificate
PG_HA_ZK_TLS = "/etc/pg_ha/zookeeper-tls"  # the pg_ha role's copy of the CA and client certificate


def four_letter(host, address, word):
    """A four-letter word (srvr, ruok, ...) sent from `host` to ZooKeeper at address:2281,
    over TLS with the host's server certificate as the client's (the server's name checked)."""
    script = (
        "import socket,ssl,sys\n"
        f"c=ssl.create_default_context(cafile='{ZK_TLS}/ca.crt'); c.load_cert_chain('{ZK_TLS}/server.pem')\n"
        f"s=c.wrap_socket(socket.create_connection(('{address}',{ZK_PORT}),timeout=3),server_hostname='{address}')\n"
        f"s.sendall(b'{word}')\n"
        "out=b''\n"
        "while True:\n"
        "    c=s.recv(65536)\n"
        "    if not c: break\n"
        "    out+=c\n"
        "sys.stdout.write(out.decode())\n"
    )
    return host.check_output("python3 -c %s", script)


def kazoo_script(body, cert=f"{PG_HA_ZK_TLS}/client.crt", key=f"{PG_HA_ZK_TLS}/client.key"):
    """Python for a host: a kazoo client `zk` over TLS to the local server (the members'
    certificate by default), then `body`."""
    return (
        "import json\n"
        "from kazoo.client import KazooClient\n"
        f"zk=KazooClient('127.0.0.1:{ZK_PORT}',timeout=10,use_ssl=True,ca='{ZK_TLS}/ca.crt',"
        f"certfile='{cert}',keyfile='{key}'); zk.start(15)\n"
        f"{body}\n"
        "zk.stop(); zk.close()\n"
    )


def zk_mode(host, address):
    for line in four_letter(host, address, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def members(host):
    status, cluster = api_get(host, "/cluster")
    assert status == 200, cluster
    return cluster["members"]


def settled(host):
    """The members when there is one running leader and two streaming replicas, else None."""
    now = members(host)
    leaders = [m for m in now if m["role"] == "leader" and m["state"] == "running"]
    streaming = [m for m in now if m["role"] in ("replica", "sync_standby") and m["state"] == "streaming"]
    return now if len(leaders) == 1 and len(streaming) == 2 else None


def leader_of(host):
    """The leader's name, or None while there is none."""
    return next((m["name"] for m in members(host) if m["role"] == "leader"), None)
