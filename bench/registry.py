"""Every process and PostgreSQL data directory the bench starts, recorded in a file.

The file lets ``python3 -m bench.cleanup FILE`` (run by bench/run.sh's trap) end whatever a
killed bench left behind. A process is identified by PID *and* its start time in
/proc/PID/stat, so a recycled PID is never signalled.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def same_process(pid: int, ticks: int) -> bool:
    return start_ticks(pid) == ticks


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def signal_pid(pid: int, sig: int, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        if group:
            signal_pid(pid, sig)


def wait_gone(pid: int, ticks: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = start_ticks(pid)
        if now is None or (ticks is not None and now != ticks):
            return True
        time.sleep(0.05)
    return False


def stop_postmaster(data_dir: Path, timeout: float = 10) -> None:
    """Immediate shutdown (SIGQUIT) of the postmaster of `data_dir`, SIGKILL if it lingers."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return
    ticks = start_ticks(pid)
    if ticks is None:
        return
    signal_pid(pid, signal.SIGQUIT)
    if not wait_gone(pid, ticks, timeout):
        signal_pid(pid, signal.SIGKILL)
        wait_gone(pid, ticks, 5)


class Registry:
    """Append-only record: ``proc PID TICKS LABEL``, ``pgdata PATH`` and ``tmpdir PATH`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def _append(self, line: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()

    def add_process(self, pid: int, label: str) -> None:
        self._append(f"proc {pid} {start_ticks(pid) or 0} {label}")

    def add_data_dir(self, data_dir: Path) -> None:
        self._append(f"pgdata {data_dir}")

    def add_temp_dir(self, path: Path) -> None:
        """A directory the bench created and removes at the end (after its processes are gone)."""
        self._append(f"tmpdir {path}")

    def entries(self) -> tuple[list[tuple[int, int, str]], list[Path], list[Path]]:
        procs: list[tuple[int, int, str]] = []
        dirs: list[Path] = []
        temps: list[Path] = []
        for line in self.path.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "proc":
                pid, ticks, label = rest.split(" ", 2)
                procs.append((int(pid), int(ticks), label))
            elif kind == "pgdata":
                dirs.append(Path(rest))
            elif kind == "tmpdir":
                temps.append(Path(rest))
        return procs, dirs, temps

    def cleanup(self) -> list[str]:
        """SIGKILL every recorded process still alive (its process group too), stop every
        recorded postmaster, remove the temporary directories. Returns what was ended."""
        procs, dirs, temps = self.entries()
        ended: list[str] = []
        for pid, ticks, label in reversed(procs):
            if ticks and same_process(pid, ticks):
                signal_pid(pid, signal.SIGKILL, group=True)
                wait_gone(pid, ticks, 5)
                ended.append(f"{label} (pid {pid})")
        for data_dir in dict.fromkeys(dirs):
            pid = postmaster_pid(data_dir)
            if pid is not None and start_ticks(pid) is not None:
                stop_postmaster(data_dir)
                ended.append(f"postmaster of {data_dir} (pid {pid})")
        for path in dict.fromkeys(temps):
            shutil.rmtree(path, ignore_errors=True)
        return ended
