"""The two jobs: import (source → staging → validation) and promotion (staging → production).

Each job owns its request's state transitions. Any failure ends the job in Failed / PromotionFailed with
a reason the user can act on; an import that fails discards its staging store, and a promotion that
fails has rolled back, so production is as it was. A cancelled import (the service set it Cancelled)
stops between batches, or at its next transition, drops its staging store and records that it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy.exc import SQLAlchemyError

from efimis_etl.errors import EtlError, SourceError
from efimis_etl.jobs.secrets import secret_box
from efimis_etl.jobs.state import CANCELLABLE, IMPORT_REQUEST, Platform, State, now
from efimis_etl.promotion.promote import promote_revision
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import Source, parse_connection_string, redact
from efimis_etl.source.policy import SourceRefused, check_source
from efimis_etl.staging.load import load_from_source
from efimis_etl.stores import TenantStores
from efimis_etl.timestamps import iso_z
from efimis_etl.validation.run import validate

log = logging.getLogger(__name__)


Stop = Callable[[], bool]

# Why a job ended when the service stopped before it did (on the next start, or as the service stops).
INTERRUPTED_IMPORT = (
    "The service stopped before this import finished; nothing was kept. Submit the import again."
)
INTERRUPTED_PROMOTION = (
    "The service stopped during the promotion. Production is either fully promoted or unchanged; "
    "promote again to finish it."
)


class JobCancelled(Exception):
    """The request was cancelled while its job ran: the job stops between batches and cleans up."""


def _never() -> bool:
    return False


def run_import(
    settings: Settings,
    platform: Platform,
    stores: TenantStores,
    request_id: str,
    tenant: str,
    source: Source,
    *,
    should_stop: Stop = _never,
) -> State | None:
    """Import, then validate; returns the state the request ended in, or None if another delivery of the
    job had started it. `should_stop` is asked between batches: true means the request was cancelled."""
    started = now()
    if not platform.transition(
        request_id,
        [State.QUEUED],
        State.IMPORTING,
        import_started_at=started,
        attempts=IMPORT_REQUEST.c.attempts + 1,
        attempt_workers=_attempt_workers(platform, request_id, tenant, started),
    ):
        # Cancelled before it started (then its cancellation is finished here), or handled already.
        return State.CANCELLED if settle_cancelled(platform, stores, request_id, tenant) else None
    try:
        _load(settings, platform, stores, request_id, source, should_stop)
        # Each step is a compare-and-set: a request cancelled meanwhile is no longer Importing/Validating.
        if not platform.transition(request_id, [State.IMPORTING], State.VALIDATING):
            raise JobCancelled
        validation = validate(stores, request_id, tenant, first=settings.findings_in_status)
        outcome = State.VALIDATION_FAILED if validation["errors"] else State.VALIDATED
        if not platform.transition(
            request_id, [State.VALIDATING], outcome, validation=validation, import_finished_at=now()
        ):
            raise JobCancelled
        platform.audit(tenant, "worker", "import-finished", outcome, request_id=request_id)
        log.info("import %s: %s", request_id, outcome)
        return outcome
    except JobCancelled:
        if settle_cancelled(platform, stores, request_id, tenant):
            log.info("import %s: cancelled; stopped", request_id)
            return State.CANCELLED
        if not should_stop():  # a transition failed: a retried attempt of this job owns the request now
            log.warning("import %s: another attempt has taken over; this one stops", request_id)
            return None
        # Asked to stop by something other than a cancellation (a queue's own abort): still an ending.
        reason = "The import's job was stopped before it finished; nothing was kept. Submit the import again."
        return abandon_import(platform, stores, request_id, tenant, code="stopped", reason=reason)
    except Exception as error:
        code, reason = _reason(error)
        log.log(
            logging.INFO if isinstance(error, EtlError) else logging.ERROR,
            "import %s failed: %s",
            request_id,
            reason,
        )
        return abandon_import(platform, stores, request_id, tenant, code=code, reason=reason)


def _load(
    settings: Settings,
    platform: Platform,
    stores: TenantStores,
    request_id: str,
    source: Source,
    should_stop: Stop,
) -> None:
    """Read the source into a new staging store, recording progress; checks `should_stop` per batch."""

    def checked(record: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            if should_stop():
                raise JobCancelled
            record(*args)

        return call

    try:  # again at connect time: the host's address may have changed since it was submitted
        check_source(source, settings.source_policy())
    except SourceRefused as refused:
        raise SourceError(str(refused), code="source-refused") from None
    staging = stores.create_staging(request_id)
    try:
        load_from_source(
            source,
            staging,
            policy=settings.read_policy(),
            on_plan=checked(lambda expected: platform.plan_tables(request_id, expected)),
            on_progress=checked(lambda table, rows: platform.progress(request_id, table, rows, rows)),
            on_reconciled=checked(lambda table, figures: platform.reconciled(request_id, table, figures)),
        )
    finally:
        stores.close_staging(staging)
    if should_stop():
        raise JobCancelled


def settle_cancelled(platform: Platform, stores: TenantStores, request_id: str, tenant: str) -> bool:
    """If the request was cancelled, drop its staging store and record that its job has stopped; False
    (touching nothing) if it was not cancelled. Safe to run more than once, from any process."""
    request = platform.get(request_id, tenant)
    if request is None or request["state"] != State.CANCELLED:
        return False
    stores.discard_staging(request_id)
    if platform.mark_stopped(request_id):
        platform.audit(tenant, "worker", "import-finished", State.CANCELLED, request_id=request_id)
    return True


def abandon_import(
    platform: Platform, stores: TenantStores, request_id: str, tenant: str, *, code: str, reason: str
) -> State:
    """End an import that cannot go on (it failed, its process died, the service stopped): Failed with
    the reason, its staging store dropped. One that was cancelled meanwhile stays Cancelled."""
    stores.discard_staging(request_id)
    if not platform.transition(
        request_id,
        [State.QUEUED, State.IMPORTING, State.VALIDATING],
        State.FAILED,
        failure_code=code,
        failure_reason=reason,
        import_finished_at=now(),
    ):
        return State.CANCELLED if settle_cancelled(platform, stores, request_id, tenant) else State.FAILED
    platform.audit(tenant, "worker", "import-finished", State.FAILED, request_id=request_id, detail=code)
    return State.FAILED


def abandon_promotion(platform: Platform, request_id: str, tenant: str, *, code: str, reason: str) -> None:
    """End a promotion whose job stopped without an outcome (its process died, the service stopped)."""
    if platform.transition(
        request_id,
        [State.PROMOTING],
        State.PROMOTION_FAILED,
        failure_code=code,
        failure_reason=reason,
        promotion_finished_at=now(),
    ):
        platform.audit(
            tenant, "worker", "promotion-finished", State.PROMOTION_FAILED, request_id=request_id, detail=code
        )


def run_promotion(
    platform: Platform, stores: TenantStores, request_id: str, tenant: str, *, keep_days: float = 30
) -> None:
    platform.mark(request_id, promotion_started_at=now())
    request = platform.get(request_id, tenant) or {}
    # Set by the promotion request when the caller named the production revision it previewed.
    expected = (request.get("promotion") or {}).get("expectedRevision")
    try:
        promoted = promote_revision(
            stores, request_id, tenant, expected_revision=expected, keep_days=keep_days
        )
        results = promoted.tables
    except Exception as error:
        code, reason = _reason(error)
        log.error("promotion %s failed: %s", request_id, reason)
        abandon_promotion(
            platform,
            request_id,
            tenant,
            code=code,
            reason=f"{reason} Production is unchanged; promote again once this is fixed.",
        )
        return
    summary = {
        "tables": [
            {
                "table": r.entity,
                "rows": r.rows,
                "inserted": r.inserted,
                "updated": r.updated,
                "unchanged": r.unchanged,
            }
            for r in results
        ],
        "revision": promoted.revision,
    }
    platform.transition(
        request_id,
        [State.PROMOTING],
        State.PROMOTED,
        promotion=summary,
        promotion_finished_at=now(),
        failure_code=None,
        failure_reason=None,
    )
    platform.audit(tenant, "worker", "promotion-finished", State.PROMOTED, request_id=request_id)
    log.info("promotion %s: done", request_id)


def _reason(error: BaseException) -> tuple[str, str]:
    if isinstance(error, EtlError):
        return error.code, redact(error.message)
    if isinstance(error, SQLAlchemyError | OSError):
        detail = redact(str(getattr(error, "orig", None) or error)).splitlines()[0]
        return "internal-error", f"The service could not complete the job: {detail}"
    return "internal-error", f"Unexpected error ({type(error).__name__}); the service log has details."


def worker_name() -> str:
    """This process, as the status names the worker of an attempt (and scaled out, procrastinate too)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _attempt_workers(
    platform: Platform, request_id: str, tenant: str, started: datetime
) -> list[dict[str, Any]]:
    """The request's attempts so far and this one, started by this process."""
    request = platform.get(request_id, tenant) or {}
    earlier = list(request.get("attempt_workers") or [])
    attempt = {"attempt": len(earlier) + 1, "worker": worker_name(), "startedAt": iso_z(started)}
    return [*earlier, attempt]


def run_queued_import(
    settings: Settings,
    platform: Platform,
    stores: TenantStores,
    request_id: str,
    tenant: str,
    *,
    should_stop: Stop = _never,
) -> State | None:
    """The body of a distributed import job, safe to run again after a worker died mid-way; returns the
    state the request ended in (None: nothing to do)."""
    request = platform.get(request_id, tenant)
    if request is None or request["state"] not in CANCELLABLE:
        platform.delete_secret(request_id)
        # A request cancelled after this job was fetched, or whose worker died before it had stopped.
        return State.CANCELLED if settle_cancelled(platform, stores, request_id, tenant) else None
    if request["state"] != State.QUEUED:
        log.warning("import %s: retrying after an interrupted attempt", request_id)
        stores.discard_staging(request_id)
        platform.restart_import(request_id)
    try:
        connection_string = _connection_string(settings, platform, request_id)
        if connection_string is None:
            return State.FAILED
        source = parse_connection_string(connection_string)
        return run_import(settings, platform, stores, request_id, tenant, source, should_stop=should_stop)
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
