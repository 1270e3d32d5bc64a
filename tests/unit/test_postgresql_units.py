# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_ha.postgresql without processes: files, conninfo, LSNs, history, decisions."""
from __future__ import annotations

import datetime
import os
import stat

import pytest
from pg_ha.config.settings import Auth, PostgresqlSettings
from pg_ha.postgresql import Postgresql, bootstrap, config, format_lsn, parse_lsn, query, rewind, slots
from pg_ha.postgresql.lsn import parse_history, timeline_from_walfile


def settings(tmp_path, **kw) -> PostgresqlSettings:
    base = dict(name="pg-0.Node", scope="demo", data_dir=str(tmp_path / "data"), port=5433,
                listen_hosts="0.0.0.0", pgpass=str(tmp_path / "pgpass"),
                superuser=Auth("postgres", "zalando"), replication=Auth("replicator", "rep-pass"))
    base.update(kw)
    return PostgresqlSettings(**base)


# ---------------------------------------------------------------- LSNs and history
@pytest.mark.parametrize("text,value", [("0/0", 0), ("0/3000060", 0x3000060), ("16/B374D848", 0x16B374D848),
                                        ("FFFFFFFF/FFFFFFFF", 2**64 - 1)])
def test_lsn_roundtrip(text, value):
    assert parse_lsn(text) == value
    assert format_lsn(value) == text


@pytest.mark.parametrize("bad", ["", "3000060", "0/", "/1", "x/1", "1/2/3", "100000000/0"])
def test_parse_lsn_rejects(bad):
    with pytest.raises(ValueError):
        parse_lsn(bad)


def test_format_lsn_lowercase_input_and_range():
    assert format_lsn(parse_lsn("0/30175c0")) == "0/30175C0"
    with pytest.raises(ValueError):
        format_lsn(-1)


def test_parse_history():
    content = ("1\t0/30000A0\tno recovery target specified\n\n"
               "# comment\n2\t0/5000000\tat restore point \"x\"\ngarbage\n3\tnot-an-lsn\treason\n")
    assert parse_history(content) == [(1, 0x30000A0), (2, 0x5000000)]
    assert parse_history("") == []


def test_timeline_from_walfile():
    assert timeline_from_walfile("000000020000000000000003") == 2
    assert timeline_from_walfile("0000000A0000000100000003") == 10
    assert timeline_from_walfile(None) is None and timeline_from_walfile("xyz") is None


# ---------------------------------------------------------------- postgresql.conf
def test_render_primary_conf(tmp_path):
    s = settings(tmp_path, parameters={"work_mem": "8MB", "max_connections": 200, "wal_level": "minimal",
                                       "port": 1, "hot_standby": False, "primary_conninfo": "x",
                                       "log_line_prefix": "it's %m \\ ", "track_io_timing": True,
                                       "archive_command": None})
    text = config.render_postgresql_conf(s, None)
    lines = text.splitlines()
    assert lines[0] == config.MARKER and lines[1] == "include 'postgresql.base.conf'"
    conf = config.parse_conf(text)
    assert conf["work_mem"] == "8MB" and conf["max_connections"] == "200"
    assert conf["wal_level"] == "replica"  # raised from minimal
    assert conf["port"] == "5433" and conf["listen_addresses"] == "0.0.0.0"
    assert conf["hot_standby"] == "on" and conf["wal_log_hints"] == "on"
    assert conf["cluster_name"] == "demo" and conf["max_wal_senders"] == "10"
    assert conf["max_replication_slots"] == "10" and conf["track_io_timing"] == "on"
    assert conf["log_line_prefix"] == "it's %m \\ "
    assert "primary_conninfo" not in conf and "archive_command" not in conf
    assert conf["recovery_target_timeline"] == "latest"  # both roles: promotion needs no restart
    assert "log_line_prefix = 'it''s %m \\\\ '" in lines


