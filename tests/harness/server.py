"""What the test servers (etcd.py, zookeeper.py) share: one process tracked by PID, stopped
with a deadline, paused and resumed with SIGSTOP/SIGCONT, its directory removed on cleanup."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Self

from .common import pid_alive, stop_process, wait_for


class ServerProcess:
    name: str
    base_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    paused = False

    def start(self, timeout: float = 30) -> Self:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def after_stop(self) -> None:
        """Wait for what outlives the process (a listener); nothing by default."""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process by PID (resumed first if paused) and wait until it is gone."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        pid = self.proc.pid
        stop_process(self.proc, sig)
        wait_for(lambda: not pid_alive(pid), 15, f"{self.name} pid {pid} to exit")
        self.after_stop()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        if self.proc is not None and not self.paused:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.paused = False

    def cleanup(self) -> None:
        """Stop and remove the data dir (the log stays only if the caller copied it)."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
