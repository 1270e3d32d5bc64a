# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL processes: pg_ctl, pg_controldata, postgres --single, postmaster.pid.

Every command runs with a timeout in its own session, so a timeout can kill it and
everything it started.
"""
from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

from ..config.settings import PostgresqlSettings
from . import layout

logger = logging.getLogger(__name__)

CLEAN_STATES = ("shut down", "shut down in recovery")


@dataclass(frozen=True)
class CmdResult:
    rc: int | None  # None: could not run or timed out
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None,
        cwd: str | None = None) -> CmdResult:
    """Run a command to completion (stdin /dev/null), killing its session on timeout."""
    logger.debug("running %s", argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=cwd, text=True,
                                start_new_session=True)
    except OSError as exc:
        logger.error("could not run %s: %s", argv[0], exc)
        return CmdResult(None, "", str(exc))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        logger.error("%s did not finish within %ss: killing it", argv[0], timeout)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        out, err = proc.communicate()
        return CmdResult(None, out or "", err or "")
    return CmdResult(proc.returncode, out or "", err or "")


def parse_controldata(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            result[key.strip()] = value.strip()
    return result


START_LOG_LINES = 20  # the end of what a failed start wrote, copied into our log


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_tail(path: str, offset: int = 0, lines: int = START_LOG_LINES) -> list[str]:
    """The last `lines` lines written to `path` after byte `offset` (a restarted log: from 0)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(offset if offset <= size else 0)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