def test_render_replica_conf_and_read_back(tmp_path):
    s = settings(tmp_path, parameters={"cluster_name": "other", "wal_level": "logical"})
    ci = config.conninfo_for(s, "postgres://10.0.0.1:5432/postgres")
    recovery = {"primary_conninfo": config.conninfo_to_str(ci), "primary_slot_name": "pg_0_node",
                "recovery_target_timeline": "latest"}
    text = config.render_postgresql_conf(s, recovery)
    conf = config.parse_conf(text)
    assert conf["cluster_name"] == "other" and conf["wal_level"] == "logical"
    assert conf["primary_slot_name"] == "pg_0_node" and conf["recovery_target_timeline"] == "latest"
    assert config.parse_conninfo(conf["primary_conninfo"]) == ci
    os.makedirs(s.data_dir)
    config.write_file(os.path.join(s.data_dir, "postgresql.conf"), text)
    assert config.read_recovery_params(s.data_dir) == recovery
    assert config.read_recovery_params(str(tmp_path / "nowhere")) == {}


def test_recovery_conninfo_with_odd_characters_reads_back(tmp_path):
    s = settings(tmp_path, name="it's a \\ node", pgpass="/p a/ss")
    ci = config.conninfo_for(s, "postgres://h:1/postgres")
    recovery = {"primary_conninfo": config.conninfo_to_str(ci), "primary_slot_name": "s"}
    os.makedirs(s.data_dir)
    config.write_file(os.path.join(s.data_dir, "postgresql.conf"), config.render_postgresql_conf(s, recovery))
    read = config.read_recovery_params(s.data_dir)
    assert read["primary_conninfo"] == recovery["primary_conninfo"]
    assert config.parse_conninfo(read["primary_conninfo"]) == ci


def test_wal_log_hints_forced_with_rewind(tmp_path):
    off = {"wal_log_hints": "off"}
    assert config.effective_parameters(settings(tmp_path, parameters=off))["wal_log_hints"] == "off"
    forced = config.effective_parameters(settings(tmp_path, parameters=off, use_pg_rewind=True))
    assert forced["wal_log_hints"] is True


def test_quote_conf_value():
    assert config.quote_conf_value(True) == "on" and config.quote_conf_value(False) == "off"
    assert config.quote_conf_value(5) == "5" and config.quote_conf_value(0.5) == "0.5"
    assert config.quote_conf_value("a'b") == "'a''b'"


def test_parse_conf_forms():
    text = "# c\ninclude 'x'\nA = 1 # trailing\nb 'two words'\nc='it''s'\nd = 'back\\\\slash'\n"
    assert config.parse_conf(text) == {"a": "1", "b": "two words", "c": "it's", "d": "back\\slash"}


def test_ensure_base_conf(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "postgresql.conf").write_text("shared_buffers = 128MB\n")
    config.ensure_base_conf(str(d))
    assert (d / "postgresql.base.conf").read_text() == "shared_buffers = 128MB\n"
    assert not (d / "postgresql.conf").exists()
    (d / "postgresql.conf").write_text(config.MARKER + "\nport = 1\n")
    config.ensure_base_conf(str(d))  # ours: left alone
    assert (d / "postgresql.conf").exists()
    e = tmp_path / "empty"
    e.mkdir()
    config.ensure_base_conf(str(e))
    assert (e / "postgresql.base.conf").exists()


def test_pg_hba_and_signals(tmp_path):
    text = config.render_pg_hba(["host all all 0.0.0.0/0 md5 ", "local all all trust"])
    assert text.splitlines()[1:] == ["host all all 0.0.0.0/0 md5", "local all all trust"]
    assert config.set_signal(str(tmp_path), "standby.signal", True) is True
    assert config.set_signal(str(tmp_path), "standby.signal", True) is False
    assert config.set_signal(str(tmp_path), "standby.signal", False) is True
    assert not (tmp_path / "standby.signal").exists()


def test_write_if_changed(tmp_path):
    path = str(tmp_path / "f")
    assert config.write_if_changed(path, "a", 0o640) is True
    assert config.write_if_changed(path, "a", 0o640) is False
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp files left


