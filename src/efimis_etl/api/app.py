"""The HTTP API: FastAPI routes over `Service`. Errors are `{"error": {"code", "message"}}`."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from efimis_etl import __version__
from efimis_etl.api.models import (
    IMPORT_QUEUED,
    PROMOTION_STARTED,
    Accepted,
    ErrorBody,
    Finding,
    FindingsPage,
    IdMap,
    IdMapEntry,
    ImportRequest,
    ImportStatus,
    PromoteRequest,
    status_view,
)
from efimis_etl.errors import EtlError
from efimis_etl.schema.model import SCHEMA_VERSION
from efimis_etl.schema.reference import render_html, render_markdown
from efimis_etl.schema.tables import render_ddl
from efimis_etl.service import Conflict, NotFound, Service
from efimis_etl.settings import Settings, get_settings
from efimis_etl.source.connstr import ConnectionStringError
from efimis_etl.validation.run import FindingFilter

CSV_COLUMNS = ["rule", "severity", "table", "importId", "column", "value", "message"]
ERRORS = {404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}}


def finding_filter(
    rule: Annotated[str | None, Query(description="Only this rule code.")] = None,
    table: Annotated[str | None, Query(description="Only this table.")] = None,
    severity: Annotated[Literal["error", "warning"] | None, Query()] = None,
) -> FindingFilter:
    return FindingFilter(rule=rule, table=table, severity=severity)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = Service.embedded(settings)
        try:
            yield
        finally:
            app.state.service.worker.stop()

    app = FastAPI(
        title="Efimis ETL",
        version=__version__,
        summary="Import a law firm's data from SQL Server staging tables, validate it, promote it.",
        lifespan=lifespan,
    )

    def service(request: Request) -> Service:
        return request.app.state.service  # type: ignore[no-any-return]

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default body echoes the input, which would put a password in the response.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        return _error(422, "invalid-request", f"The request is not valid: {problems}.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http-error", str(exc.detail))

    @app.exception_handler(ConnectionStringError)
    async def bad_connection_string(_request: Request, exc: ConnectionStringError) -> JSONResponse:
        return _error(422, "invalid-connection-string", str(exc))

    @app.exception_handler(EtlError)
    async def etl_error(_request: Request, exc: EtlError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
        return _error(status, exc.code, exc.message)

    @app.post("/etl/import", status_code=202, response_model=Accepted, responses=ERRORS, tags=["import"])
    def start_import(body: ImportRequest, request: Request) -> Accepted:
        """Queue an import of the source database; poll `GET /etl/import-status/{requestId}`."""
        request_id = service(request).submit_import(body.connection_string)
        return Accepted(message=IMPORT_QUEUED, request_id=request_id)

    @app.post(
        "/etl/promote-to-production",
        status_code=202,
        response_model=Accepted,
        responses=ERRORS,
        tags=["import"],
    )
    def promote(body: PromoteRequest, request: Request) -> Accepted:
        """Promote a Validated import into the tenant's production data (atomic, idempotent)."""
        request_id = service(request).request_promotion(body.request_id)
        return Accepted(message=PROMOTION_STARTED, request_id=request_id)

    @app.get("/etl/import-status/{requestId}", response_model=ImportStatus, responses=ERRORS, tags=["import"])
    def import_status(requestId: str, request: Request) -> ImportStatus:  # noqa: N803 (path name is the contract's)
        """Where the import or promotion stands: state, progress per table, validation, failure reason."""
        return status_view(service(request).status(requestId))

    @app.get("/etl/import/{requestId}/id-map", response_model=IdMap, responses=ERRORS, tags=["import"])
    def import_id_map(
        requestId: str,  # noqa: N803
        request: Request,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> IdMap:
        """The platform reference of every object of a promoted import, by entity and ImportId."""
        total, items = service(request).id_map(requestId, offset=offset, limit=limit)
        return IdMap(
            request_id=requestId,
            total=total,
            offset=offset,
            limit=limit,
            items=[IdMapEntry.model_validate(i) for i in items],
        )

    @app.get(
        "/etl/import/{requestId}/findings", response_model=FindingsPage, responses=ERRORS, tags=["import"]
    )
    def findings(
        requestId: str,  # noqa: N803
        request: Request,
        where: Annotated[FindingFilter, Depends(finding_filter)],
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> FindingsPage:
        """Every validation finding of an import, a page at a time, filtered by rule, table or severity."""
        total, items = service(request).findings(requestId, where, offset=offset, limit=limit)
        return FindingsPage(
            request_id=requestId,
            total=total,
            offset=offset,
            limit=limit,
            items=[Finding.model_validate(i) for i in items],
        )

    @app.get("/etl/import/{requestId}/findings.csv", responses=ERRORS, tags=["import"])
    def findings_csv(
        requestId: str,  # noqa: N803
        request: Request,
        where: Annotated[FindingFilter, Depends(finding_filter)],
    ) -> StreamingResponse:
        """All findings as CSV (rule, severity, table, importId, column, value, message)."""
        rows = service(request).all_findings(requestId, where)  # raises 404/409 before streaming starts

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for number, row in enumerate(rows, 1):
                writer.writerow(row)
                if number % 1000 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="findings-{requestId}.csv"'},
        )

    @app.get(f"/etl/schema/Efimis-{SCHEMA_VERSION}.sql", response_class=PlainTextResponse, tags=["schema"])
    def schema_sql() -> Response:
        """The T-SQL that creates the staging tables in your SQL Server database."""
        return Response(
            render_ddl("tsql"),
            media_type="application/sql; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="Efimis-{SCHEMA_VERSION}.sql"'},
        )

    @app.get("/etl/schema-reference", tags=["schema"])
    def schema_reference(format: Literal["html", "markdown"] = "html") -> Response:
        """Every table, column, type, reference, enumeration and validation rule."""
        if format == "markdown":
            return PlainTextResponse(render_markdown(), media_type="text/markdown; charset=utf-8")
        return HTMLResponse(render_html())

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
