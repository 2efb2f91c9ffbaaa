"""The job queue: supervised child processes on the embedded default, procrastinate (PostgreSQL) when
scaled out.

Embedded, the service runs each job in a child process of its own (`jobs.supervisor`); the connection
string reaches the child through a pipe and is never written anywhere. Scaled out, the API process only
enqueues; `efimis-etl worker` processes, on any machine that reaches the platform database, run the jobs.
The connection string of a queued import is stored Fernet-encrypted (`EFIMIS_SECRET_KEY`) and deleted as
soon as the import has ended, whatever its outcome.

Crash safety: workers send heartbeats; a periodic task retries the jobs of workers that stopped sending
them (killed, machine lost). A retried import starts again from nothing (its staging store is dropped and
recreated); a retried promotion simply runs again: a promotion is one database transaction, so the dead
attempt either committed entirely or left production as it was, and promoting is idempotent by ImportId.
At most one promotion per tenant runs at a time (a procrastinate lock per tenant); imports run in parallel.

Cancelling: the service first sets the request Cancelled (so no later step of its job can record another
outcome), then asks the queue to stop the job, which drops the staging store and records that it stopped.
"""

from __future__ import annotations

from typing import Protocol

from efimis_etl.jobs import distributed
from efimis_etl.jobs.pipeline import settle_cancelled
from efimis_etl.jobs.secrets import secret_box
from efimis_etl.jobs.state import Platform
from efimis_etl.jobs.supervisor import ChildProcessQueue
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores


class JobQueue(Protocol):
    def enqueue_import(self, request_id: str, tenant: str, connection_string: str) -> None: ...

    def enqueue_promotion(self, request_id: str, tenant: str) -> None: ...

    def cancel(self, request_id: str, tenant: str) -> None:
        """Stop the job of a request the service has just set Cancelled."""
        ...

    def worker_pid(self, request_id: str) -> int | None:
        """The process running the request's job now, when this queue knows it (embedded)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class DistributedQueue:
    """Enqueues procrastinate jobs; the work happens in `efimis-etl worker` processes."""

    def __init__(self, settings: Settings, platform: Platform, stores: TenantStores) -> None:
        self.settings, self.platform, self.stores = settings, platform, stores
        self.box = secret_box(settings)
        self.app = distributed.build_app(settings)

    def enqueue_import(self, request_id: str, tenant: str, connection_string: str) -> None:
        self.platform.save_secret(request_id, self.box.encrypt(connection_string.encode()))
        self.app.configure_task("efimis.import", queueing_lock=distributed.import_lock(request_id)).defer(
            request_id=request_id, tenant=tenant
        )

    def enqueue_promotion(self, request_id: str, tenant: str) -> None:
        self.app.configure_task("efimis.promote", lock=f"promote:{tenant}").defer(
            request_id=request_id, tenant=tenant
        )

    def cancel(self, request_id: str, tenant: str) -> None:
        """A waiting job is cancelled outright; a running one is asked to abort (procrastinate's abort:
        the task checks `should_abort()` between batches, then cleans up itself)."""
        manager = self.app.job_manager
        for job in manager.list_jobs(queueing_lock=distributed.import_lock(request_id)):
            if job.id is None or not manager.cancel_job_by_id(job.id, abort=True):
                continue
            if manager.get_job_status(job.id).value == "cancelled":  # it never ran: nothing else will
                self.platform.delete_secret(request_id)
                settle_cancelled(self.platform, self.stores, request_id, tenant)

    def worker_pid(self, request_id: str) -> int | None:
        return None  # the worker may be on another machine: its process id would mean nothing here

    def start(self) -> None:
        self.app.open()

    def stop(self) -> None:
        self.app.close()


__all__ = ["ChildProcessQueue", "DistributedQueue", "JobQueue"]
