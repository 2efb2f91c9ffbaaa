"""Routes around a promotion: its preview (summary, paged changes, CSV) and the revert."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from efimis_etl.api.dependencies import MAX_OFFSET, CallerDep, ServiceDep
from efimis_etl.api.errors import ERROR_RESPONSES
from efimis_etl.api.models import (
    ChangesPage,
    ColumnChange,
    ImportStatus,
    PromotionPreview,
    RowChange,
    TablePreview,
    status_view,
)
from efimis_etl.promotion.promote import Change

CSV_COLUMNS = ["table", "importId", "column", "before", "after"]
CSV_ROWS_PER_CHUNK = 1000

router = APIRouter(tags=["promotion"], responses={**ERROR_RESPONSES, 410: ERROR_RESPONSES[409]})


def _row(change: Change) -> RowChange:
    return RowChange(
        import_id=change.import_id,
        changes=[ColumnChange(column=c, before=b, after=a) for c, b, a in change.columns],
    )


@router.get("/etl/import/{requestId}/promotion-preview", response_model=PromotionPreview)
def promotion_preview(
    requestId: str,  # noqa: N803
    who: CallerDep,
    service: ServiceDep,
    sample: Annotated[int, Query(ge=0, le=100, description="Updated rows shown per table.")] = 5,
) -> PromotionPreview:
    """What promoting this import would do now, per table (writes nothing): rows inserted, updated and
    unchanged, a sample of the updated rows' changed columns, and the production revision it was
    computed against (pass it as `productionRevision` to the promotion)."""
    preview = service.preview(who, requestId, sample=sample)
    tables = [
        TablePreview(
            table=r.entity,
            rows=r.rows,
            inserted=r.inserted,
            updated=r.updated,
            unchanged=r.unchanged,
            sample=[_row(c) for c in preview["samples"][r.entity]],
        )
        for r in preview["tables"]
    ]
    return PromotionPreview(request_id=requestId, production_revision=preview["revision"], tables=tables)


@router.get("/etl/import/{requestId}/promotion-preview/changes", response_model=ChangesPage)
def promotion_preview_changes(
    requestId: str,  # noqa: N803
    who: CallerDep,
    service: ServiceDep,
    table: Annotated[str, Query(description="The table, such as Matter.")],
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> ChangesPage:
    """Every row of `table` the promotion would update, with its changed columns, a page at a time."""
    total, items = service.preview_changes(who, requestId, table, offset=offset, limit=limit)
    return ChangesPage(
        request_id=requestId,
        table=table,
        total=total,
        offset=offset,
        limit=limit,
        items=[_row(c) for c in items],
    )


@router.get("/etl/import/{requestId}/promotion-preview/changes.csv")
def promotion_preview_changes_csv(requestId: str, who: CallerDep, service: ServiceDep) -> StreamingResponse:  # noqa: N803
    """Every changed column of every row the promotion would update, as CSV (table, importId, column,
    before, after)."""
    rows = service.all_preview_changes(who, requestId)  # raises 404/409/410 before streaming starts
    return StreamingResponse(
        _csv_chunks(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="promotion-preview-{requestId}.csv"'},
    )


def _csv_chunks(rows: Iterable[Change]) -> Iterator[str]:
    """The CSV a thousand lines at a time: any number of changes in little memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    lines = 0
    for change in rows:
        for column, before, after in change.columns:
            writer.writerow([change.table, change.import_id, column, before, after])
            lines += 1
            if lines % CSV_ROWS_PER_CHUNK == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.post("/etl/import/{requestId}/revert", response_model=ImportStatus)
def revert_import(requestId: str, who: CallerDep, service: ServiceDep) -> ImportStatus:  # noqa: N803
    """Undo a Promoted import's promotion in one transaction: rows it inserted are deleted, rows it updated
    get back their values from before it; then it is Reverted. 409 naming later imports that changed the
    same rows (revert those first); 410 once EFIMIS_REVERT_DAYS have passed since it was promoted."""
    return status_view(service.revert(who, requestId))
