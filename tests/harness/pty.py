"""A tiny expect: run a command on a pseudo-terminal, wait for its prompts, answer them.

``PtyProcess(argv, env).expect(r"Primary \\[pg0\\]: ")`` ... ``.sendline("y")`` ... ``.wait()``.
The child gets the pty as stdin/stdout/stderr and as its controlling terminal (so getpass
and isatty() behave as for a person at a terminal). Output is kept in ``.output`` (with the
typed answers the terminal echoes), carriage returns removed.
"""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import termios
import time


class PtyTimeout(AssertionError):
    pass


def _controlling_tty() -> None:  # runs in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                         start_new_session=True, preexec_fn=_controlling_tty, close_fds=True)
        finally:
            os.close(slave)
        self.fd = master
        self.output = ""
        self.pos = 0  # output before this index was consumed by expect()
        self.eof = False

    def _read(self, timeout: float) -> bool:
        """Read what is available within timeout; False at end of output."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            self.eof = True
            return False
        self.output += data.decode("utf-8", errors="replace").replace("\r", "")
        return True

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait until the output after the last match matches ``pattern`` (a regex)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.pos)
            if match:
                self.pos = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.eof:
                what = "before the end of output" if self.eof else f"within {timeout}s"
                raise PtyTimeout(f"{pattern!r} not seen {what}; output after the last match:\n"
                                 f"{self.output[self.pos:]}")
            self._read(min(remaining, 0.5))

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def sendline(self, text: str = "") -> None:
        self.send(text + "\r")

    def wait(self, timeout: float = 60) -> int:
        """Read the rest of the output and return the exit code."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._read(min(0.5, deadline - time.monotonic()))
        try:
            return self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.close()
            raise PtyTimeout(f"still running after {timeout}s; output:\n{self.output}") from None

    def interrupt(self) -> None:
        """Ctrl-C, as typed."""
        self.send("\x03")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        try:
            os.close(self.fd)
        except OSError:
            pass

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
