"""A throwaway PostgreSQL 15 instance outside any pg_ha cluster (run as user postgres), e.g. the
source of a base backup that a custom bootstrap restores."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg2

from .common import free_port, kill_postmaster, postgres_tmpdir, run_as_postgres, wait_for

BIN = "/usr/lib/postgresql/15/bin"
ENV_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class StandalonePostgres:
    def __init__(self, prefix: str = "pg_ha_src_", archive: bool = False) -> None:
        self.root = postgres_tmpdir(prefix)
        self.data_dir = self.root / "data"
        self.port = free_port()
        self.archive_dir: Path | None = self.root / "archive" if archive else None

    def start(self) -> StandalonePostgres:
        run_as_postgres([f"{BIN}/initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                         "--encoding=UTF8"], env={"LANG": "C.UTF-8", "PATH": ENV_PATH})
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            fh.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                     f"unix_socket_directories = '{self.root}'\nwal_level = replica\n")
            if self.archive_dir is not None:
                fh.write(f"archive_mode = on\narchive_command = 'cp %p {self.archive_dir}/%f'\n")
        if self.archive_dir is not None:
            self.archive_dir.mkdir(mode=0o700)
            shutil.chown(self.archive_dir, "postgres", "postgres")
        with open(self.data_dir / "pg_hba.conf", "a") as fh:
            fh.write("host replication all 127.0.0.1/32 trust\n")
        run_as_postgres([f"{BIN}/pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "log"), "-w",
                         "start"], env={"LANG": "C.UTF-8", "PATH": ENV_PATH})
        return self

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                connect_timeout=3)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def switch_and_archive(self) -> str:
        """Close the current WAL segment and wait until it is in the archive; its name."""
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        assert self.archive_dir is not None
        wait_for(lambda: (self.archive_dir / segment).exists(), 30, f"WAL segment {segment} to be archived")
        return str(segment)

    def sysid(self) -> str:
        return str(self.sql("SELECT system_identifier FROM pg_control_system()")[0][0])

    def basebackup(self, target: Path) -> None:
        """A plain-format base backup with its WAL (-X stream), owned by postgres."""
        run_as_postgres([f"{BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                         "-D", str(target), "-X", "stream", "-c", "fast"], timeout=300)

    def cleanup(self) -> None:
        try:
            run_as_postgres([f"{BIN}/pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                            check=False, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        kill_postmaster(self.data_dir)
        shutil.rmtree(self.root, ignore_errors=True)
