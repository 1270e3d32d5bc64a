"""pg_hactl option parsing: commands and aliases, times, --dcs-url, config sources, completion."""
from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pg_ha.ctl.__main__ import main
from pg_ha.ctl.cli import build_parser, command_options
from pg_ha.ctl.cmd_members import parse_duration
from pg_ha.ctl.completion import script
from pg_ha.ctl.ctlconfig import load, parse_dcs_url
from pg_ha.ctl.errors import CtlError, UsageError
from pg_ha.ctl.prompt import parse_scheduled

COMMANDS = ["list", "topology", "show-config", "edit-config", "switchover", "failover", "pause", "resume", "restart",
            "reload", "reinit", "flush", "history", "query", "dsn", "remove", "version", "demote-cluster",
            "promote-cluster", "completion"]


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_every_command_has_help(capsys) -> None:
    assert sorted(command_options(build_parser())) == sorted(COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: pg_hactl {command}")


def test_usage_errors_are_one_line_exit_2(capsys) -> None:
    for argv in (["nosuch"], ["list", "-f", "xml"], ["restart", "--role", "boss"], ["list", "--watch", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert main([]) == 2


def test_patronictl_spellings() -> None:
    args = parse("-c", "x.yml", "--dcs", "etcd3://h:1", "switchover", "batman", "--master", "pg0", "--candidate", "pg1",
                 "--scheduled", "2030-01-01T00:00Z", "--force")
    assert (args.config_file, args.dcs_url, args.cluster_name, args.leader, args.candidate, args.force) == \
        ("x.yml", "etcd3://h:1", "batman", "pg0", "pg1", True)
    assert parse("switchover", "--primary", "a").leader == parse("switchover", "--leader", "a").leader == "a"
    query = parse("query", "batman", "-c", "SELECT 1", "-r", "replica", "-d", "db", "-U", "u", "--format", "json")
    assert (query.ctl_command, query.command, query.role, query.dbname, query.username, query.fmt) == \
        ("query", "SELECT 1", "replica", "db", "u", "json")
    assert parse("query", "-f", "q.sql").sql_file == "q.sql"
    flush = parse("flush", "batman", "pg1", "pg2", "restart", "-r", "replica", "--force")
    assert flush.names == ["batman", "pg1", "pg2", "restart"] and flush.role == "replica"
    restart = parse("restart", "batman", "pg1", "--pending", "--pg-version", "15.4", "--timeout", "60", "--any")
    assert (restart.names, restart.pending, restart.pg_version, restart.timeout, restart.p_any) == \
        (["batman", "pg1"], True, "15.4", "60", True)
    edit = parse("edit-config", "-s", "a.b=1", "-s", "c=2", "-p", "work_mem=8MB", "--apply", "-", "-q")
    assert (edit.kvpairs, edit.pgkvpairs, edit.apply_file, edit.quiet) == \
        (["a.b=1", "c=2"], ["work_mem=8MB"], "-", True)
    watch = parse("list", "-W", "-e", "-t", "a", "b")
    assert (watch.W, watch.watch, watch.extended, watch.timestamp, watch.clusters) == \
        (True, None, True, True, ["a", "b"])
    assert parse("list", "-w", "0.5").watch == 0.5
    assert parse("show-config").fmt == "yaml" and parse("query", "-c", "x").fmt == "tsv"


def test_parse_scheduled() -> None:
    assert parse_scheduled(None) is None and parse_scheduled("now") is None and parse_scheduled(" ") is None
    assert parse_scheduled("2018-07-08T03:00UTC") == datetime(2018, 7, 8, 3, 0, tzinfo=UTC)
    assert parse_scheduled("2018-07-08T03:00:00Z") == datetime(2018, 7, 8, 3, 0, tzinfo=UTC)
    with_offset = parse_scheduled("2018-07-08T05:00+02:00")
    assert with_offset == datetime(2018, 7, 8, 3, 0, tzinfo=UTC) and with_offset.utcoffset() == timedelta(hours=2)
    local = parse_scheduled("2030-10-01T14:30")
    assert local is not None and local.tzinfo is not None
    assert local.replace(tzinfo=None) == datetime(2030, 10, 1, 14, 30)
    for bad in ("tomorrow", "2018-13-01T00:00", "2018-07-08T03:00+01:00UTC"):
        with pytest.raises(UsageError):
            parse_scheduled(bad)


def test_parse_duration_and_versions() -> None:
    assert parse_duration(None) is None and parse_duration("60") == 60 and parse_duration("90s") == 90
    assert parse_duration("5min") == 300 and parse_duration("1.5h") == 5400
    for bad in ("0", "-1", "soon", "5d"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_parse_dcs_url() -> None:
    dcs, namespace = parse_dcs_url("etcd3://10.0.0.1:2379,10.0.0.2:2380/mynamespace")
    assert (dcs.kind, dcs.hosts, dcs.protocol, namespace) == ("etcd3", ("10.0.0.1:2379", "10.0.0.2:2380"), "http",
                                                              "/mynamespace")
    dcs, namespace = parse_dcs_url("etcd://127.0.0.1:4001")
    assert (dcs.kind, dcs.hosts, namespace) == ("etcd", ("127.0.0.1:4001",), None)
    assert parse_dcs_url("127.0.0.1")[0].hosts == ("127.0.0.1:2379",)
    assert parse_dcs_url("https://h:2379")[0].protocol == "https"
    # zookeeper:// is accepted (as by patronictl), with 2181 as the default port, several hosts
    dcs, namespace = parse_dcs_url("zookeeper://zk1:2182,zk2,[::1]:2183/db")
    assert (dcs.kind, dcs.hosts, namespace) == ("zookeeper", ("zk1:2182", "zk2:2181", "[::1]:2183"), "/db")
    assert parse_dcs_url("zookeeper://")[0].hosts == ("localhost:2181",)
    assert parse_dcs_url("ZooKeeper://h")[0].kind == "zookeeper"
    # no scheme: patronictl picks ZooKeeper by its port 2181, else etcd3 as before
    assert (parse_dcs_url("10.0.0.5:2181")[0].kind, parse_dcs_url("10.0.0.5:2181")[0].hosts) == \
        ("zookeeper", ("10.0.0.5:2181",))
    assert parse_dcs_url("10.0.0.5:2379")[0].kind == "etcd3"
    for bad in ("consul://h:8500", "etcd3://h:port", "zookeeper://h:port"):
        with pytest.raises(UsageError):
            parse_dcs_url(bad)


DAEMON_YAML = """scope: batman
namespace: /db/
name: postgresql0
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
  authentication: {username: admin, password: secret}
  cafile: /etc/ca.pem
etcd3:
  hosts: [127.0.0.1:2379, 127.0.0.2:2379]
postgresql:
  data_dir: /data
  authentication:
    superuser: {username: dba, password: zalando}
"""


def test_load_the_daemons_own_file(tmp_path: Path) -> None:
    path = tmp_path / "postgres0.yml"
    path.write_text(DAEMON_YAML)
    config = load(str(path), environ={})
    assert (config.scope, config.namespace, config.dcs.kind, config.dcs.hosts) == \
        ("batman", "/db/", "etcd3", ("127.0.0.1:2379", "127.0.0.2:2379"))
    assert (config.rest.username, config.rest.password, config.rest.cafile, config.rest.verify) == \
        ("admin", "secret", "/etc/ca.pem", True)
    assert (config.superuser.username, config.superuser.password) == ("dba", "zalando")
    dcs_config = config.dcs_config("other")
    assert (dcs_config.scope, dcs_config.namespace, dcs_config.dynamic.retry_timeout) == ("other", "/db/", 5)
    overridden = load(str(path), "etcd://10.1.1.1:2379/service", insecure=True,
                      environ={"PATRONI_SCOPE": "robin"})
    assert (overridden.scope, overridden.dcs.kind, overridden.namespace, overridden.rest.verify) == \
        ("robin", "etcd", "/service", False)


def test_ctl_file_with_only_a_dcs_section(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text("etcd:\n  host: 10.0.0.9:2379\nctl:\n  authentication: {username: u, password: p}\n"
                    "  insecure: true\n  retry_timeout: 2\n")
    config = load(None, environ={"PG_HACTL_CONFIG_FILE": str(path)})
    assert (config.scope, config.dcs.kind, config.dcs.hosts, config.namespace) == \
        (None, "etcd", ("10.0.0.9:2379",), "/service/")
    assert (config.rest.username, config.rest.verify, config.dcs_timeout, config.superuser.username) == \
        ("u", False, 2, "postgres")


def test_ctl_file_with_a_zookeeper_section(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text("scope: batman\nzookeeper:\n  hosts: ['10.0.0.1:2181', 10.0.0.2]\n")
    config = load(str(path), environ={})
    assert (config.scope, config.dcs.kind, config.dcs.hosts) == \
        ("batman", "zookeeper", ("10.0.0.1:2181", "10.0.0.2:2181"))
    assert config.dcs_config("batman").dcs.kind == "zookeeper"
    from_env = load(str(path), environ={"PATRONI_ZOOKEEPER_HOSTS": "'zk9:2181','zk8:2182'"})
    assert from_env.dcs.hosts == ("zk9:2181", "zk8:2182")
    bad = tmp_path / "bad.yaml"
    bad.write_text("zookeeper: {use_ssl: true}\n")
    with pytest.raises(CtlError, match="zookeeper.hosts"):
        load(str(bad), environ={})


def test_daemons_file_with_a_zookeeper_section(tmp_path: Path) -> None:
    """The pg_ha role's file with pg_ha_dcs: zookeeper (pg_hactl of root and postgres reads it)."""
    path = tmp_path / "pg_ha.yml"
    path.write_text(DAEMON_YAML.replace("etcd3:\n  hosts: [127.0.0.1:2379, 127.0.0.2:2379]",
                                        "zookeeper:\n  hosts: [10.0.0.1:2181, 10.0.0.2:2181, 10.0.0.3]"))
    config = load(str(path), environ={})
    assert (config.scope, config.dcs.kind, config.dcs.hosts) == \
        ("batman", "zookeeper", ("10.0.0.1:2181", "10.0.0.2:2181", "10.0.0.3:2181"))
    assert config.dcs_config("batman").dcs.kind == "zookeeper"


def test_config_sources_and_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert load(None, environ={"HOME": str(home)}).dcs is None  # no default file: fine until the DCS is needed
    with pytest.raises(CtlError, match="no DCS configured"):
        load(None, environ={"HOME": str(home)}).dcs_config("x")
    default = home / ".config" / "pg_ha" / "pg_hactl.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("scope: s\netcd3: {hosts: '127.0.0.1:2379'}\n")
    assert load(None, environ={"HOME": str(home)}).scope == "s"
    env_dcs = load(None, environ={"HOME": str(home), "PATRONI_ETCD3_HOSTS": "10.0.0.5:2379"})
    assert env_dcs.dcs.hosts == ("10.0.0.5:2379",)
    with pytest.raises(CtlError, match="does not exist"):
        load(str(tmp_path / "missing.yml"), environ={})
    for text, message in (("- a list", "mapping"), ("a: [", "invalid YAML"), ("etcd3: {}", "etcd3.hosts"),
                          ("etcd3: {hosts: h:1}\nctl: {retry_timeout: soon}", "retry_timeout")):
        bad = tmp_path / "bad.yml"
        bad.write_text(text)
        with pytest.raises(CtlError, match=message):
            load(str(bad), environ={})


def complete(words: list[str], shell: str = "bash") -> list[str]:
    text = script(build_parser(), shell)
    line = " ".join(words)
    program = (f"{text}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _pg_hactl; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True, timeout=10).stdout
    return sorted(w for w in out.split("\n") if w)


def test_bash_completion_sources_and_completes() -> None:
    assert complete(["pg_hactl", "li"]) == ["list"]
    assert complete(["pg_hactl", "re"]) == ["reinit", "reload", "remove", "restart", "resume"]
    assert complete(["pg_hactl", "-c", "x.yml", "sw"]) == ["switchover"]
    assert "--extended" in complete(["pg_hactl", "list", "--"])
    assert complete(["pg_hactl", "list", "-f", "j"]) == ["json"]
    assert complete(["pg_hactl", "restart", "--role", "rep"]) == ["replica"]
    assert complete(["pg_hactl", "flush", "batman", "sw"]) == ["switchover"]
    assert complete(["pg_hactl", "--d"]) == ["--dcs", "--dcs-url"]
    assert complete(["pg_hactl", "completion", ""]) == ["bash", "zsh"]
    check = subprocess.run(["bash", "-n", "-c", script(build_parser(), "bash")], capture_output=True, timeout=10)
    assert check.returncode == 0, check.stderr


def test_zsh_script_wraps_the_bash_function() -> None:
    text = script(build_parser(), "zsh")
    assert text.startswith("# zsh completion") and "bashcompinit" in text and "complete -o default -F _pg_hactl" in text


def test_zsh_sources_the_script_and_completes() -> None:
    text = script(build_parser(), "zsh")
    program = (f"autoload -U compinit && compinit -u -d /tmp/.zcompdump-pg_hactl-test\n{text}\n"
               'print -r -- "registered:${_comps[pg_hactl]}"\n'
               # ksharrays: 0-based arrays, as zsh's _bash_complete runs the function
               "setopt ksharrays; COMP_WORDS=(pg_hactl re); COMP_CWORD=1; _pg_hactl; "
               'print -rl -- "${COMPREPLY[@]}"')
    out = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0].startswith("registered:") and lines[0] != "registered:"
    # zsh's bashcompinit compgen returns every candidate; zsh itself then filters by the typed prefix
    candidates = {w for w in lines[1:] if w}
    assert {"reinit", "reload", "remove", "restart", "resume"} <= candidates and "--extended" not in candidates
