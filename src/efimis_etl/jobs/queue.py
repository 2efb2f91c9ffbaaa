"""The job queue: in-process on the embedded default, procrastinate (PostgreSQL) when scaled out.

Scaled out, the API process only enqueues; `efimis-etl worker` processes, on any machine that reaches the
platform database, run the jobs. The connection string of a queued import is stored Fernet-encrypted
(`EFIMIS_SECRET_KEY`) and deleted as soon as the import has ended, whatever its outcome.

Crash safety: workers send heartbeats; a periodic task retries the jobs of workers that stopped sending
them (killed, machine lost). A retried import starts again from nothing (its staging store is dropped and
recreated); a retried promotion simply runs again: a promotion is one database transaction, so the dead
attempt either committed entirely or left production as it was, and promoting is idempotent by ImportId.
At most one promotion per tenant runs at a time (a procrastinate lock per tenant); imports run in parallel.
"""

from __future__ import annotations

from typing import Protocol

from efimis_etl.jobs import distributed
from efimis_etl.jobs.pipeline import run_import, run_promotion
from efimis_etl.jobs.secrets import secret_box
from efimis_etl.jobs.state import Platform
from efimis_etl.jobs.worker import InProcessWorker
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.stores import TenantStores


class JobQueue(Protocol):
    def enqueue_import(self, request_id: str, tenant: str, connection_string: str) -> None: ...

    def enqueue_promotion(self, request_id: str, tenant: str) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class InProcessQueue:
    """One worker thread in the service process; the connection string stays in memory."""

    def __init__(self, settings: Settings, platform: Platform, stores: TenantStores) -> None:
        self.settings, self.platform, self.stores = settings, platform, stores
        self.worker = InProcessWorker()

    def enqueue_import(self, request_id: str, tenant: str, connection_string: str) -> None:
        source = parse_connection_string(connection_string)
        self.worker.submit(
            lambda: run_import(self.settings, self.platform, self.stores, request_id, tenant, source)
        )

    def enqueue_promotion(self, request_id: str, tenant: str) -> None:
        self.worker.submit(lambda: run_promotion(self.platform, self.stores, request_id, tenant))

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()


class DistributedQueue:
    """Enqueues procrastinate jobs; the work happens in `efimis-etl worker` processes."""

    def __init__(self, settings: Settings, platform: Platform) -> None:
        self.settings, self.platform = settings, platform
        self.box = secret_box(settings)
        self.app = distributed.build_app(settings)

    def enqueue_import(self, request_id: str, tenant: str, connection_string: str) -> None:
        self.platform.save_secret(request_id, self.box.encrypt(connection_string.encode()))
        self.app.configure_task("efimis.import").defer(request_id=request_id, tenant=tenant)

    def enqueue_promotion(self, request_id: str, tenant: str) -> None:
        self.app.configure_task("efimis.promote", lock=f"promote:{tenant}").defer(
            request_id=request_id, tenant=tenant
        )

    def start(self) -> None:
        self.app.open()

    def stop(self) -> None:
        self.app.close()
