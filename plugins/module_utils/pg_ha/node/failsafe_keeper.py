# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failsafe_mode at the edges: the failsafe key write, the parallel POST /failsafe calls
of a primary that lost the DCS, and what a member remembers when it is called.
The rules themselves are in failsafe.py (pure)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

from ..config.settings import Config
from ..core import failsafe as rules
from ..core.model import Cluster
from ..dcs.base import AbstractDCS

logger = logging.getLogger("pg_ha")

CALL_TIMEOUT = 2.0  # seconds per POST /failsafe (as Patroni); the calls run in parallel
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="failsafe")


class FailsafeKeeper:
    """One per daemon; thread-safe (the REST API thread calls :meth:`receive`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._leader: rules.FailsafeLeader | None = None  # who called us last (member side)
        self._active_since: float | None = None  # primary side: running on the members' consent
        self._back_at: float | None = None  # primary side: when the DCS answered again after that
        self.topology: dict[str, Any] | None = None  # the failsafe key as last read or written by us
        self.member_lsns: dict[str, int] = {}  # primary side: positions the members answered with

    # -- primary side ----------------------------------------------------------------
    def seen(self, cluster: Cluster) -> None:
        """A fresh DCS read: its failsafe key is the topology from now on."""
        self.topology = cluster.failsafe

    def publish(self, dcs: AbstractDCS, cluster: Cluster, config: Config) -> None:
        """Leader duty: keep the failsafe key equal to the members we know (raises DCSError).
        What we wrote counts at once: the DCS may be gone before our next read."""
        wanted = rules.topology(cluster, config.name, config.restapi.api_url)
        if rules.key_needs_write(config.dynamic.failsafe_mode, cluster.failsafe, wanted):
            dcs.write_failsafe(wanted)
            self.topology = wanted
            logger.info("failsafe topology written: %s", ", ".join(sorted(wanted)))

    def decide(self, view: rules.OutageView, config: Config, conn_url: str, wal_lsn: int,
               slots: Callable[[], dict[str, int] | None] = lambda: None) -> rules.OutageDecision:
        """Ask the members when the rules say so, then decide the outage cycle. `slots`: the
        positions of our replication slots, sent along as Patroni does so that the replicas
        keep advancing their copies."""
        others = rules.members_to_ask(view)
        if others:
            body: dict[str, Any] = {"name": config.name, "conn_url": conn_url, "api_url": config.restapi.api_url,
                                    "lsn": wal_lsn}
            positions = slots()
            if positions is not None:
                body["slots"] = positions
            view = replace(view, answers=self.ask(others, body, config))
        decision = rules.decide_without_dcs(view)
        with self._lock:
            if decision.consented:
                self._active_since = self._active_since or time.monotonic()
            else:
                self._active_since = None
        return decision

    def ask(self, members: Mapping[str, str], body: dict[str, Any], config: Config) -> dict[str, bool]:
        """POST /failsafe to every member in parallel; name -> accepted. When all accept, the
        positions they answered with are kept (member_lsns)."""
        futures = {_pool.submit(self._call, name, url, body, config): name for name, url in members.items()}
        done, _ = wait(futures, timeout=CALL_TIMEOUT + 1.0)
        answers = dict.fromkeys(members, False)
        lsns: dict[str, int] = {}
        for future in done:
            accepted, lsn = future.result()
            answers[futures[future]] = accepted
            if lsn is not None:
                lsns[futures[future]] = lsn
        if all(answers.values()):
            self.member_lsns = lsns
        return answers

    @staticmethod
    def _call(name: str, api_url: str, body: dict[str, Any], config: Config) -> tuple[bool, int | None]:
        from ..client import PgHaClient, PgHaClientError, base_url_from_api_url  # only in a DCS outage: lean idle

        api = config.restapi  # members share the REST API credentials (and certificates), as in Patroni
        cert = (api.certfile, api.keyfile) if api.verify_client and api.certfile else (None, None)
        try:
            client = PgHaClient(base_url_from_api_url(api_url), api.username, api.password,
                                cafile=api.cafile, certfile=cert[0], keyfile=cert[1], timeout=CALL_TIMEOUT)
            code, answer, headers = client.request_with_headers("POST", "/failsafe", body, timeout=CALL_TIMEOUT)
        except PgHaClientError as exc:
            logger.warning("failsafe: POST /failsafe to %s failed: %s", name, exc)
            return False, None
        logger.info("failsafe: %s answered %s %s", name, code, str(answer).strip())
        lsn = headers.get("lsn", "")
        return code == 200 and str(answer).strip() == rules.ACCEPTED, int(lsn) if lsn.isdigit() else None

    def dcs_is_back(self) -> None:
        with self._lock:
            if self._active_since is not None:
                self._back_at = time.monotonic()
            self._active_since = None

    def recently_back(self, ttl: float) -> bool:
        """Within ttl seconds after an outage survived on the members' consent: core/ha.py
        re-takes an expired leader key rather than demote (ha.after_outage)."""
        with self._lock:
            back_at = self._back_at
        return back_at is not None and time.monotonic() - back_at < ttl

    # -- member side -----------------------------------------------------------------
    def receive(self, body: Any, failsafe_mode: bool, running_primary: bool) -> tuple[int, str]:
        """POST /failsafe: answer as Patroni does; remember the caller when we accept."""
        caller = rules.parse_call(body, time.monotonic())
        if isinstance(caller, str):
            return 400, caller
        code, text = rules.answer_call(failsafe_mode, running_primary)
        if code == 200:
            with self._lock:
                self._leader = caller
        return code, text

    def cluster_view(self, cluster: Cluster, failsafe_mode: bool, ttl: float) -> Cluster:
        with self._lock:
            leader = self._leader
        return rules.with_failsafe_leader(cluster, leader, self.name, failsafe_mode, time.monotonic(), ttl)

    def cluster_with_slots(self, cluster: Cluster | None, ttl: float) -> Cluster | None:
        """The last cluster read, with the slot positions of a primary's fresh call (or None)."""
        with self._lock:
            leader = self._leader
        return rules.with_failsafe_slots(cluster, leader, time.monotonic(), ttl) if cluster is not None else None

    def is_active(self, ttl: float) -> bool:
        """failsafe_mode_is_active of GET /patroni: on the primary while it runs on the
        members' consent; on a member while a primary's call is fresh."""
        now = time.monotonic()
        with self._lock:
            return self._active_since is not None or rules.fresh(self._leader, now, ttl) is not None