# ---------------------------------------------------------------- pgpass and conninfo
def test_pgpass(tmp_path):
    s = settings(tmp_path, replication=Auth("rep:l", "p:w\\d"), rewind=Auth("rewinder", None))
    assert config.write_pgpass(s) is True
    assert stat.S_IMODE(os.stat(s.pgpass).st_mode) == 0o600
    lines = open(s.pgpass).read().splitlines()
    assert lines == ["*:*:*:rep\\:l:p\\:w\\\\d", "*:*:*:postgres:zalando"]
    assert config.write_pgpass(s) is False


def test_conninfo_for(tmp_path):
    s = settings(tmp_path)
    ci = config.conninfo_for(s, "postgres://127.0.0.1:5433/postgres")
    assert ci == {"user": "replicator", "passfile": s.pgpass, "host": "127.0.0.1", "port": "5433",
                  "sslmode": "prefer", "application_name": "pg-0.Node", "dbname": "postgres",
                  "connect_timeout": "3"}
    v6 = config.conninfo_for(s, "postgresql://[fe80::1]/app?sslmode=require&password=x")
    assert v6["host"] == "fe80::1" and v6["port"] == "5432" and v6["dbname"] == "app"
    assert v6["sslmode"] == "prefer" and "password" not in v6
    with pytest.raises(ValueError):
        config.conninfo_for(s, "http://x:1/")
    assert Postgresql(s).conninfo_for("postgres://h:1/postgres")["host"] == "h"


def test_conninfo_string_quoting(tmp_path):
    info = {"host": "h", "application_name": "it's me", "passfile": "/a b\\c", "password": "secret",
            "dbname": ""}
    text = config.conninfo_to_str(info)
    assert "secret" not in text and "password" not in text
    assert text == "host=h application_name='it\\'s me' passfile='/a b\\\\c' dbname=''"
    assert config.parse_conninfo(text) == {k: v for k, v in info.items() if k != "password"}


def test_rewind_conninfo(tmp_path):
    s = settings(tmp_path, rewind=Auth("rewinder", "x"))
    ci = config.conninfo_for(s, "postgres://h:5/postgres")
    rw = config.rewind_conninfo(s, ci)
    assert rw["user"] == "rewinder" and rw["dbname"] == "postgres" and rw["host"] == "h"
    assert config.rewind_conninfo(settings(tmp_path), ci)["user"] == "postgres"


# ---------------------------------------------------------------- options, slots, local state
def test_initdb_args_defaults_and_options():
    assert bootstrap.initdb_args([]) == ["--encoding=UTF8", "--data-checksums"]
    args = bootstrap.initdb_args([{"encoding": "LATIN1"}, "data-checksums", {"locale": "C"},
                                  {"username": "x"}, "pgdata"])
    assert args == ["--encoding=LATIN1", "--data-checksums", "--locale=C"]
    assert bootstrap.initdb_args(["k", {"E": "SQL_ASCII"}]) == ["-k", "-E=SQL_ASCII"]


def test_basebackup_option_filter():
    args = bootstrap.option_args([{"max-rate": "100M"}, "verbose", {"pgdata": "/x"}, {"U": "y"}],
                                 bootstrap.BASEBACKUP_FORBIDDEN, "basebackup")
    assert args == ["--max-rate=100M", "--verbose"]


def test_custom_method_argv(tmp_path):
    s = settings(tmp_path, replica_method_options={"wal_e": {"command": "/bin/wal-e fetch", "envdir": "/e",
                                                              "keep_data": True, "no_master": 1}})
    ci = {"host": "h", "port": "1", "user": "replicator"}
    argv = bootstrap.custom_method_argv(Postgresql(s), "wal_e", ci)
    assert argv == ["/bin/wal-e", "fetch", "--envdir=/e", "--scope=demo", "--role=replica",
                    f"--datadir={s.data_dir}", "--connstring=host=h port=1 user=replicator"]
    s2 = settings(tmp_path, replica_method_options={"m": {"command": "run", "no_params": True, "a": 1}})
    assert bootstrap.custom_method_argv(Postgresql(s2), "m", ci) == ["run", "--a=1"]
    assert bootstrap.custom_method_argv(Postgresql(s2), "plain", ci)[0] == "plain"


