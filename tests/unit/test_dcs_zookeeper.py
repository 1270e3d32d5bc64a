"""The ZooKeeper backend without a server: znode -> key mapping, versions and sessions,
Patroni's set_acls, the DCS settings reaching the backend, and the lazy import."""
from __future__ import annotations

import subprocess
import sys

from kazoo.protocol.states import ZnodeStat
from kazoo.security import Permissions
from pg_ha.config.load import build_config
from pg_ha.dcs import get_dcs
from pg_ha.dcs.base import cluster_from_nodes
from pg_ha.dcs.zookeeper import ZooKeeper, node_of
from pg_ha.dcs.zookeeper_client import acls

from tests.harness.common import REPO


def stat(mzxid: int = 0x100000005, version: int = 0, owner: int = 0, children: int = 0) -> ZnodeStat:
    return ZnodeStat(czxid=0x100000002, mzxid=mzxid, ctime=0, mtime=0, version=version, cversion=0, aversion=0,
                     ephemeralOwner=owner, dataLength=0, numChildren=children, pzxid=0)


def test_znode_to_key() -> None:
    leader = node_of(b"pg0", stat(owner=0x10000abc))
    assert leader is not None and (leader.value, leader.version, leader.session) == ("pg0", 0x100000005, 0x10000abc)
    persistent = node_of(b'{"ttl": 30}', stat(version=7))
    assert persistent is not None and persistent.session is None
    assert persistent.version == 0x100000005  # the mzxid (never 0), not the data version (starts at 0)
    assert node_of(b"", stat(children=2)) is None  # a znode holding others is a directory
    assert node_of(None, stat()).value == ""  # type: ignore[union-attr]
    assert node_of(b"\xff\xfe{", stat()).value == "\ufffd\ufffd{"  # type: ignore[union-attr]


def test_patroni_layout_builds_the_cluster() -> None:
    nodes = {"leader": node_of(b"pg1", stat(owner=5)), "members/pg1": node_of(b'{"role":"primary"}', stat(owner=5)),
             "optime/leader": node_of(b"1234", stat()), "initialize": node_of(b"7", stat()),
             "failover": node_of(b'{"member":"pg2"}', stat(mzxid=0x100000009))}
    cluster = cluster_from_nodes({k: v for k, v in nodes.items() if v is not None})
    assert cluster.leader is not None and cluster.leader.name == "pg1" and cluster.leader.session == 5
    assert [m.name for m in cluster.members] == ["pg1"] and cluster.last_lsn == 1234
    assert cluster.failover is not None and cluster.failover.version == 0x100000009


def test_set_acls_as_patroni() -> None:
    result = acls((("CN=p1", ("ALL",)), ("CN=p2", ("READ", "WRITE"))))
    assert [(a.id.scheme, a.id.id, a.perms) for a in result] == [
        ("x509", "CN=p1", Permissions.ALL), ("x509", "CN=p2", Permissions.READ | Permissions.WRITE)]


def test_get_dcs_builds_an_unconnected_backend() -> None:
    raw = {"scope": "s", "name": "n", "restapi": {"listen": "127.0.0.1:8008"},
           "postgresql": {"listen": "127.0.0.1:5432", "data_dir": "/tmp/x"},
           "zookeeper": {"hosts": "zk1:2281", "use_ssl": True, "cacert": "/ca", "verify": False,
                         "auth_data": {"digest": "u:p"}, "set_acls": {"CN=p": ["READ"]}},
           "bootstrap": {"dcs": {"ttl": 20, "retry_timeout": 5}}}
    config, _ = build_config(raw, environ={})
    dcs = get_dcs(config)
    assert isinstance(dcs, ZooKeeper) and dcs._session is None  # connects on first use
    assert dcs.leader_path == "/service/s/leader" and dcs.member_path == "/service/s/members/n"
    assert (dcs.ttl, dcs.retry_timeout) == (20, 5)
    options = dcs._options
    assert options["use_ssl"] is True and options["verify_certs"] is False and options["ca"] == "/ca"
    assert options["auth_data"] == [("digest", "u:p")] and options["default_acl"][0].id.id == "CN=p"
    dcs.close()


def test_import_dcs_needs_no_kazoo() -> None:
    code = ("import sys; import pg_ha.dcs, pg_ha.config.load; "
            "assert 'kazoo' not in sys.modules, sorted(m for m in sys.modules if 'kazoo' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={"PYTHONPATH": str(REPO / "plugins" / "module_utils")}, timeout=60)
