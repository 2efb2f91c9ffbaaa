"""The two jobs: import (source → staging → validation) and promotion (staging → production).

Each job owns its request's state transitions. Any failure ends the job in Failed / PromotionFailed with
a reason the user can act on; an import that fails discards its staging store, and a promotion that
fails has rolled back, so production is as it was.
"""

from __future__ import annotations

import logging

from cryptography.fernet import InvalidToken
from sqlalchemy.exc import SQLAlchemyError

from efimis_etl.errors import EtlError, SourceError
from efimis_etl.jobs.secrets import secret_box
from efimis_etl.jobs.state import IMPORT_REQUEST, Platform, State, now
from efimis_etl.promotion.promote import promote
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import Source, parse_connection_string, redact
from efimis_etl.source.policy import SourceRefused, check_source
from efimis_etl.staging.load import load_from_source
from efimis_etl.stores import TenantStores
from efimis_etl.validation.run import validate

log = logging.getLogger(__name__)


def run_import(
    settings: Settings, platform: Platform, stores: TenantStores, request_id: str, tenant: str, source: Source
) -> None:
    if not platform.transition(
        request_id,
        [State.QUEUED],
        State.IMPORTING,
        import_started_at=now(),
        attempts=IMPORT_REQUEST.c.attempts + 1,
    ):
        return  # already handled by an earlier delivery of this job
    try:
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
                on_plan=lambda expected: platform.plan_tables(request_id, expected),
                on_progress=lambda table, rows: platform.progress(request_id, table, rows, rows),
                on_reconciled=lambda table, figures: platform.reconciled(request_id, table, figures),
            )
        finally:
            stores.close_staging(staging)
        platform.transition(request_id, [State.IMPORTING], State.VALIDATING)
        validation = validate(stores, request_id, tenant, first=settings.findings_in_status)
        outcome = State.VALIDATION_FAILED if validation["errors"] else State.VALIDATED
        platform.transition(
            request_id, [State.VALIDATING], outcome, validation=validation, import_finished_at=now()
        )
        platform.audit(tenant, "worker", "import-finished", outcome, request_id=request_id)
        log.info("import %s: %s", request_id, outcome)
    except Exception as error:
        code, reason = _reason(error)
        log.log(
            logging.INFO if isinstance(error, EtlError) else logging.ERROR,
            "import %s failed: %s",
            request_id,
            reason,
        )
        stores.discard_staging(request_id)
        platform.transition(
            request_id,
            [State.IMPORTING, State.VALIDATING],
            State.FAILED,
            failure_code=code,
            failure_reason=reason,
            import_finished_at=now(),
        )
        platform.audit(tenant, "worker", "import-finished", State.FAILED, request_id=request_id, detail=code)


def run_promotion(platform: Platform, stores: TenantStores, request_id: str, tenant: str) -> None:
    platform.mark(request_id, promotion_started_at=now())
    try:
        results = promote(stores, request_id, tenant)
    except Exception as error:
        code, reason = _reason(error)
        log.error("promotion %s failed: %s", request_id, reason)
        platform.transition(
            request_id,
            [State.PROMOTING],
            State.PROMOTION_FAILED,
            failure_code=code,
            failure_reason=f"{reason} Production is unchanged; promote again once this is fixed.",
            promotion_finished_at=now(),
        )
        platform.audit(
            tenant, "worker", "promotion-finished", State.PROMOTION_FAILED, request_id=request_id, detail=code
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
        ]
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
