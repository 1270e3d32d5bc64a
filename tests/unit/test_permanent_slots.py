"""Permanent replication slots: the config (Patroni's forms), the status key's slots, and
what the primary and a replica do with their slots (core/slots.py, table-tested)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pg_ha.config.load import ConfigError, build_config, dynamic_from
from pg_ha.config.slots import parse_ignore_slots, parse_slot, raw_slots
from pg_ha.core import slots as rules
from pg_ha.core.model import Cluster, Leader, Member
from pg_ha.core.slots import LocalSlot, SlotSpec
from pg_ha.postgresql import config as pgconfig
from pg_ha.postgresql import slots as pg_slots

CDC = SlotSpec("cdc", "logical", "db", "test_decoding")
ARCHIVE = SlotSpec("archive", "physical")


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, parsed", [
    (None, {"type": "physical"}),
    ({}, {"type": "physical"}),
    ({"type": "physical"}, {"type": "physical"}),
    ({"cluster_type": "standby"}, {"type": "physical", "cluster_type": "standby"}),
    ({"database": "db", "plugin": "pgoutput"}, {"type": "logical", "database": "db", "plugin": "pgoutput"}),
    ({"type": "logical", "database": "db", "plugin": "pgoutput"},
     {"type": "logical", "database": "db", "plugin": "pgoutput"}),
    ({"database": "db"}, {"type": "physical"}),  # Patroni: no plugin, no type -> physical
])
def test_slot_forms_patroni_accepts(value, parsed) -> None:
    assert parse_slot("s1", value) == parsed


@pytest.mark.parametrize("name, value, message", [
    ("Bad-Name", None, "invalid permanent replication slot name 'Bad-Name'"),
    ("x" * 64, None, "invalid permanent replication slot name"),
    ("s", "physical", "slots.s: expected dict"),
    ("s", {"type": "weird"}, "slots.s.type: expected physical or logical"),
    ("s", {"type": "logical", "plugin": "p"}, "slots.s: a logical slot needs database and plugin"),
    ("s", {"cluster_type": "both"}, "slots.s.cluster_type: expected primary or standby"),
])
def test_slot_forms_refused(name, value, message) -> None:
    result = parse_slot(name, value)
    assert isinstance(result, str) and message in result


def test_config_key_spellings_in_patroni_order() -> None:
    assert raw_slots({"slots": {"a": None}}) == ("slots", {"a": None})
    assert raw_slots({"permanent_slots": {"b": None}, "slots": {"a": None}}) == ("permanent_slots", {"b": None})
    assert raw_slots({"permanent_replication_slots": {"c": None}, "permanent_slots": {"b": None}})[0] == \
        "permanent_replication_slots"
    assert raw_slots({}) == ("slots", {})


def test_dynamic_config_keeps_a_null_slot_and_the_ignore_list() -> None:
    dyn = dynamic_from({"permanent_slots": {"archive": None, "cdc": {"database": "db", "plugin": "p"}},
                        "ignore_slots": [{"name": "ext", "type": "logical"}, {"plugin": "wal2json"}]})
    assert dyn.slots == {"archive": {"type": "physical"}, "cdc": {"type": "logical", "database": "db", "plugin": "p"}}
    assert dyn.ignore_slots == ({"name": "ext", "type": "logical"}, {"plugin": "wal2json"})


def test_ignore_slots_is_implemented_not_reported_as_unsupported() -> None:
    warnings: list[str] = []
    dyn = dynamic_from({"ignore_slots": [{"name": "ext"}]}, "bootstrap.dcs", warnings)
    assert dyn.ignore_slots == ({"name": "ext"},)
    assert warnings == []


@pytest.mark.parametrize("raw, message", [
    ({"name": "x"}, "ignore_slots: expected a list"),
    (["x"], "ignore_slots[0]: expected dict"),
    ([{"nam": "x"}], "ignore_slots[0]: unknown keys nam"),
])
def test_ignore_slots_refused(raw, message) -> None:
    assert message in parse_ignore_slots(raw)[1][0]
    with pytest.raises(ConfigError, match=r"config\.ignore_slots"):
        dynamic_from({"ignore_slots": raw}, "config")


def _config(dynamic: dict, tags: dict | None = None):
    raw = {"scope": "s", "name": "pg-1", "etcd3": {"hosts": ["127.0.0.1:2379"]},
           "restapi": {"listen": "127.0.0.1:8008"},
           "postgresql": {"listen": "127.0.0.1:5432", "data_dir": "/tmp/x", "bin_dir": "/usr/bin"},
           "bootstrap": {"dcs": dynamic}, "tags": tags or {}}
    return build_config(raw)[0]


@pytest.mark.parametrize("dynamic, tags, enforced", [
    ({"slots": {"cdc": {"database": "db", "plugin": "p"}}}, {}, True),
    ({"slots": {"archive": None}}, {}, False),
    ({"slots": {"cdc": {"database": "db", "plugin": "p"}}}, {"nofailover": True}, False),
    ({"slots": {"cdc": {"database": "db", "plugin": "p"}}}, {"nostream": True}, False),
    ({"slots": {"cdc": {"database": "db", "plugin": "p"}}, "postgresql": {"use_slots": False}}, {}, False),
    ({"slots": {"cdc": {"database": "db", "plugin": "p"}},
      "standby_cluster": {"host": "10.0.0.1", "port": 5432}}, {}, False),
])
def test_hot_standby_feedback_enforced_for_members_with_logical_slots(dynamic, tags, enforced) -> None:
    config = _config(dynamic, tags)
    assert config.postgresql.enforce_hot_standby_feedback is enforced
    params = pgconfig.effective_parameters(replace(config.postgresql, parameters={"hot_standby_feedback": "off"}))
    assert params["hot_standby_feedback"] == (True if enforced else "off")


# -- which slots a node keeps -------------------------------------------------------------------
SPECS = {"cdc": CDC, "archive": ARCHIVE, "pg_1": SlotSpec("pg_1", "physical"),
         "only_std": SlotSpec("only_std", "physical", cluster_type="standby"),
         "only_pri": SlotSpec("only_pri", "physical", cluster_type="primary")}


@pytest.mark.parametrize("standby_cluster, nofailover, nostream, names", [
    (False, False, False, {"cdc", "archive", "only_pri"}),  # never a physical slot named after us
    (True, False, False, {"archive", "only_std"}),  # a standby cluster: physical only
    (False, True, False, set()),  # nofailover: no permanent slots
    (False, False, True, {"archive", "only_pri"}),  # nostream: no logical copies
])
def test_wanted_permanent(standby_cluster, nofailover, nostream, names) -> None:
    assert set(rules.wanted_permanent(SPECS, "pg_1", standby_cluster=standby_cluster, nofailover=nofailover,
                                      nostream=nostream)) == names


# -- the status key -----------------------------------------------------------------------------
def test_published_slots_and_status_value() -> None:
    local = {"cdc": LocalSlot("cdc", "logical", "db", "test_decoding", lsn=500),
             "archive": LocalSlot("archive", "physical", lsn=300),
             "pg_2": LocalSlot("pg_2", "physical", active=True, lsn=900),
             "user_logical": LocalSlot("user_logical", "logical", "db", "p", lsn=100),
             "wrong": LocalSlot("wrong", "logical", "other", "test_decoding", lsn=700),
             "fresh": LocalSlot("fresh", "physical", lsn=0)}
    specs = {"cdc": CDC, "archive": ARCHIVE, "wrong": SlotSpec("wrong", "logical", "db", "test_decoding"),
             "fresh": SlotSpec("fresh", "physical")}
    published = rules.published_slots(local, specs, {"pg_2"}, "pg_0", 1000)
    assert published == {"cdc": 500, "archive": 300, "pg_2": 900, "pg_0": 1000}
    assert rules.status_value(1000, published, ["pg_2", "pg_0"]) == \
        {"optime": 1000, "slots": published, "retain_slots": ["pg_0", "pg_2"]}
    assert rules.status_value(1000, {}, ()) == {"optime": 1000}


@pytest.mark.parametrize("status, slots", [
    (None, {}),
    ({"optime": 5}, {}),
    ({"slots": "garbage"}, {}),
    ({"slots": {"cdc": 10, "bad": "x", "t": True, "zero": 0}}, {"cdc": 10}),
])
def test_status_slots(status, slots) -> None:
    assert rules.status_slots(status) == slots


# -- ignore_slots -------------------------------------------------------------------------------
@pytest.mark.parametrize("matcher, hit", [
    ({"name": "ext"}, True),
    ({"name": "ext", "type": "logical"}, True),
    ({"name": "ext", "type": "physical"}, False),
    ({"plugin": "wal2json"}, True),
    ({"database": "db", "plugin": "pgoutput"}, False),
])
def test_ignored(matcher, hit) -> None:
    assert rules.ignored([matcher], LocalSlot("ext", "logical", "db", "wal2json")) is hit


# -- the primary --------------------------------------------------------------------------------
def test_primary_drops_unknown_logical_slots_unless_ignored_and_creates_the_missing() -> None:
    local = {"old": LocalSlot("old", "logical", "db", "p"),
             "ext": LocalSlot("ext", "logical", "db", "wal2json"),
             "moved": LocalSlot("moved", "logical", "db", "p"),
             "lost": LocalSlot("lost", "logical", "db", "test_decoding", wal_status="lost"),
             "pg_1": LocalSlot("pg_1", "physical")}
    wanted = {"cdc": CDC, "moved": SlotSpec("moved", "logical", "db2", "p"),
              "lost": SlotSpec("lost", "logical", "db", "test_decoding")}
    plan = rules.primary_plan(wanted, local, [{"plugin": "wal2json"}], paused=False)
    assert plan.drop == ("lost", "moved", "old")
    assert [s.name for s in plan.create_logical] == ["cdc", "lost", "moved"]
    paused = rules.primary_plan(wanted, local, (), paused=True)
    assert paused.drop == ("lost", "moved")  # paused: unknown slots stay, broken ones are replaced


# -- a replica ----------------------------------------------------------------------------------
@pytest.mark.parametrize("local, published, replay, plan", [
    # missing here, the primary published its position: copy it
    ({}, {"cdc": 500}, 1000, rules.ReplicaPlan(copy=("cdc",), create_physical=("archive",))),
    # missing, no feedback in the DCS yet: not copied
    ({}, {}, 1000, rules.ReplicaPlan(create_physical=("archive",))),
    # present and behind: advance to the published position ...
    ({"cdc": LocalSlot("cdc", "logical", "db", "test_decoding", lsn=200)}, {"cdc": 500}, 1000,
     rules.ReplicaPlan(advance={"db": {"cdc": 500}}, create_physical=("archive",))),
    # ... never past what this replica replayed
    ({"cdc": LocalSlot("cdc", "logical", "db", "test_decoding", lsn=200)}, {"cdc": 500}, 400,
     rules.ReplicaPlan(advance={"db": {"cdc": 400}}, create_physical=("archive",))),
    # already there: nothing
    ({"cdc": LocalSlot("cdc", "logical", "db", "test_decoding", lsn=500)}, {"cdc": 500}, 1000,
     rules.ReplicaPlan(create_physical=("archive",))),
    # the copy's plugin no longer matches the config: drop it (copied again next cycle)
    ({"cdc": LocalSlot("cdc", "logical", "db", "pgoutput", lsn=200)}, {"cdc": 500}, 1000,
     rules.ReplicaPlan(copy=("cdc",), create_physical=("archive",), drop=("cdc",))),
    # a physical permanent slot here, inactive: advanced to the published restart_lsn
    ({"archive": LocalSlot("archive", "physical", lsn=100)}, {"archive": 300}, 1000,
     rules.ReplicaPlan(advance_physical={"archive": 300})),
    # ... but not while something streams from it or holds an xmin
    ({"archive": LocalSlot("archive", "physical", lsn=100, active=True)}, {"archive": 300}, 1000,
     rules.ReplicaPlan()),
    # ... an idle one holding an xmin (old hot_standby_feedback) is dropped and created again
    ({"archive": LocalSlot("archive", "physical", lsn=100, xmin=7)}, {"archive": 300}, 1000,
     rules.ReplicaPlan(create_physical=("archive",), drop=("archive",))),
    # ... and one without restart_lsn (made by someone else without reserving WAL) too
    ({"archive": LocalSlot("archive", "physical", lsn=0)}, {"archive": 300}, 1000,
     rules.ReplicaPlan(create_physical=("archive",), drop=("archive",))),
    # unknown slots go, ignored ones stay
    ({"archive": LocalSlot("archive", "physical", lsn=100), "junk": LocalSlot("junk", "physical"),
      "ext": LocalSlot("ext", "logical", "db", "wal2json")}, {"archive": 100}, 1000,
     rules.ReplicaPlan(drop=("junk",))),
    # an idle physical slot with no published position follows replay: it pins no WAL here
    ({"archive": LocalSlot("archive", "physical", lsn=100)}, {}, 1000,
     rules.ReplicaPlan(advance_physical={"archive": 1000})),
    # ... not while something streams from it, nor when it is already there
    ({"archive": LocalSlot("archive", "physical", lsn=100, active=True)}, {}, 1000, rules.ReplicaPlan()),
    ({"archive": LocalSlot("archive", "physical", lsn=1000)}, {}, 1000, rules.ReplicaPlan()),
    # ... and a published position, even one behind replay, wins (Patroni: WAL the consumer may need)
    ({"archive": LocalSlot("archive", "physical", lsn=100)}, {"archive": 300}, 1000,
     rules.ReplicaPlan(advance_physical={"archive": 300})),
])
def test_replica_plan(local, published, replay, plan) -> None:
    wanted = {"cdc": CDC, "archive": ARCHIVE}
    assert rules.replica_plan(wanted, local, published, replay, [{"name": "ext"}], paused=False) == plan


def test_replica_plan_paused_drops_nothing_unknown() -> None:
    local = {"junk": LocalSlot("junk", "physical")}
    assert rules.replica_plan({}, local, {}, 0, (), paused=True) == rules.ReplicaPlan()


@pytest.mark.parametrize("primary_logical, primary_physical, standby, safe", [
    (10, 12, 15, True),
    (10, 10, 10, True),
    (10, 9, 15, False),  # our feedback did not yet overtake the primary's slot
    (10, 16, 15, False),  # the copy holds back less than the primary keeps for us
    (10, None, 15, False),  # no hot_standby_feedback: no catalog_xmin on our physical slot
    (10, 12, None, False),
])
def test_copy_is_safe(primary_logical, primary_physical, standby, safe) -> None:
    assert rules.copy_is_safe(primary_logical, primary_physical, standby) is safe


def test_replica_plan_leaves_a_slot_expected_active_alone() -> None:
    local = {"pg_3": LocalSlot("pg_3", "physical", lsn=100, xmin=7)}
    wanted = {"pg_3": SlotSpec("pg_3", "physical")}
    assert rules.replica_plan(wanted, local, {"pg_3": 300}, 1000, (), False, frozenset({"pg_3"})) == \
        rules.ReplicaPlan()
    # no published position: still left alone (a member cascading from here streams through it)
    assert rules.replica_plan(wanted, {"pg_3": LocalSlot("pg_3", "physical", lsn=100)}, {}, 1000, (), False,
                              frozenset({"pg_3"})) == rules.ReplicaPlan()


def test_replica_plan_idle_physical_slots_behind_replay_are_advanced() -> None:
    """The inactive member and permanent physical slots whose restart_lsn is behind replay
    are moved there (from main's lagging_replica_slots); an active one, one already at
    replay and one without restart_lsn are not advanced."""
    physical = {n: SlotSpec(n, "physical") for n in ("pg_1", "pg_2", "pg_3", "pg_4", "perm")}
    local = {"pg_1": LocalSlot("pg_1", "physical", lsn=100), "pg_2": LocalSlot("pg_2", "physical", lsn=100,
                                                                                active=True),
             "pg_3": LocalSlot("pg_3", "physical", lsn=500), "pg_4": LocalSlot("pg_4", "physical"),
             "perm": LocalSlot("perm", "physical", lsn=10)}
    plan = rules.replica_plan(physical, local, {}, 500, (), False)
    assert plan.advance_physical == {"perm": 500, "pg_1": 500}
    assert plan.drop == ("pg_4",) and plan.create_physical == ("pg_4",)  # made again, reserving WAL (Patroni)


# -- member slots on a replica --------------------------------------------------------------------
def _cluster(members: dict[str, dict], leader: str = "pg-0", status: dict | None = None) -> Cluster:
    return Cluster(initialize="1", config=None, leader=Leader(leader, 1, None), last_lsn=0,
                   members=tuple(Member.from_value(n, 1, json.dumps(d)) for n, d in members.items()),
                   failover=None, sync=None, history=None, status=status)


MEMBERS = {"pg-0": {"xlog_location": 900}, "pg-1": {"xlog_location": 800},
           "pg-2": {"xlog_location": 700, "tags": {"nofailover": True}},
           "pg-3": {"xlog_location": 650, "tags": {"replicatefrom": "pg-2"}},
           "pg-4": {"tags": {"nostream": True}}}
STATUS = {"optime": 900, "slots": {"pg_0": 900, "pg_1": 800, "pg_2": 700, "pg_3": 600},
          "retain_slots": ["pg_0", "pg_1", "pg_2", "pg_9"]}


@pytest.mark.parametrize("me, nofailover, ttl, slots, expected", [
    # every member (not nostream) has a slot on every node; a cascading member's position is its own
    ("pg-1", False, 1800, {"pg_0": 900, "pg_2": 700, "pg_3": 650, "pg_9": 0}, set()),
    # a nofailover node keeps only the slots of the members that replicate from it
    ("pg-2", True, 1800, {"pg_3": 650}, {"pg_3"}),
    # member_slots_ttl 0: only the slots of members replicating from us
    ("pg-1", False, 0, {}, set()),
    ("pg-2", True, 0, {"pg_3": 650}, {"pg_3"}),
])
def test_replica_member_slots(me, nofailover, ttl, slots, expected) -> None:
    got, active = rules.replica_member_slots(_cluster(MEMBERS, status=STATUS), me, nofailover=nofailover,
                                             member_slots_ttl=ttl)
    assert (got, set(active)) == (slots, expected)


@pytest.mark.parametrize("member", ["pg-1", "Node.A", "x" * 80, "Ünï"])
def test_slot_name_is_the_postgresql_rule(member: str) -> None:
    assert rules.slot_name(member) == pg_slots.slot_name_for(member)


def test_leader_advances_idle_permanent_slots_of_cascading_members() -> None:
    cluster = _cluster(MEMBERS, status=STATUS)
    wanted = {"pg_3": SlotSpec("pg_3", "physical"), "archive": ARCHIVE, "pg_1": SlotSpec("pg_1", "physical")}
    local = {"pg_3": LocalSlot("pg_3", "physical", lsn=100), "archive": LocalSlot("archive", "physical", lsn=100),
             "pg_1": LocalSlot("pg_1", "physical", lsn=100)}
    assert rules.leader_physical_advance(wanted, cluster, "pg-0", local) == {"pg_3": 650}
    busy = {**local, "pg_3": LocalSlot("pg_3", "physical", lsn=100, active=True)}
    assert rules.leader_physical_advance(wanted, cluster, "pg-0", busy) == {}


@pytest.mark.parametrize("me, tags, slot", [
    ("pg-1", {}, "pg_1"),
    ("pg-3", {"replicatefrom": "pg-2"}, "pg_2"),  # cascading: the chain's first hop's slot
    ("pg-5", {"replicatefrom": "pg-3"}, "pg_2"),  # two hops
    ("pg-1", {"replicatefrom": "gone"}, "pg_1"),
    ("pg-4", {"nostream": True}, None),
])
def test_slot_name_on_primary(me, tags, slot) -> None:
    assert rules.slot_name_on_primary(_cluster(MEMBERS), me, tags) == slot


def test_slot_name_on_primary_in_a_loop() -> None:
    loop = {"a": {"tags": {"replicatefrom": "b"}}, "b": {"tags": {"replicatefrom": "a"}}}
    assert rules.slot_name_on_primary(_cluster(loop), "a", {"replicatefrom": "b"}) is None


@pytest.mark.parametrize("ttl, names", [
    # every other streaming member, cascading ones too, so their slot is here after a failover upstream
    (1800, {"pg-1", "pg-2", "pg-3"}),
    # member_slots_ttl 0: only the members that replicate from the leader itself
    (0, {"pg-1", "pg-2"}),
])
def test_leader_member_names(ttl, names) -> None:
    assert rules.leader_member_names(_cluster(MEMBERS), "pg-0", member_slots_ttl=ttl) == names


def test_leader_member_names_replicatefrom_an_absent_member_streams_from_the_leader() -> None:
    members = {"pg-0": {}, "pg-1": {"tags": {"replicatefrom": "gone"}}, "pg-2": {"tags": {"replicatefrom": "pg-0"}}}
    assert rules.leader_member_names(_cluster(members), "pg-0", member_slots_ttl=0) == {"pg-1", "pg-2"}


def test_leader_advances_the_idle_member_slot_of_a_cascading_member() -> None:
    cluster = _cluster(MEMBERS, status=STATUS)
    local = {"pg_3": LocalSlot("pg_3", "physical", lsn=100), "pg_1": LocalSlot("pg_1", "physical", lsn=100)}
    assert rules.leader_physical_advance({}, cluster, "pg-0", local, {"pg_1", "pg_3"}) == {"pg_3": 650}
    assert rules.leader_physical_advance({}, cluster, "pg-0", local, {"pg_1"}) == {}


@pytest.mark.parametrize("me, tags, logical", [
    ("pg-1", {}, True),
    ("pg-4", {"nostream": True}, False),
    ("pg-5", {"replicatefrom": "pg-4"}, False),  # cascading from a nostream member: no feedback reaches the primary
    ("pg-6", {"replicatefrom": "pg-5"}, False),
    ("pg-3", {"replicatefrom": "pg-2"}, True),
])
def test_no_logical_slot_where_the_wal_does_not_stream_from_the_primary(me, tags, logical) -> None:
    from pg_ha.node.permanent_slots import wanted_here

    members = {**MEMBERS, "pg-5": {"tags": {"replicatefrom": "pg-4"}}, "pg-6": {"tags": {"replicatefrom": "pg-5"}}}
    config = replace(_config({"slots": {"cdc": {"type": "logical", "database": "db", "plugin": "test_decoding"}}},
                             tags), name=me)
    assert ("cdc" in wanted_here(config, _cluster(members))) is logical


def test_leader_remakes_the_idle_slot_of_a_cascading_member_that_holds_an_xmin() -> None:
    """Patroni: a slot not expected to be active here with an xmin (the member streamed here
    with hot_standby_feedback before moving to its upstream) would hold back vacuum forever."""
    cluster = _cluster(MEMBERS, status=STATUS)
    local = {"pg_3": LocalSlot("pg_3", "physical", lsn=100, xmin=7), "pg_1": LocalSlot("pg_1", "physical", lsn=100,
                                                                                     xmin=7)}
    assert rules.leader_stale_xmin_slots({}, cluster, "pg-0", local, {"pg_1", "pg_3"}) == ["pg_3"]
    assert rules.leader_physical_advance({}, cluster, "pg-0", local, {"pg_1", "pg_3"}) == {}
    active = {**local, "pg_3": LocalSlot("pg_3", "physical", lsn=100, xmin=7, active=True)}
    assert rules.leader_stale_xmin_slots({}, cluster, "pg-0", active, {"pg_1", "pg_3"}) == []