def test_without_a_leader_only_the_no_leader_methods_run(tmp_path):
    """Patroni: with no member to copy from, the replica methods with no_leader (or no_master)
    run, with an empty connstring; pg_basebackup never."""
    script = tmp_path / "restore.sh"
    calls = tmp_path / "calls"
    script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {calls}\nexit 1\n")
    script.chmod(0o755)
    s = settings(tmp_path, create_replica_methods=("basebackup", "plain", "restore", "legacy"),
                 replica_method_options={"plain": {"command": str(script)},
                                         "restore": {"command": str(script), "no_leader": "1"},
                                         "legacy": {"command": str(script), "no_master": True}})
    assert bootstrap.methods_without_leader(s) == ("restore", "legacy")
    assert bootstrap.methods_without_leader(settings(tmp_path)) == ()
    assert not bootstrap.create_replica(Postgresql(s), None, 30)  # both fail: the script exits 1
    lines = calls.read_text().splitlines()
    assert len(lines) == 2 and all("--connstring=" in line.split() for line in lines), lines
    assert not bootstrap.works_without_leader(settings(tmp_path, replica_method_options={
        "basebackup": {"no_leader": True}}), "basebackup")


def test_data_dir_empty_and_remove(tmp_path):
    d = tmp_path / "data"
    assert bootstrap.data_dir_empty(str(d))
    d.mkdir()
    (d / "lost+found").mkdir()
    assert bootstrap.data_dir_empty(str(d))
    wal = tmp_path / "wal"
    wal.mkdir()
    (wal / "000000010000000000000001").write_text("x")
    (d / "pg_wal").symlink_to(wal)
    (d / "base").mkdir()
    (d / "base" / "1").write_text("x")
    bootstrap.remove_data_dir(str(d))
    assert list(d.iterdir()) == [] and list(wal.iterdir()) == []
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


@pytest.mark.parametrize("member,slot", [("pg-0.Node", "pg_0_node"), ("postgresql0", "postgresql0"),
                                         ("A" * 70, "a" * 63), ("ü x", "__x")])
def test_slot_name_for(member, slot):
    assert slots.slot_name_for(member) == slot == Postgresql.slot_name_for(member)


def test_local_host():
    assert query.local_host("*") == "127.0.0.1"
    assert query.local_host("10.0.0.5, 127.0.0.1") == "127.0.0.1"
    assert query.local_host("10.0.0.5") == "10.0.0.5"
    assert query.local_host("::") == "::1"


def test_state_from_row_primary_and_replica():
    ts = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    repl = [{"pid": 1, "usename": "replicator", "application_name": "b", "client_addr": "127.0.0.1",
             "state": "streaming", "sync_state": "async", "sync_priority": 0, "sent_lsn": "0/5000060",
             "write_lsn": "0/5000060", "flush_lsn": None, "replay_lsn": "0/5000000"}]
    primary = query.state_from_row((False, "0/5000060", "000000030000000000000005", None, None, None, False,
                                    150010, "2024-01-01 00:00:00.000 UTC", True, 2, 0, "7311",
                                    repl, None, False))
    assert primary.role == "primary" and primary.timeline == 3 and primary.wal_lsn == 0x5000060
    assert primary.pending_restart and primary.server_version == 150010 and primary.sysid == "7311"
    assert primary.replication[0]["replay_lsn"] == 0x5000000 and primary.replication[0]["flush_lsn"] is None
    recv = {"status": "streaming", "sender_host": "h", "sender_port": 5432, "slot_name": "s",
            "received_tli": 3, "flushed_lsn": "0/7000000"}
    replica = query.state_from_row((True, None, None, "0/7000000", "0/6000000", ts, True, 150010, "x",
                                    False, 2, 2, "7311", None, recv, True))
    assert replica.role == "replica" and replica.timeline == 3 and replica.wal_lsn == 0x7000000
    assert replica.replay_lsn == 0x6000000 and replica.paused is True and replica.replication == []
    assert replica.replayed_timestamp == "2024-01-02T03:04:05+00:00"
    assert replica.wal_receiver["flushed_lsn"] == 0x7000000
    idle = query.state_from_row((True, None, None, None, "0/6000000", None, False, 150010, "x",
                                 False, 1, 0, "7311", None, None, True))
    assert idle.wal_lsn == 0x6000000 and idle.timeline == 1 and idle.wal_receiver is None
    assert idle.restore_command and replica.restore_command and not primary.restore_command


