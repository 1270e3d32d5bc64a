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


@pytest.fixture(scope="module")
def nodes(host):
    """name -> testinfra host, through the same Ansible inventory as `host`."""
    inventory = host.backend.ansible_inventory
    return {name: host.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in HOSTS}


def four_letter(host, address, word):
    """A four-letter word (srvr, ruok, ...) sent from `host` to ZooKeeper at address:2181."""
    script = (
        "import socket,sys\n"
        f"s=socket.create_connection(('{address}',2181),timeout=3)\n"
        f"s.sendall(b'{word}')\n"
        "out=b''\n"
        "while True:\n"
        "    c=s.recv(65536)\n"
        "    if not c: break\n"
        "    out+=c\n"
        "sys.stdout.write(out.decode())\n"
    )
    return host.check_output("python3 -c %s", script)


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
