"""Routes of import requests: list, submit (and describe a connection string first), promote, cancel,
status, findings and the id map (JSON and CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from efimis_etl.api.dependencies import MAX_OFFSET, CallerDep, ServiceDep
from efimis_etl.api.errors import ERROR_RESPONSES
from efimis_etl.api.models import (
    IMPORT_QUEUED,
    PROMOTION_STARTED,
    Accepted,
    ConnectionStringRefused,
    ConnectionStringUnderstood,
    Finding,
    FindingsPage,
    IdMap,
    IdMapEntry,
    ImportRequest,
    ImportsPage,
    ImportStatus,
    PromoteRequest,
    import_summary,
    source_view,
    status_view,
)
from efimis_etl.jobs.state import State
from efimis_etl.validation.run import FindingFilter

CSV_COLUMNS = ["rule", "severity", "table", "importId", "column", "value", "message"]
ID_MAP_CSV_COLUMNS = ["entity", "importId", "reference"]
CSV_ROWS_PER_CHUNK = 1000

router = APIRouter(tags=["import"], responses=ERROR_RESPONSES)


def finding_filter(
    rule: Annotated[str | None, Query(description="Only this rule code.")] = None,
    table: Annotated[str | None, Query(description="Only this table.")] = None,
    severity: Annotated[Literal["error", "warning"] | None, Query()] = None,
) -> FindingFilter:
    return FindingFilter(rule=rule, table=table, severity=severity)


WhereDep = Annotated[FindingFilter, Depends(finding_filter)]


@router.get("/etl/imports", response_model=ImportsPage)
def list_imports(
    who: CallerDep,
    service: ServiceDep,
    state: Annotated[State | None, Query(description="Only requests in this state.")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ImportsPage:
    """The caller's firm's import requests, newest first: state, source (without its password), times,
    rows and validation counts. Lost a requestId? It is here."""
    total, requests = service.imports(who, state=state, offset=offset, limit=limit)
    return ImportsPage(total=total, offset=offset, limit=limit, imports=[import_summary(r) for r in requests])


@router.post(
    "/etl/connection-string/describe",
    response_model=ConnectionStringUnderstood | ConnectionStringRefused,
)
def describe_connection_string(
    body: ImportRequest,
    _who: CallerDep,
    service: ServiceDep,
) -> ConnectionStringUnderstood | ConnectionStringRefused:
    """How a connection string is understood — server, port or instance, database, user, encryption — or
    the message `POST /etl/import` would answer, naming what to fix. It never connects, and never shows
    the password."""
    try:
        source = service.describe_source(body.connection_string)
    except ValueError as error:  # ConnectionStringError, SourceRefused: messages hold no secret
        return ConnectionStringRefused(valid=False, message=str(error))
    return ConnectionStringUnderstood(valid=True, description=source_view(source))


@router.post("/etl/import", status_code=202, response_model=Accepted)
def start_import(body: ImportRequest, who: CallerDep, service: ServiceDep) -> Accepted:
    """Queue an import of the source database; poll `GET /etl/import-status/{requestId}`."""
    request_id = service.submit_import(who, body.connection_string)
    return Accepted(message=IMPORT_QUEUED, request_id=request_id)


@router.post("/etl/promote-to-production", status_code=202, response_model=Accepted)
def promote(body: PromoteRequest, who: CallerDep, service: ServiceDep) -> Accepted:
    """Promote a Validated import into the tenant's production data (atomic, idempotent). With
    `productionRevision` (from its preview): 409 naming the imports that moved production since, and
    nothing written."""
    request_id = service.request_promotion(who, body.request_id, production_revision=body.production_revision)
    return Accepted(message=PROMOTION_STARTED, request_id=request_id)


@router.post("/etl/import/{requestId}/cancel", status_code=202, response_model=ImportStatus)
def cancel_import(requestId: str, who: CallerDep, service: ServiceDep) -> ImportStatus:  # noqa: N803
    """Cancel a Queued, Importing or Validating import. It is `Cancelled` at once; its job stops within
    seconds, its staging data is deleted, and then `importFinishedAt` is set. 409 for a promotion (one
    transaction: it finishes or rolls back on its own) or a request that has ended."""
    return status_view(service.cancel(who, requestId))


@router.get("/etl/import-status/{requestId}", response_model=ImportStatus)
def import_status(requestId: str, who: CallerDep, service: ServiceDep) -> ImportStatus:  # noqa: N803
    """Where the import or promotion stands: state, progress per table, validation, failure reason."""
    return status_view(service.status(who, requestId))


@router.get("/etl/import/{requestId}/id-map", response_model=IdMap)
def import_id_map(
    requestId: str,  # noqa: N803
    who: CallerDep,
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> IdMap:
    """The platform reference of every object of a promoted import, by entity and ImportId."""
    total, items = service.id_map(who, requestId, offset=offset, limit=limit)
    entries = [IdMapEntry.model_validate(i) for i in items]
    return IdMap(request_id=requestId, total=total, offset=offset, limit=limit, items=entries)


@router.get("/etl/import/{requestId}/id-map.csv")
def import_id_map_csv(requestId: str, who: CallerDep, service: ServiceDep) -> StreamingResponse:  # noqa: N803
    """The whole id map as CSV (entity, importId, reference), in the JSON id map's order."""
    rows = service.all_id_map(who, requestId)  # raises 404/409/410 before streaming starts
    return StreamingResponse(
        _csv_chunks(rows, ID_MAP_CSV_COLUMNS),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="id-map-{requestId}.csv"'},
    )


@router.get("/etl/import/{requestId}/findings", response_model=FindingsPage)
def findings(
    requestId: str,  # noqa: N803
    where: WhereDep,
    who: CallerDep,
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> FindingsPage:
    """Every validation finding of an import, a page at a time, filtered by rule, table or severity."""
    total, items = service.findings(who, requestId, where, offset=offset, limit=limit)
    found = [Finding.model_validate(i) for i in items]
    return FindingsPage(request_id=requestId, total=total, offset=offset, limit=limit, items=found)


@router.get("/etl/import/{requestId}/findings.csv")
def findings_csv(
    requestId: str,  # noqa: N803
    where: WhereDep,
    who: CallerDep,
    service: ServiceDep,
) -> StreamingResponse:
    """All findings as CSV (rule, severity, table, importId, column, value, message)."""
    rows = service.all_findings(who, requestId, where)  # raises 404/409 before streaming starts
    return StreamingResponse(
        _csv_chunks(rows, CSV_COLUMNS),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="findings-{requestId}.csv"'},
    )


def _csv_chunks(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """The CSV a thousand rows at a time: any number of rows in little memory, without a write per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for number, row in enumerate(rows, 1):
        writer.writerow(row)
        if number % CSV_ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
