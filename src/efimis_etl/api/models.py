"""Request and response bodies of the HTTP API (JSON in camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from efimis_etl.source.connstr import Source, SqlServerSource
from efimis_etl.timestamps import iso_z

IMPORT_QUEUED = "Import request queued successfully."
PROMOTION_STARTED = "Promotion to production started."
MAX_CONNECTION_STRING = 8192

# A UTC instant, shown as ISO-8601 with `Z` and milliseconds (2024-05-01T09:30:00.123Z).
Timestamp = Annotated[
    datetime,
    PlainSerializer(iso_z, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2024-05-01T09:30:00.123Z"]}),
]


class Out(BaseModel):
    """A response body: camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Body(Out):
    """A request body: unknown fields are refused rather than silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ImportRequest(Body):
    connection_string: str = Field(
        min_length=1,
        max_length=MAX_CONNECTION_STRING,
        description="A SQL Server connection string (ADO.NET, ODBC, JDBC or mssql:// URL). "
        "For development, also a SQLAlchemy URL of a SQLite or PostgreSQL source.",
        examples=["Server=tcp:db.example.com,1433;Initial Catalog=Firm;User ID=etl;Password=…;Encrypt=True"],
    )


class PromoteRequest(Body):
    request_id: str = Field(
        min_length=1, max_length=64, description="The requestId returned by POST /etl/import."
    )
    production_revision: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description="The productionRevision of the preview the caller saw: if production has moved since "
        "(another import was promoted or reverted), 409 and nothing is written. Leave it out to promote "
        "whatever production holds.",
    )


class Accepted(Out):
    message: str
    request_id: str


class Figures(Out):
    rows: int
    sums: dict[str, str] = Field(description="Sum of each money column, exact.")
    first: dict[str, str] = Field(description="Earliest value of each date column.")
    last: dict[str, str] = Field(description="Latest value of each date column.")
    digest: str | None = Field(
        description="Order-independent digest of the ImportIds (not measured at the source)."
    )


class Reconciliation(Out):
    verified: bool = Field(
        description="Source, read and loaded figures agree; only then may the import be promoted."
    )
    source: Figures = Field(
        description="Measured by the source database itself (sums: not for SQLite sources)."
    )
    read: Figures
    loaded: Figures = Field(description="Measured in the staging store after loading.")


class TableProgress(Out):
    table: str
    rows_expected: int | None
    rows_read: int
    rows_loaded: int
    reconciliation: Reconciliation | None


class Progress(Out):
    rows_expected: int | None
    rows_loaded: int
    percent: float | None = Field(description="Rows loaded as a percentage of rows counted in the source.")


class RuleCount(Out):
    rule: str
    severity: str
    count: int
    description: str


class Finding(Out):
    rule: str
    severity: str
    table: str
    import_id: str | None
    column: str | None
    value: str | None
    message: str


class Validation(Out):
    errors: int
    warnings: int
    by_rule: list[RuleCount]
    findings: list[Finding] = Field(description="The first findings, in the order the rules found them.")


class TablePromotion(Out):
    table: str
    rows: int
    inserted: int
    updated: int
    unchanged: int


class Promotion(Out):
    tables: list[TablePromotion] = Field(default_factory=list)
    revision: int | None = Field(None, description="The production revision this promotion made.")
    expected_revision: int | None = Field(
        None, description="The productionRevision the promotion was requested with, if any."
    )
    reverted_revision: int | None = Field(None, description="The production revision of its revert.")
    reverted_by: str | None = Field(None, description="The client that reverted it.")
    reverted_at: str | None = None


class Failure(Out):
    code: str
    reason: str


class AttemptWorker(Out):
    attempt: int = Field(description="1 for the first attempt, 2 after a worker died and another began anew.")
    worker: str = Field(description="The worker process that started it, as host:pid.")
    started_at: Timestamp


class ImportStatus(Out):
    request_id: str
    state: str = Field(
        description="Queued, Importing, Validating, then Validated, ValidationFailed or Failed (or Cancelled); "
        "then Promoting, Promoted or PromotionFailed; a Promoted import that was reverted is Reverted."
    )
    source: str = Field(description="The source database, described without its password.")
    created_at: Timestamp
    updated_at: Timestamp
    import_started_at: Timestamp | None = Field(description="When the latest attempt started.")
    import_finished_at: Timestamp | None
    promotion_requested_at: Timestamp | None
    promotion_finished_at: Timestamp | None
    attempts: int = Field(
        description="How many times a worker started the import: more than 1 after a worker died and the "
        "import was started again from nothing."
    )
    attempt_workers: list[AttemptWorker] = Field(
        description="Which worker process (host:pid) started each attempt, oldest first; scaled out, the "
        "procrastinate worker of the same name."
    )
    progress: Progress
    tables: list[TableProgress]
    validation: Validation | None
    promotion: Promotion | None
    failure: Failure | None
    worker_pid: int | None = Field(
        None,
        description="The process running this request's job right now (embedded default; null when no job "
        "runs, and scaled out), for operators.",
    )


class IdMapEntry(Out):
    entity: str
    import_id: str
    reference: str = Field(description="The platform reference, such as matter_<32 hex digits>.")


class IdMap(Out):
    request_id: str
    total: int
    offset: int
    limit: int
    items: list[IdMapEntry]


class FindingsPage(Out):
    request_id: str
    total: int
    offset: int
    limit: int
    items: list[Finding]


class AuditEvent(Out):
    at: Timestamp
    actor: str = Field(description="The client id from the token, or 'worker' for a job's outcome.")
    action: str
    request_id: str | None
    remote_address: str | None
    outcome: str
    detail: str | None


class AuditPage(Out):
    total: int
    offset: int
    limit: int
    items: list[AuditEvent]


class ImportSummary(Out):
    request_id: str
    state: str
    source: str = Field(description="The source database, described without its password.")
    created_at: Timestamp
    import_finished_at: Timestamp | None
    promotion_finished_at: Timestamp | None
    rows_loaded: int
    rows_expected: int | None = Field(description="Rows counted in the source; null until counted.")
    errors: int | None = Field(description="Validation errors; null until validation has run.")
    warnings: int | None = Field(description="Validation warnings; null until validation has run.")


class ImportsPage(Out):
    total: int
    offset: int
    limit: int
    imports: list[ImportSummary] = Field(description="Newest first.")


class SourceDescription(Out):
    kind: Literal["sqlserver", "sqlite", "postgresql"]
    server: str | None = Field(description="The host (SQL Server, PostgreSQL).")
    port: int | None
    instance: str | None = Field(description="A SQL Server named instance.")
    database: str | None = Field(description="The database (for SQLite, the file).")
    user: str | None
    password_given: bool = Field(description="Whether the string holds a password (never shown).")
    encrypt: str | None = Field(description="SQL Server's Encrypt: yes, no, optional or strict.")
    trust_server_certificate: bool | None
    summary: str = Field(description="The one-line description the import's status shows.")


class ConnectionStringUnderstood(Out):
    valid: Literal[True]
    description: SourceDescription


class ConnectionStringRefused(Out):
    valid: Literal[False]
    message: str = Field(description="What POST /etl/import would answer, naming what to fix.")


def source_view(source: Source) -> SourceDescription:
    """What a connection string says, without its password."""
    if isinstance(source, SqlServerSource):
        return SourceDescription(
            kind="sqlserver",
            server=source.host,
            port=source.port,
            instance=source.instance,
            database=source.database,
            user=source.user,
            password_given=bool(source.password),
            encrypt=source.encrypt,
            trust_server_certificate=source.trust_server_certificate,
            summary=source.describe(),
        )
    url = source.url
    sqlite = url.get_backend_name() == "sqlite"
    return SourceDescription(
        kind="sqlite" if sqlite else "postgresql",
        server=None if sqlite else url.host,
        port=None if sqlite else url.port,
        instance=None,
        database=url.database,
        user=None if sqlite else url.username,
        password_given=url.password is not None,
        encrypt=None,
        trust_server_certificate=None,
        summary=source.describe(),
    )


def import_summary(request: dict[str, Any]) -> ImportSummary:
    # As the status counts them: no tables yet, nothing expected; a table not yet counted, none.
    expected = int(request["rows_expected"] or 0) if request["tables"] else None
    return ImportSummary(
        request_id=request["id"],
        state=request["state"],
        source=request["source"],
        created_at=request["created_at"],
        import_finished_at=request["import_finished_at"],
        promotion_finished_at=request["promotion_finished_at"],
        rows_loaded=int(request["rows_loaded"] or 0),
        rows_expected=expected,
        errors=request["errors"],
        warnings=request["warnings"],
    )


class ColumnChange(Out):
    column: str
    before: str | None = Field(description="The value in production now (money exact, dates ISO).")
    after: str | None = Field(
        description="The value the promotion would write; a reference to an object not yet in production "
        "reads prefix_new:<ImportId>."
    )


class RowChange(Out):
    import_id: str
    changes: list[ColumnChange]


class TablePreview(Out):
    table: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    sample: list[RowChange] = Field(description="The first updated rows, in ImportId order.")


class PromotionPreview(Out):
    request_id: str
    production_revision: int = Field(
        description="The production revision this preview was computed against: promote with it to "
        "promote only if production has not moved since."
    )
    tables: list[TablePreview]


class ChangesPage(Out):
    request_id: str
    table: str
    total: int
    offset: int
    limit: int
    items: list[RowChange]


class ErrorDetail(Out):
    code: str
    message: str


class ErrorBody(Out):
    error: ErrorDetail


def status_view(status: dict[str, Any]) -> ImportStatus:
    tables = [
        TableProgress(
            table=t["name"],
            rows_expected=t["rows_expected"],
            rows_read=t["rows_read"],
            rows_loaded=t["rows_loaded"],
            reconciliation=Reconciliation.model_validate(t["reconciliation"])
            if t.get("reconciliation")
            else None,
        )
        for t in status["tables"]
    ]
    expected = sum(t.rows_expected or 0 for t in tables) if tables else None
    loaded = sum(t.rows_loaded for t in tables)
    percent = round(100.0 * loaded / expected, 1) if expected else (100.0 if tables else None)
    failure = (
        Failure(code=status["failure_code"] or "failed", reason=status["failure_reason"])
        if status["failure_reason"]
        else None
    )
    return ImportStatus(
        request_id=status["id"],
        state=status["state"],
        source=status["source"],
        created_at=status["created_at"],
        updated_at=status["updated_at"],
        import_started_at=status["import_started_at"],
        import_finished_at=status["import_finished_at"],
        promotion_requested_at=status["promotion_requested_at"],
        promotion_finished_at=status["promotion_finished_at"],
        attempts=status["attempts"],
        attempt_workers=[AttemptWorker.model_validate(a) for a in status.get("attempt_workers") or []],
        progress=Progress(rows_expected=expected, rows_loaded=loaded, percent=percent),
        tables=tables,
        validation=Validation.model_validate(status["validation"]) if status["validation"] else None,
        promotion=Promotion.model_validate(status["promotion"]) if status["promotion"] else None,
        failure=failure,
        worker_pid=status.get("worker_pid"),
    )
