"""The two jobs: import (source → staging → validation) and promotion (staging → production).

Each job owns its request's state transitions. Any failure ends the job in Failed / PromotionFailed with
a reason the user can act on; an import that fails discards its staging store, and a promotion that
fails has rolled back, so production is as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from efimis_etl.errors import EtlError, SourceError
from efimis_etl.jobs.state import Platform, State, now
from efimis_etl.promotion.promote import production_engine, promote
from efimis_etl.schema.model import ENTITIES
from efimis_etl.settings import Settings
from efimis_etl.source.connect import explain_connect_failure, open_source
from efimis_etl.source.connstr import Source, redact
from efimis_etl.source.extract import (
    check_conformance,
    check_schema_version,
    count_rows,
    read_batches,
    source_columns,
)
from efimis_etl.staging.store import FINDING, StagingStore
from efimis_etl.validation.rules import ERROR, RULES, run_rules

log = logging.getLogger(__name__)


def run_import(settings: Settings, platform: Platform, request_id: str, tenant: str, source: Source) -> None:
    if not platform.transition(request_id, [State.QUEUED], State.IMPORTING, import_started_at=now()):
        return  # already handled by an earlier delivery of this job
    staging: StagingStore | None = None
    try:
        staging = StagingStore.create(settings.staging_path(request_id))
        _extract_and_load(settings, platform, request_id, source, staging)
        platform.transition(request_id, [State.IMPORTING], State.VALIDATING)
        validation = validate(settings, request_id, tenant)
        outcome = State.VALIDATION_FAILED if validation["errors"] else State.VALIDATED
        platform.transition(
            request_id, [State.VALIDATING], outcome, validation=validation, import_finished_at=now()
        )
        log.info("import %s: %s", request_id, outcome)
    except Exception as error:
        code, reason = _reason(error)
        log.log(
            logging.INFO if isinstance(error, EtlError) else logging.ERROR,
            "import %s failed: %s",
            request_id,
            reason,
        )
        if staging is not None:
            staging.discard()
        platform.transition(
            request_id,
            [State.IMPORTING, State.VALIDATING],
            State.FAILED,
            failure_code=code,
            failure_reason=reason,
            import_finished_at=now(),
        )


def _extract_and_load(
    settings: Settings, platform: Platform, request_id: str, source: Source, staging: StagingStore
) -> None:
    connection = open_source(source)
    try:
        tables = source_columns(connection)
        check_schema_version(connection, tables)
        check_conformance(tables)
        expected = [(e.name, count_rows(connection, e)) for e in ENTITIES]
        platform.plan_tables(request_id, expected)
        for entity, (_, rows_expected) in zip(ENTITIES, expected, strict=True):
            read = 0
            for batch in read_batches(connection, entity, settings.batch_size):
                staging.load(entity, batch.rows, batch.findings)
                read += len(batch.rows)
                platform.progress(request_id, entity.name, read, read)
            if read != rows_expected:
                raise SourceError(
                    f"etl.{entity.name}: counted {rows_expected} rows but read {read} in ImportId order. "
                    "Rows without an ImportId, or rows changed during the import, cause this: give "
                    "every row an ImportId and do not change the tables while importing.",
                    code="row-count-mismatch",
                )
    except connection.errors as error:
        explained = explain_connect_failure(source, error)
        raise SourceError(
            f"Reading the source failed: {explained.message}", code="source-read-failed"
        ) from None
    finally:
        connection.close()


def validate(settings: Settings, request_id: str, tenant: str) -> dict[str, Any]:
    """Run every rule on the request's staging store; return the summary kept in the status."""
    production = settings.production_path(tenant)
    production_engine(production).dispose()  # so that references to promoted objects can be checked
    staging = StagingStore.open(settings.staging_path(request_id), attach={"production": production})
    try:
        with staging.engine.begin() as conn:
            run_rules(conn)
        with staging.engine.connect() as conn:
            by_rule = conn.execute(
                select(FINDING.c.Rule, FINDING.c.Severity, func.count())
                .group_by(FINDING.c.Rule, FINDING.c.Severity)
                .order_by(FINDING.c.Rule)
            ).all()
            first = (
                conn.execute(select(FINDING).order_by(FINDING.c.Id).limit(settings.findings_in_status))
                .mappings()
                .all()
            )
    finally:
        staging.engine.dispose()
    return {
        "errors": sum(n for _, severity, n in by_rule if severity == ERROR),
        "warnings": sum(n for _, severity, n in by_rule if severity != ERROR),
        "byRule": [
            {"rule": rule, "severity": severity, "count": n, "description": RULES[rule].title}
            for rule, severity, n in by_rule
        ],
        "findings": [finding_view(dict(f)) for f in first],
    }


def finding_view(row: dict[str, Any]) -> dict[str, Any]:
    rule = RULES[row["Rule"]]
    where = f"{row['TableName']} {row['ImportId']!r}" if row["ImportId"] is not None else row["TableName"]
    column = f".{row['ColumnName']}" if row["ColumnName"] else ""
    shown = f" = {row['Value']!r}" if row["Value"] is not None else ""
    return {
        "rule": rule.code,
        "severity": row["Severity"],
        "table": row["TableName"],
        "importId": row["ImportId"],
        "column": row["ColumnName"],
        "value": row["Value"],
        "message": f"{where}{column}{shown}: {row['Detail'] or rule.title}. {rule.fix}",
    }


def run_promotion(settings: Settings, platform: Platform, request_id: str, tenant: str) -> None:
    try:
        results = promote(settings.production_path(tenant), settings.staging_path(request_id), request_id)
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
    log.info("promotion %s: done", request_id)


def _reason(error: BaseException) -> tuple[str, str]:
    if isinstance(error, EtlError):
        return error.code, redact(error.message)
    if isinstance(error, SQLAlchemyError | OSError):
        detail = redact(str(getattr(error, "orig", None) or error)).splitlines()[0]
        return "internal-error", f"The service could not complete the job: {detail}"
    return "internal-error", f"Unexpected error ({type(error).__name__}); the service log has details."