def test_state_of_missing_server_never_raises(tmp_path):
    pg = Postgresql(settings(tmp_path))
    st = pg.state()
    assert st.running is False and st.accepting is False and st.sysid is None and st.role is None
    assert pg.local_timeline_lsn() == (None, None) and pg.controldata() == {} and pg.sysid() is None
    assert pg.is_running() is False and pg.postmaster_pid() is None and pg.data_dir_empty()


# ---------------------------------------------------------------- rewind decisions
def test_timeline_lsn_from_controldata():
    primary = {"Database cluster state": "shut down", "Latest checkpoint location": "0/3000028",
               "Latest checkpoint's TimeLineID": "1", "Minimum recovery ending location": "0/0",
               "Min recovery ending loc's timeline": "0"}
    assert rewind.timeline_lsn_from_controldata(primary) == (1, 0x3000028, False)
    replica = dict(primary, **{"Database cluster state": "shut down in recovery",
                               "Minimum recovery ending location": "0/4000100",
                               "Min recovery ending loc's timeline": "2"})
    assert rewind.timeline_lsn_from_controldata(replica) == (2, 0x4000100, True)
    was_primary = dict(replica, **{"Minimum recovery ending location": "0/0"})
    assert rewind.timeline_lsn_from_controldata(was_primary) == (1, 0x3000028, False)
    assert rewind.timeline_lsn_from_controldata(dict(primary, **{"Database cluster state": "in production"})) \
        is None
    assert rewind.timeline_lsn_from_controldata({}) is None


def test_parse_waldump_end():
    one = ("rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/01500718, prev 0/015006D0, "
           "desc: CHECKPOINT_SHUTDOWN redo 0/1500718; tli 1; shutdown\n")
    err = ("pg_waldump: error: error in WAL record at 0/1500718: invalid record length at 0/1500790: "
           "wanted 24, got 0\n")
    assert rewind.parse_waldump_end(one, err) == 0x1500790
    two = one + one.replace("0/01500718, prev 0/015006D0", "0/01500790, prev 0/01500718")
    assert rewind.parse_waldump_end(two, "") == 0x1500790
    assert rewind.parse_waldump_end(one, "pg_waldump: error: could not find file\n") is None


@pytest.mark.parametrize("local_tli,local_lsn,in_rec,leader_tli,history,end,expected", [
    (2, 100, False, 2, [(1, 50)], None, False),             # same timeline
    (3, 100, False, 2, [(1, 50)], None, True),              # we are ahead of the leader's timeline
    (1, 40, True, 2, [(1, 50)], None, False),               # replica behind the fork point
    (1, 50, True, 2, [(1, 50)], None, False),               # replica exactly at the fork point
    (1, 60, True, 2, [(1, 50)], None, True),                # replica replayed past the fork
    (1, 60, False, 2, [(1, 50)], None, True),               # old primary checkpointed past the fork
    (1, 40, False, 2, [(1, 50)], 50, False),                # shutdown checkpoint ends at the fork
    (1, 40, False, 2, [(1, 50)], 56, True),                 # wrote more than the leader got
    (1, 40, False, 2, [(1, 50)], None, True),               # unknown checkpoint end: rewind
    (2, 70, True, 3, [(1, 50), (2, 80)], None, False),      # second fork, still behind
    (1, 40, True, 3, [(2, 80)], None, True),                # our timeline not in the leader's history
])
def test_decide_diverged(local_tli, local_lsn, in_rec, leader_tli, history, end, expected):
    assert rewind.decide_diverged(local_tli, local_lsn, in_rec, leader_tli, history, end) is expected


