# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DCS backends. ``get_dcs(config)`` picks one; backends are imported lazily so that
``import pg_ha.dcs`` needs neither python-etcd nor kazoo nor anything outside the standard library."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import AbstractDCS, DCSError

if TYPE_CHECKING:
    from ..config.settings import Config

__all__ = ["AbstractDCS", "DCSError", "get_dcs"]


def get_dcs(config: Config) -> AbstractDCS:
    """The DCS of `config` (``config.dcs.kind``: ``etcd3``, ``etcd`` or ``zookeeper``), not yet connected."""
    dcs = config.dcs
    args = (config.namespace, config.scope, config.name, config.dynamic.ttl,
            config.dynamic.retry_timeout)
    if dcs.kind == "zookeeper":
        try:
            from .zookeeper import ZooKeeper
        except ImportError as exc:
            raise DCSError(f"the zookeeper DCS needs kazoo (python3-kazoo): {exc}") from exc
        return ZooKeeper(*args, hosts=list(dcs.hosts), use_ssl=dcs.use_ssl, cacert=dcs.cacert, cert=dcs.cert,
                         key=dcs.key, key_password=dcs.key_password, verify=dcs.verify, set_acls=dcs.set_acls,
                         auth_data=dcs.auth_data)
    kwargs = {"hosts": list(dcs.hosts), "protocol": dcs.protocol, "username": dcs.username,
              "password": dcs.password, "cacert": dcs.cacert, "cert": dcs.cert, "key": dcs.key}
    if dcs.kind == "etcd3":
        from .etcd3 import Etcd3
        return Etcd3(*args, **kwargs)
    if dcs.kind == "etcd":
        try:
            from .etcd import Etcd
        except ImportError as exc:
            raise DCSError(f"the etcd (v2) DCS needs python-etcd (python3-etcd): {exc}") from exc
        return Etcd(*args, **kwargs)
    raise DCSError(f"unsupported DCS kind {dcs.kind!r} (expected etcd3, etcd or zookeeper)")
