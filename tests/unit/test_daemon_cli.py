"""`pg_ha` command line (parsed without argparse: the daemon keeps what it imports)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from pg_ha import __version__
from pg_ha.__main__ import parse_args

from tests.harness.common import PKG_SRC


@pytest.mark.parametrize("argv, expected", [
    (["c.yml"], ("c.yml", False)),
    (["--validate-config", "c.yml"], ("c.yml", True)),
    (["c.yml", "--validate-config"], ("c.yml", True)),
    (["--", "-odd.yml"], ("-odd.yml", False)),
])
def test_parse_args(argv: list[str], expected: tuple[str, bool]) -> None:
    assert parse_args(argv) == expected


@pytest.mark.parametrize("argv, message", [
    ([], "the configuration file is required"),
    (["--validate-config"], "the configuration file is required"),
    (["a.yml", "b.yml"], "unrecognized arguments: b.yml"),
    (["--bogus", "a.yml"], "unrecognized arguments: --bogus"),
])
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pg_ha") and err.rstrip().endswith(f"pg_ha: error: {message}")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, text in ((["-h"], "--validate-config  check the config file and exit"),
                       (["--version", "x.yml"], f"pg_ha {__version__}")):
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 0 and text in capsys.readouterr().out


def test_daemon_imports_stay_lean() -> None:
    """What the running daemon imports: none of the modules it does not need at idle."""
    code = ("import sys, pg_ha.__main__, pg_ha.api.server, pg_ha.node.daemon, pg_ha.dcs.etcd3, pg_ha.postgresql\n"
            "heavy = ['argparse', 'http.server', 'http.client', 'email.parser', 'urllib.request',\n"
            "         'psycopg2.extras', 'html.entities', 'yaml']\n"
            "print(' '.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={"PYTHONPATH": str(PKG_SRC.parent)}).stdout
    assert out.strip() == ""
