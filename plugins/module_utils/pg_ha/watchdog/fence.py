#!/usr/bin/env python3
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing process of the `testing` watchdog driver: a stand-in for /dev/watchdog on
machines without one (containers, CI). TEST DRIVER ONLY: it fences PostgreSQL, not the host.

The daemon starts it in its own session (so a SIGSTOP or SIGKILL of the daemon does not reach
it) and writes to the pipe whose read end is --fd, in the protocol of Patroni's `testing`
driver (protocol.py):
    1                 keepalive: the timer starts over
    Ctimeout=<n>\\n   set the timeout to n seconds (and start over)
    V                 magic character: if the pipe is closed right after, stop the timer and exit 0
When no keepalive came for the timeout (the daemon hung, was stopped, or died without the
magic close) it does what a hardware watchdog would do to the node: SIGKILL the postmaster
named in DATA_DIR/postmaster.pid and every child of it, then exits with FENCED_EXIT.

Standalone on purpose (standard library only, run by path): it must work whatever state the
daemon's interpreter is in.
"""
from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from datetime import UTC, datetime

FENCED_EXIT = 42
KEEPALIVE, MAGIC, COMMAND = b"1", b"V", b"C"  # as protocol.py (kept standalone: run by path)


def _say(message: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    sys.stderr.write(f"{stamp} WATCHDOG(testing driver, pid {os.getpid()}): {message}\n")
    sys.stderr.flush()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def _postmaster_pid(data_dir: str) -> int | None:
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="ascii", errors="replace") as fh:
            pid = int(fh.readline().strip())
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as fh:
            comm = fh.read().strip()
    except (OSError, ValueError):
        return None
    return pid if comm in ("postgres", "postmaster") else None


def fence(data_dir: str) -> str:
    """Kill PostgreSQL the way a node reset would: no shutdown, no checkpoint."""
    pid = _postmaster_pid(data_dir)
    if pid is None:
        return f"no running postmaster for {data_dir}"
    children = _children(pid)
    os.kill(pid, signal.SIGKILL)
    for child in children:
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
    return f"SIGKILL sent to postmaster {pid} and {len(children)} children of it ({data_dir})"


class Timer:
    """The watchdog's state machine, fed bytes from the pipe (kept apart for unit tests)."""

    def __init__(self, timeout: float, now: float) -> None:
        self.timeout = timeout
        self.deadline = now + timeout
        self.magic = False
        self._partial = b""

    def feed(self, data: bytes, now: float) -> None:
        data = self._partial + data
        self._partial = b""
        i = 0
        while i < len(data):
            ch = data[i:i + 1]
            if ch == KEEPALIVE:
                self.magic = False
                self.deadline = now + self.timeout
            elif ch == MAGIC:
                self.magic = True
            elif ch == COMMAND:
                end = data.find(b"\n", i)
                if end < 0:
                    self._partial = data[i:]
                    return
                name, _, value = data[i + 1:end].partition(b"=")
                if name == b"timeout":
                    self.timeout = float(value)
                    self.magic = False
                    self.deadline = now + self.timeout
                i = end
            i += 1


def run(fd: int, data_dir: str, timeout: float) -> int:
    timer = Timer(timeout, time.monotonic())
    eof = False
    _say(f"armed, timeout {timeout:g} s, guarding {data_dir}")
    while True:
        remaining = timer.deadline - time.monotonic()
        if remaining <= 0:
            _say(f"no keepalive for {timer.timeout:g} s: fencing: {fence(data_dir)}")
            return FENCED_EXIT
        if eof:
            time.sleep(remaining)
            continue
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        data = os.read(fd, 4096)
        if data:
            timer.feed(data, time.monotonic())
            continue
        eof = True
        if timer.magic:
            _say("magic close: disarmed")
            return 0
        _say("closed without the magic character: the timer keeps running")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return run(args.fd, args.data_dir, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
