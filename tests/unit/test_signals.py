"""Signals as Patroni's systemd unit sends them: SIGHUP reloads (ExecReload=kill -HUP), it
does not end the daemon; SIGTERM stops it."""
from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import pytest
from pg_ha.__main__ import install_signal_handlers


class FakeDaemon:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop(self) -> None:
        self.calls.append("stop")

    def reload(self) -> tuple[int, str]:
        self.calls.append("reload")
        return 202, "reload scheduled"


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_sighup_reloads_and_sigterm_stops(restore_handlers: None) -> None:
    daemon = FakeDaemon()
    install_signal_handlers(daemon, logging.getLogger("pg_ha"))
    signal.raise_signal(signal.SIGHUP)
    assert daemon.calls == ["reload"]
    signal.raise_signal(signal.SIGTERM)
    assert daemon.calls == ["reload", "stop"]