def test_tool_environment_has_pgpassfile_and_no_daemon_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    from pg_ha.postgresql.ctl import Ctl
    daemon_env = {"PATRONI_SUPERUSER_PASSWORD": "s1", "PATRONI_REPLICATION_PASSWORD": "s2",
                  "PG_HA_RESTAPI_PASSWORD": "s3", "PGPASSWORD": "s4", "PATRONI_NAME": "pg0", "PGTZ": "UTC"}
    for key, value in daemon_env.items():
        monkeypatch.setenv(key, value)
    env = Ctl(PostgresqlSettings(name="pg0", scope="s", data_dir="/tmp/x", pgpass="/tmp/x.pgpass")).env()
    assert env["PGPASSFILE"] == "/tmp/x.pgpass" and env["PATRONI_NAME"] == "pg0" and env["PGTZ"] == "UTC"
    assert not {"s1", "s2", "s3", "s4"} & set(env.values())


def test_local_connection_skips_gss_encryption(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGGSSENCMODE", raising=False)
    assert query.Db(settings(tmp_path)).connect_kwargs()["gssencmode"] == "disable"
    monkeypatch.setenv("PGGSSENCMODE", "require")  # an explicit choice is left to libpq
    assert "gssencmode" not in query.Db(settings(tmp_path)).connect_kwargs()


def test_postmaster_pid_checks_the_cwd_once_per_process(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import subprocess

    from pg_ha.postgresql.ctl import Ctl
    data = tmp_path / "data"
    data.mkdir()
    fake = tmp_path / "postgres"  # a process whose comm is "postgres", running in the data dir
    shutil.copy("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "30"], cwd=data)
    try:
        (data / "postmaster.pid").write_text(f"{proc.pid}\n{data}\n0\n5432\n")
        ctl = Ctl(settings(tmp_path))
        realpaths: list[str] = []
        real = os.path.realpath
        monkeypatch.setattr(os.path, "realpath", lambda p: realpaths.append(p) or real(p))
        assert ctl.postmaster_pid() == proc.pid
        checks = len(realpaths)
        assert checks >= 1
        assert ctl.postmaster_pid() == proc.pid and ctl.postmaster_pid() == proc.pid
        assert len(realpaths) == checks  # verified once for this process
        other = Ctl(settings(tmp_path, data_dir=str(tmp_path / "elsewhere")))
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "postmaster.pid").write_text(f"{proc.pid}\n")
        assert other.postmaster_pid() is None  # running, but not in that data dir
    finally:
        proc.kill()
        proc.wait()
    assert ctl.postmaster_pid() is None  # gone


def test_authentication_ssl_options_reach_every_connection(tmp_path):
    """postgresql.authentication.<user>.ssl*: pg_hba `hostssl ... clientcert=verify-ca` needs them."""
    rep_tls = (("sslmode", "verify-ca"), ("sslcert", "/c/rep.crt"), ("sslkey", "/c/rep.key"))
    su_tls = (("sslmode", "verify-full"), ("sslcert", "/c/su.crt"), ("gssencmode", "require"))
    s = settings(tmp_path, superuser=Auth("postgres", "x", su_tls), replication=Auth("replicator", "y", rep_tls),
                 rewind=Auth("rewinder", "z", (("sslrootcert", "/c/ca.crt"),)))
    ci = config.conninfo_for(s, "postgres://h:5/postgres?sslmode=require")
    assert ci["sslmode"] == "verify-ca" and ci["sslcert"] == "/c/rep.crt" and ci["sslkey"] == "/c/rep.key"
    assert "sslcert=/c/rep.crt" in config.conninfo_to_str(ci)  # primary_conninfo and pg_basebackup
    rw = config.rewind_conninfo(s, ci)
    assert rw["user"] == "rewinder" and rw["sslrootcert"] == "/c/ca.crt"
    assert "sslcert" not in rw and "sslkey" not in rw and "sslmode" not in rw  # libpq default: prefer
    local = query.Db(s).connect_kwargs()
    assert (local["sslmode"], local["sslcert"], local["gssencmode"]) == ("verify-full", "/c/su.crt", "require")
