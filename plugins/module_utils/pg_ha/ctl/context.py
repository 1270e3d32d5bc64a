# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every command works with: the ctl config, one DCS connection per cluster name,
REST clients for members, and the member-selection and confirmation steps shared by
restart, reload, reinit and flush."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..core.model import Cluster, Member
from ..dcs import AbstractDCS, DCSError, get_dcs
from .ctlconfig import CtlConfig
from .errors import CtlError, UsageError
from .members import cluster_is_empty
from .output import echo
from .prompt import ask, confirm
from .table import print_members

if TYPE_CHECKING:
    from ..client import PgHaClient

ROLES = ("leader", "primary", "standby-leader", "replica", "standby", "any")
ROLE_ALIASES = {"master": "primary", "standby_leader": "standby-leader"}
REST_TIMEOUT = 5.0


def normalize_role(role: str | None) -> str | None:
    return None if role is None else ROLE_ALIASES.get(role, role)


def members_with_role(cluster: Cluster, role: str) -> list[Member]:
    """patronictl's role filter: leader/primary/standby-leader pick the lock holder,
    replica/standby every other member, any every member."""
    role = normalize_role(role) or "any"
    leader = cluster.leader.name if cluster.leader is not None else None
    if role in ("leader", "primary", "standby-leader"):
        member = cluster.get_member(leader) if leader else None
        if member is None:
            return []
        member_role = member.role
        if role == "primary" and member_role == "standby_leader":
            return []
        if role == "standby-leader" and member_role in ("primary", "master"):
            return []
        return [member]
    if role in ("replica", "standby"):
        return [m for m in cluster.members if m.name != leader]
    return list(cluster.members)


def leader_first(cluster: Cluster) -> list[Member]:
    """Members with a REST API, the leader first (where cluster-wide requests go)."""
    leader = cluster.leader_member
    first = [leader] if leader is not None and leader.api_url else []
    return first + [m for m in cluster.members if m.api_url and m not in first]


class Ctx:
    def __init__(self, config: CtlConfig) -> None:
        self.config = config
        self._dcs: dict[str, AbstractDCS] = {}

    # -- cluster -------------------------------------------------------------------
    def scope(self, name: str | None) -> str:
        scope = name or self.config.scope
        if not scope:
            raise UsageError("no cluster name given and the config has no scope")
        return scope

    def dcs(self, scope: str) -> AbstractDCS:
        if scope not in self._dcs:
            try:
                self._dcs[scope] = get_dcs(self.config.dcs_config(scope))
            except (DCSError, ValueError) as exc:
                raise CtlError(f"cannot use the DCS: {exc}") from None
        return self._dcs[scope]

    def close(self) -> None:
        """End the DCS connections (a ZooKeeper session would otherwise outlive pg_hactl by its timeout)."""
        for dcs in self._dcs.values():
            dcs.close()
        self._dcs.clear()

    def cluster(self, scope: str, must_exist: bool = True) -> Cluster:
        dcs = self.dcs(scope)
        try:
            cluster = dcs.get_cluster()
        except DCSError as exc:
            raise CtlError(f"cannot read cluster {scope} from the DCS: {exc}") from None
        if must_exist and cluster_is_empty(cluster):
            raise CtlError(f"cluster {scope} not found in the DCS (no keys under {dcs.base_path}/)")
        return cluster

    # -- REST ----------------------------------------------------------------------
    def client(self, member: Member, timeout: float = REST_TIMEOUT) -> PgHaClient:
        from ..client import PgHaClient, PgHaClientError, base_url_from_api_url

        if not member.api_url:
            raise CtlError(f"member {member.name} publishes no api_url")
        rest = self.config.rest
        try:
            return PgHaClient(base_url_from_api_url(member.api_url), rest.username, rest.password, rest.cafile,
                              rest.certfile, rest.keyfile, rest.verify, timeout)
        except PgHaClientError as exc:
            raise CtlError(f"member {member.name}: {exc.message}") from None

    def status(self, member: Member) -> dict[str, Any] | None:
        """GET /patroni of a member; None when it does not answer with a JSON object."""
        from ..client import PgHaClientError

        try:
            code, body = self.client(member).get_status()
        except (PgHaClientError, CtlError):
            return None
        return body if code == 200 and isinstance(body, dict) else None

    # -- members -------------------------------------------------------------------
    def select_members(self, cluster: Cluster, scope: str, names: list[str], role: str | None, force: bool,
                       action: str, ask_for_one: bool = False) -> list[Member]:
        """The members an action applies to (patronictl's get_members): shows the cluster
        unless --force, checks the names, filters by role, and when no name is given takes
        every member of the role (or asks for one, for reinitialize)."""
        known = {m.name for m in cluster.members}
        if not force:
            print_members(cluster, scope)
        for name in names:
            if name not in known:
                raise CtlError(f"{name} is not a member of cluster {scope}")
        candidates = [m.name for m in members_with_role(cluster, role or "any")]
        if names:
            chosen = [n for n in dict.fromkeys(names) if n in candidates]
            if not chosen:
                raise CtlError(f"No {role} among provided members")
        elif ask_for_one:
            if force:
                raise UsageError(f"name the members to {action}")
            answer = ask(f"Which member do you want to {action} [{', '.join(candidates)}]?", "")
            if answer not in candidates:
                raise CtlError(f"{answer or 'no member'} is not a member of cluster {scope} "
                               f"that can be used for {action}")
            chosen = [answer]
        else:
            chosen = candidates
        if not chosen:
            raise CtlError(f"{scope} cluster doesn't have any members to {action}")
        order = {m.name: i for i, m in enumerate(cluster.members)}
        return sorted((m for m in cluster.members if m.name in chosen), key=lambda m: order[m.name])


def confirm_members(members: list[Member], force: bool, action: str, scheduled_at: Any = None) -> None:
    if force:
        return
    names = ", ".join(m.name for m in members)
    if scheduled_at is not None:
        if not confirm(f"Are you sure you want to schedule {action} of members {names} at {scheduled_at}?"):
            raise CtlError(f"Aborted scheduled {action}")
    elif not confirm(f"Are you sure you want to {action} members {names}?"):
        raise CtlError(f"Aborted {action}")


def warn(text: str) -> None:
    echo(f"Warning: {text}", sys.stderr)

