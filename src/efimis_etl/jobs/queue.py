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

import logging
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken

from efimis_etl.jobs.pipeline import run_import, run_promotion
from efimis_etl.jobs.state import Platform, State, now
from efimis_etl.jobs.worker import InProcessWorker
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.stores import TenantStores

log = logging.getLogger(__name__)


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


def secret_box(settings: Settings) -> Fernet:
    if settings.secret_key is None:
        raise ValueError(
            "EFIMIS_SECRET_KEY is required when scaled out: it encrypts connection strings while their import "
            "is queued. Generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    try:
        return Fernet(settings.secret_key.get_secret_value().encode())
    except ValueError:
        raise ValueError(
            "EFIMIS_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None


class DistributedQueue:
    """Enqueues procrastinate jobs; the work happens in `efimis-etl worker` processes."""

    def __init__(self, settings: Settings, platform: Platform) -> None:
        from efimis_etl.jobs import distributed

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


def run_queued_import(
    settings: Settings, platform: Platform, stores: TenantStores, request_id: str, tenant: str
) -> None:
    """The body of a distributed import job, safe to run again after a worker died mid-way."""
    request = platform.get(request_id, tenant)
    if request is None or request["state"] not in (State.QUEUED, State.IMPORTING, State.VALIDATING):
        platform.delete_secret(request_id)
        return  # finished already; a duplicate delivery
    if request["state"] != State.QUEUED:
        log.warning("import %s: retrying after an interrupted attempt", request_id)
        stores.discard_staging(request_id)
        platform.restart_import(request_id)
    try:
        connection_string = _connection_string(settings, platform, request_id)
        if connection_string is None:
            return
        run_import(settings, platform, stores, request_id, tenant, parse_connection_string(connection_string))
    finally:
        platform.delete_secret(request_id)


def _connection_string(settings: Settings, platform: Platform, request_id: str) -> str | None:
    """The queued import's connection string, or None after failing the import saying why."""
    ciphertext = platform.secret(request_id)
    if ciphertext is not None:
        try:
            return secret_box(settings).decrypt(ciphertext).decode()
        except InvalidToken:
            code, reason = "secret-unreadable", "it cannot be decrypted (EFIMIS_SECRET_KEY changed)"
    else:
        code, reason = "secret-missing", "it is no longer stored"
    platform.transition(
        request_id,
        [State.QUEUED],
        State.FAILED,
        failure_code=code,
        failure_reason=f"The connection string of this import is unavailable: {reason}. Submit it again.",
        import_finished_at=now(),
    )
    return None
