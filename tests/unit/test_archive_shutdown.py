"""archive_command for the WAL file of the shutdown checkpoint (demotion to a standby cluster)."""
from __future__ import annotations

import os
import sys

import pytest
from pg_ha.postgresql import archive


@pytest.mark.parametrize("params, expected", [
    ({"archive_mode": "on", "archive_command": "cp %p /a/%f"}, "cp %p /a/%f"),
    ({"archive_mode": "always", "archive_command": "x"}, "x"),
    ({"archive_mode": True, "archive_command": "x"}, "x"),  # YAML `on` read as true
    ({"archive_mode": "off", "archive_command": "x"}, None),
    ({"archive_mode": "on", "archive_command": ""}, None),
    ({"archive_command": "x"}, None),
])
def test_archive_command_only_when_archiving_is_on(params: dict, expected: str | None) -> None:
    assert archive.archive_command(params) == expected


def test_placeholders_are_expanded_as_postgresql_does() -> None:
    assert archive.expand("cp %p /arch/%f && echo 100%% %r %x %", "/d/pg_wal", "0000000200000000000000A0") == \
        "cp /d/pg_wal/0000000200000000000000A0 /arch/0000000200000000000000A0 && echo 100% " \
        "000000010000000000000001 %x %"


def test_the_shutdown_checkpoint_file_is_archived_from_the_data_directory(tmp_path) -> None:
    wal = tmp_path / "pg_wal"
    wal.mkdir()
    (wal / "00000002000000000000000A").write_bytes(b"wal")
    arch = tmp_path / "arch"
    arch.mkdir()
    command = f"{sys.executable} -c \"import os, shutil, sys; assert os.getcwd() == {str(tmp_path)!r}; " \
              f"shutil.copy(sys.argv[1], sys.argv[2])\" %p {arch}/%f"
    control = {"Latest checkpoint's REDO WAL file": "00000002000000000000000A"}
    assert archive.archive_shutdown_checkpoint_wal(str(tmp_path), control, command)
    assert (arch / "00000002000000000000000A").read_bytes() == b"wal"
    assert not archive.archive_shutdown_checkpoint_wal(str(tmp_path), control, "exit 3")
    assert not archive.archive_shutdown_checkpoint_wal(str(tmp_path), {}, command)
    assert os.listdir(arch) == ["00000002000000000000000A"]
