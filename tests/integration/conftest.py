"""Fixtures shared by the integration tests.

The etcd block comes first and is self-contained; add other fixtures below it."""
from __future__ import annotations

# -- etcd -------------------------------------------------------------------------
from collections.abc import Iterator

import pytest

from tests.harness.etcd import EtcdServer


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One real etcd 3.4 (v2 API enabled) for the whole session; tests use their own scopes."""
    server = EtcdServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_etcd() -> Iterator[EtcdServer]:
    """A private etcd for tests that pause, stop or reconfigure it."""
    server = EtcdServer(name="own").start()
    try:
        yield server
    finally:
        server.cleanup()

# -- end of etcd ------------------------------------------------------------------

# -- zookeeper --------------------------------------------------------------------
from tests.harness.zookeeper import ZooKeeperServer  # noqa: E402 - blocks stay self-contained


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperServer]:
    """One real standalone ZooKeeper (Debian's 3.8) for the whole session; tests use their own scopes."""
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_zk() -> Iterator[ZooKeeperServer]:
    """A private ZooKeeper for tests that pause or stop it."""
    server = ZooKeeperServer(name="own").start()
    try:
        yield server
    finally:
        server.cleanup()

# -- end of zookeeper -------------------------------------------------------------
