"""The in-process worker of the embedded default: one thread running queued jobs in order.

Jobs run one at a time, so at most one promotion per tenant runs at once. Connection strings live in
this queue's memory only; if the process stops, queued imports cannot run and are marked Failed on the
next start (see `Service.recover`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class InProcessWorker:
    def __init__(self) -> None:
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="efimis-worker", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> None:
        with self._idle:
            self._pending += 1
        self._jobs.put(job)

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted job has finished (for the CLI and tests)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # a job records its own failure; this guards the worker itself
                log.exception("job crashed")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