class Ctl:
    """Process-level control of one data directory."""

    def __init__(self, settings: PostgresqlSettings, postmaster_log: str | None = None) -> None:
        self.settings = settings
        self._postmaster_log = postmaster_log
        # (pid, start time, data dir) of the postmaster last found running in our data dir: the
        # HA loop asks several times a cycle, the cwd check (readlink + realpath) once per process
        self._verified: tuple[int, str, str] | None = None

    @property
    def data_dir(self) -> str:
        return self.settings.data_dir

    @property
    def log_path(self) -> str:
        return self._postmaster_log or os.path.join(self.data_dir, "log", "postmaster.log")

    def binary(self, name: str) -> str:
        """The path of tool `name` (postgresql.bin_name may rename it) in bin_dir."""
        return os.path.join(self.settings.bin_dir, self.settings.bin_name.get(name, name))

    def server_options(self) -> dict[str, str]:
        """`-c` options every postgres start needs: config_file with postgresql.config_dir."""
        return layout.server_options(self.settings)

    def env(self, c_locale: bool = False) -> dict[str, str]:
        # no PG* of ours, and no PATRONI_*/PG_HA_* passwords: they are the daemon's, not the tools'
        env = {k: v for k, v in os.environ.items()
               if (not k.startswith("PG") or k in ("PGTZ",))
               and not (k.startswith(("PATRONI_", "PG_HA_")) and k.endswith("PASSWORD"))}
        env["PGPASSFILE"] = self.settings.pgpass
        if c_locale:
            env["LC_ALL"] = "C"
            env["LANG"] = "C"
        return env

    # ------------------------------------------------------------ inspection
    def controldata(self) -> dict[str, str]:
        if not os.path.exists(os.path.join(self.data_dir, "global", "pg_control")):
            return {}
        res = run([self.binary("pg_controldata"), "-D", self.data_dir], 30, self.env(c_locale=True))
        if not res.ok:
            logger.error("pg_controldata failed: %s", res.stderr.strip())
            return {}
        return parse_controldata(res.stdout)

    def _pidfile_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid"), encoding="utf-8") as fh:
                return int(fh.readline().strip())
        except (OSError, ValueError):
            return None

    def wait_dead_postmaster_reaped(self, timeout: float = 10) -> None:
        """A killed postmaster stays a zombie until its parent (init) reaps it, and a new
        postmaster refuses to start while the PID in postmaster.pid exists: wait for it."""
        pid = self._pidfile_pid()
        if pid is None or pid <= 0 or self.postmaster_pid() is not None:
            return
        deadline = time.monotonic() + timeout
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)

    def postmaster_pid(self) -> int | None:
        """PID of the live postmaster of our data dir (from postmaster.pid), or None."""
        pid = self._pidfile_pid()
        if pid is None or pid <= 0:
            return None
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                stat = fh.read()
        except OSError:
            return None
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 1:].split()
        if fields[0] == "Z" or comm not in ("postgres", "postmaster"):
            return None
        this = (pid, fields[19] if len(fields) > 19 else "", self.data_dir)  # starttime: field 22 of proc(5)
        if this == self._verified:
            return pid  # the same process (a reused pid has another start time) in the same data dir
        try:
            cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            return pid  # not ours to inspect; trust the pid file
        if cwd != os.path.realpath(self.data_dir):
            return None
        self._verified = this
        return pid

    def postmaster_port(self) -> int | None:
        """The port the running postmaster listens on (line 4 of postmaster.pid)."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid"), encoding="utf-8") as fh:
                lines = fh.read().splitlines()
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    # ------------------------------------------------------------ control
    def start(self, timeout: float) -> bool:
        """pg_ctl start -w; the postmaster runs detached with output to log_path."""
        self.wait_dead_postmaster_reaped()
        log_dir = os.path.dirname(self.log_path)
        os.makedirs(log_dir, mode=0o700, exist_ok=True)
        argv = [self.binary("pg_ctl"), "start", "-D", self.data_dir, "-w", "-s",
                "-t", str(max(1, math.ceil(timeout))), "-l", self.log_path]
        options = self.server_options()
        if options:  # pg_ctl hands -o to a shell
            argv += ["-o", " ".join(shlex.quote(f"--{k.replace('_', '-')}={v}") for k, v in options.items())]
        offset = _file_size(self.log_path)
        res = run(argv, timeout + 15, self.env())
        if not res.ok:
            logger.error("pg_ctl start failed (rc=%s): %s; see %s", res.rc,
                         (res.stderr or res.stdout).strip(), self.log_path)
            for line in log_tail(self.log_path, offset):
                logger.error("postgres: %s", line)
        return res.ok

    def stop(self, mode: str, timeout: float) -> bool:
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        if not self.is_running():
            return True
        argv = [self.binary("pg_ctl"), "stop", "-D", self.data_dir, "-m", mode, "-w", "-s",
                "-t", str(max(1, math.ceil(timeout)))]
        res = run(argv, timeout + 15, self.env())
        if res.ok:
            return True
        if not self.is_running():
            return True
        logger.error("pg_ctl stop -m %s failed (rc=%s): %s", mode, res.rc, (res.stderr or res.stdout).strip())
        return False

    def reload(self) -> bool:
        res = run([self.binary("pg_ctl"), "reload", "-D", self.data_dir, "-s"], 30, self.env())
        if not res.ok:
            logger.error("pg_ctl reload failed: %s", (res.stderr or res.stdout).strip())
        return res.ok

    def promote(self, timeout: float) -> bool:
        argv = [self.binary("pg_ctl"), "promote", "-D", self.data_dir, "-w", "-s",
                "-t", str(max(1, math.ceil(timeout)))]
        res = run(argv, timeout + 15, self.env())
        if not res.ok:
            logger.error("pg_ctl promote failed (rc=%s): %s", res.rc, (res.stderr or res.stdout).strip())
        return res.ok

    def single_user(self, options: dict[str, str], timeout: float) -> CmdResult:
        """`postgres --single` with stdin at EOF: crash recovery, then a shutdown checkpoint."""
        self.wait_dead_postmaster_reaped()
        argv = [self.binary("postgres"), "--single", "-D", self.data_dir]
        for name, value in {**self.server_options(), **options}.items():
            argv += ["-c", f"{name}={value}"]
        argv.append("postgres")
        return run(argv, timeout, self.env())

    def wait_stopped(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True
