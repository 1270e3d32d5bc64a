# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection threads that are reused: a socketserver mixin.

ThreadingMixIn starts a thread per connection; a load balancer checking every member
several times a second on a new connection each time pays a thread start per check.
Here a connection goes to an idle worker when there is one, else to a new worker; a
worker that stays idle for IDLE_EXIT seconds ends. Like ThreadingMixIn, connections
never wait for each other (a kept-alive client holds its worker, others get new ones)."""
from __future__ import annotations

import queue
import threading
from typing import Any

IDLE_EXIT = 30.0

_Job = tuple[Any, Any] | None  # (request, client_address); None ends a worker


class ReusedThreadsMixIn:
    """Put before the server class; the server must provide process_request_thread()."""

    _workers_lock: threading.Lock
    _jobs: queue.Queue[_Job]
    _idle: int
    _workers_stopped: bool
    workers: set[threading.Thread]

    def _init_workers(self) -> None:
        self._workers_lock = threading.Lock()
        self._jobs = queue.Queue()
        self._idle = 0
        self._workers_stopped = False
        self.workers = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._workers_lock:
            if self._idle:
                self._idle -= 1  # reserved: that worker cannot time out on us (see _worker)
                self._jobs.put((request, client_address))
                return
            thread = threading.Thread(target=self._worker, args=((request, client_address),),
                                      name="pg_ha-restapi-conn", daemon=True)
            self.workers.add(thread)
        thread.start()

    def _worker(self, job: _Job) -> None:
        try:
            self._serve(job)
        finally:
            with self._workers_lock:
                self.workers.discard(threading.current_thread())

    def _serve(self, job: _Job) -> None:
        while job is not None:
            self.process_request_thread(*job)  # type: ignore[attr-defined]
            with self._workers_lock:
                if self._workers_stopped:  # busy while the server stopped: nothing more will come
                    return
                self._idle += 1
            try:
                job = self._jobs.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._workers_lock:
                    if self._idle:  # nobody counted on this worker: end it
                        self._idle -= 1
                        return
                job = self._jobs.get()  # a job was reserved for an idle worker: take it

    def live_workers(self) -> list[threading.Thread]:
        """The connection threads that have not ended yet."""
        with self._workers_lock:
            return list(self.workers)

    def stop_workers(self) -> None:
        """End the idle workers (busy ones end with their connections)."""
        with self._workers_lock:
            self._workers_stopped = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)
