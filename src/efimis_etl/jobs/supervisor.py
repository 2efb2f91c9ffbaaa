"""The embedded default's job runner: every import and promotion runs in a child process that the service
starts and supervises, never in the API process.

Why processes: Microsoft's driver holds Python's GIL while it waits for rows, so a stalled SQL Server
would freeze every thread of the process reading from it (the HTTP API's included). A child can also be
stopped at any moment (cancel), and can die (killed, out of memory, a crash in a driver) without taking
the service with it: the supervisor then ends its job Failed or PromotionFailed, naming what happened.

At most `EFIMIS_WORKERS` children run at once; further jobs wait here, in memory (connection strings
included: never on disk), in order, except that a tenant's promotions never run concurrently. One thread
waits on the children's exit sentinels, their log pipes and a wake-up socket, so it reacts as soon as
anything happens. The children's log records come back through their pipes and are logged here, so a
job's log lines go wherever the service's own go.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess

from efimis_etl.jobs.child import Job, run_job
from efimis_etl.jobs.pipeline import (
    INTERRUPTED_IMPORT,
    INTERRUPTED_PROMOTION,
    abandon_import,
    abandon_promotion,
    settle_cancelled,
)
from efimis_etl.jobs.state import CANCELLABLE, Platform, State
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import redact
from efimis_etl.stores import TenantStores

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 1.5  # a cancelled job stops by itself between batches; past this it is terminated
KILL_AFTER_SECONDS = 1.0  # a child still there this long after SIGTERM gets SIGKILL
_HINTS = {
    signal.SIGKILL: "the system may have run out of memory, or an operator killed it",
    signal.SIGSEGV: "a crash in a database driver",
    signal.SIGBUS: "a crash in a database driver",
    signal.SIGABRT: "a crash in a database driver",
}


@dataclass
class _Child:
    job: Job
    process: BaseProcess
    pid: int  # kept: the process object cannot say once it is closed
    stop: Connection  # closing it tells the child to stop (so does this process dying)
    logs: Connection  # the child's log records
    logs_open: bool = True
    cancelled_at: float | None = None
    terminated_at: float | None = None


def _context() -> ForkServerContext:
    """The forkserver preloads the job code once; each child is then a fork of that clean process.
    `__main__` stays in the list (Python's default): each child would import the main module otherwise."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "efimis_etl.jobs.child"])
    return context


class ChildProcessQueue:
    """The embedded default's `JobQueue`: a bounded pool of supervised child processes."""

    def __init__(self, settings: Settings, platform: Platform, stores: TenantStores) -> None:
        self.settings, self.platform, self.stores = settings, platform, stores
        self.workers = settings.workers
        self._pending: deque[Job] = deque()
        self._running: dict[str, _Child] = {}  # by request id
        self._lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._context = _context()

    # --- what the service calls

    def enqueue_import(self, request_id: str, tenant: str, connection_string: str) -> None:
        self._submit(Job("import", request_id, tenant, connection_string))

    def enqueue_promotion(self, request_id: str, tenant: str) -> None:
        self._submit(Job("promote", request_id, tenant))

    def cancel(self, request_id: str, tenant: str) -> None:
        """Stop the job of a request the service has just set Cancelled: a waiting job is dropped, a
        running one is asked to stop and terminated if it has not within the grace period."""
        with self._lock:
            waiting = next((j for j in self._pending if j.request_id == request_id), None)
            if waiting is not None:
                self._pending.remove(waiting)
            child = self._running.get(request_id)
            if child is not None and child.cancelled_at is None:
                child.stop.close()
                child.cancelled_at = time.monotonic()
        if waiting is not None:  # it never started: nothing to stop, no staging store
            settle_cancelled(self.platform, self.stores, request_id, tenant)
        self._wake()

    def worker_pid(self, request_id: str) -> int | None:
        """The process id of the child running the request's job now, if any."""
        # Without the lock (a dict read is atomic): every status request asks, and must never wait.
        child = self._running.get(request_id)
        return child.pid if child is not None else None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name="efimis-supervisor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the children and end their jobs (and the waiting ones) as interrupted by the stop."""
        if self._thread is not None:
            with self._lock:
                self._stopping = True
            self._wake()
            self._thread.join()
            self._thread = None

    # --- the supervisor thread

    def _submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the buffer is full of wake-ups already
            self._wake_writer.send(b"\0")

    def _supervise(self) -> None:
        # Start the forkserver (it imports the job code, seconds) now rather than under the lock when
        # the first job comes: that would hold up every request that queues or cancels a job meanwhile.
        forkserver.ensure_running()
        while True:
            with self._lock:
                if self._stopping:
                    break
            try:
                self._supervise_once()
            except Exception:  # jobs would wait forever without this thread: log, pause, go on
                log.exception("the job supervisor failed; it carries on")
                time.sleep(1)
        self._shut_down()

    def _supervise_once(self) -> None:
        """Start what may start, then wait until a child ends, logs, or a deadline or a wake-up comes."""
        with self._lock:
            self._dispatch()
            children = list(self._running.values())
            timeout = self._next_deadline()
        logs = [c.logs for c in children if c.logs_open]
        ready = wait([self._wake_reader, *logs, *(c.process.sentinel for c in children)], timeout)
        if self._wake_reader in ready:
            self._drain_wakeups()
        for child in children:
            if child.logs in ready:
                self._relay_logs(child)
        self._reap()
        self._enforce_cancellations()

    def _relay_logs(self, child: _Child) -> None:
        """Log the records the child has sent (already redacted there) as if they were this process's."""
        try:
            while child.logs_open and child.logs.poll():
                record = child.logs.recv()
                logging.getLogger(record.name).handle(record)
        except (EOFError, OSError):  # the child has ended (a killed one may leave half a record)
            child.logs_open = False

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_reader.recv(4096):
                pass

    def _dispatch(self) -> None:
        """Start waiting jobs while a worker is free (called with the lock held)."""
        while len(self._running) < self.workers and (job := self._next_job()) is not None:
            self._pending.remove(job)
            # The child polls its end of `stop` between batches: end of file means stop.
            stop_theirs, stop_ours = self._context.Pipe(duplex=False)
            logs_ours, logs_theirs = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=run_job,
                args=(self.settings, job, stop_theirs, logs_theirs, dict(os.environ)),
                name=f"efimis-{job.kind}-{job.request_id}",
                daemon=True,  # stopped with the service, whatever way it stops
            )
            try:
                process.start()
            except Exception as error:  # no process, so no job: say so rather than leave it Queued
                log.error("cannot start a worker process for %s %s: %s", job.kind, job.request_id, error)
                stop_ours.close()
                logs_ours.close()
                what = f"could not be started ({type(error).__name__}: {redact(str(error))})"
                self._settle_later(job, "worker-not-started", _reason(job, what))
                continue
            finally:
                stop_theirs.close()  # the child has its own copies now
                logs_theirs.close()
            assert process.pid is not None  # started
            self._running[job.request_id] = _Child(job, process, process.pid, stop_ours, logs_ours)
            log.info("%s %s runs in worker process %s", job.kind, job.request_id, process.pid)

    def _next_job(self) -> Job | None:
        """The first waiting job that may start: a promotion waits while one of its tenant's runs."""
        promoting = {c.job.tenant for c in self._running.values() if c.job.kind == "promote"}
        return next((j for j in self._pending if j.kind == "import" or j.tenant not in promoting), None)

    def _settle_later(self, job: Job, code: str, reason: str) -> None:
        """`_settle` outside the lock (it writes to the platform database)."""
        threading.Thread(target=self._settle, args=(job, code, reason), daemon=True).start()

    def _next_deadline(self) -> float | None:
        """Seconds until a cancelled child must be terminated or killed; None: nothing to wait for."""
        deadlines = [
            (c.terminated_at + KILL_AFTER_SECONDS)
            if c.terminated_at is not None
            else (c.cancelled_at + CANCEL_GRACE_SECONDS)
            for c in self._running.values()
            if c.cancelled_at is not None
        ]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _reap(self) -> None:
        with self._lock:
            ended = [c for c in self._running.values() if c.process.exitcode is not None]
            for child in ended:
                del self._running[child.job.request_id]
        for child in ended:
            code = child.process.exitcode
            child.process.join()
            child.process.close()
            self._relay_logs(child)  # its last words
            child.stop.close()
            child.logs.close()
            # Exit code 0: the job recorded its own outcome. A cancelled one may have been terminated.
            if code != 0 or child.cancelled_at is not None:
                self._settle(child.job, "worker-died", _reason(child.job, _died(code)))

    def _enforce_cancellations(self) -> None:
        now = time.monotonic()
        with self._lock:
            for child in self._running.values():
                if child.cancelled_at is None or not child.process.is_alive():
                    continue
                if child.terminated_at is None and now >= child.cancelled_at + CANCEL_GRACE_SECONDS:
                    log.info(
                        "%s %s did not stop by itself: terminating", child.job.kind, child.job.request_id
                    )
                    child.process.terminate()
                    child.terminated_at = now
                elif child.terminated_at is not None and now >= child.terminated_at + KILL_AFTER_SECONDS:
                    child.process.kill()

    def _settle(self, job: Job, code: str, reason: str) -> None:
        """End a job whose process ended without recording an outcome (failure `code` and `reason`), or
        finish its cancellation; a request that has an outcome already is left as it is."""
        try:
            request = self.platform.get(job.request_id, job.tenant)
            state = request["state"] if request is not None else None
            if job.kind == "import" and state == State.CANCELLED:
                settle_cancelled(self.platform, self.stores, job.request_id, job.tenant)
            elif job.kind == "import" and state in CANCELLABLE:
                log.error("import %s: %s", job.request_id, reason)
                abandon_import(
                    self.platform, self.stores, job.request_id, job.tenant, code=code, reason=reason
                )
            elif job.kind == "promote" and state == State.PROMOTING:
                log.error("promotion %s: %s", job.request_id, reason)
                abandon_promotion(self.platform, job.request_id, job.tenant, code=code, reason=reason)
        except Exception:  # the supervisor must outlive any one job's bookkeeping
            log.exception("%s %s: could not record how its worker process ended", job.kind, job.request_id)

    def _shut_down(self) -> None:
        """The service is stopping: terminate the children, end their jobs and the waiting ones."""
        with self._lock:
            running, waiting = list(self._running.values()), list(self._pending)
            self._running.clear()
            self._pending.clear()
        for child in running:
            child.process.terminate()
        for child in running:
            child.process.join(KILL_AFTER_SECONDS)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            child.stop.close()
            child.logs.close()
        # A child that finished just before it was terminated has recorded its outcome: _settle keeps it.
        for job in [c.job for c in running if c.process.exitcode != 0] + waiting:
            interrupted = INTERRUPTED_IMPORT if job.kind == "import" else INTERRUPTED_PROMOTION
            self._settle(job, "interrupted", interrupted)
        self._wake_reader.close()
        self._wake_writer.close()


def _reason(job: Job, what: str) -> str:
    """The failure reason of a job whose process `what` ("was killed by signal 9 (SIGKILL…)")."""
    if job.kind == "import":
        return f"The worker process running this import {what}. Nothing was kept; submit the import again."
    return (
        f"The worker process running this promotion {what}. A promotion is one transaction: production is "
        "either fully promoted or unchanged; promote again to finish it."
    )


def _died(exitcode: int | None) -> str:
    """How a child ended, as the end of "The worker process running this import …"."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            return f"was killed by signal {number}"
        hint = _HINTS.get(signal.Signals(number))
        return f"was killed by signal {number} ({name}" + (f": {hint})" if hint else ")")
    return f"exited unexpectedly with code {exitcode}"
