"""The HTTP API: FastAPI routes over `Service`. Errors are `{"error": {"code", "message"}}`."""

from __future__ import annotations

import base64
import csv
import io
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from efimis_etl import __version__
from efimis_etl.api.models import (
    IMPORT_QUEUED,
    PROMOTION_STARTED,
    Accepted,
    AuditEvent,
    AuditPage,
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
from efimis_etl.identity import AuthError, EmbeddedIssuer, TokenVerifier
from efimis_etl.logs import install_redaction
from efimis_etl.schema.model import SCHEMA_VERSION
from efimis_etl.schema.reference import render_html, render_markdown
from efimis_etl.schema.tables import render_ddl
from efimis_etl.service import Caller, Conflict, Gone, NotFound, Service, TooManyImports
from efimis_etl.settings import Settings, get_settings
from efimis_etl.source.connstr import ConnectionStringError
from efimis_etl.source.policy import SourceRefused
from efimis_etl.validation.run import FindingFilter

MAX_OFFSET = 10**12  # far beyond any real page, and within the databases' 64-bit integers
CSV_COLUMNS = ["rule", "severity", "table", "importId", "column", "value", "message"]
ERRORS = {404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}}


def finding_filter(
    rule: Annotated[str | None, Query(description="Only this rule code.")] = None,
    table: Annotated[str | None, Query(description="Only this table.")] = None,
    severity: Annotated[Literal["error", "warning"] | None, Query()] = None,
) -> FindingFilter:
    return FindingFilter(rule=rule, table=table, severity=severity)


def caller(request: Request) -> Caller:
    principal = request.app.state.verifier.verify(request.headers.get("authorization"))
    remote = request.client.host if request.client else None
    return Caller(tenant=principal.tenant, client_id=principal.client_id, remote_address=remote)


CallerDep = Annotated[Caller, Depends(caller)]


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413) before they are read whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _error(413, "body-too-large", f"Request bodies are limited to {self.limit} bytes.")(
                scope, receive, send
            )
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await _error(413, "body-too-large", f"Request bodies are limited to {self.limit} bytes.")(
                scope, receive, send
            )


class BodyTooLarge(Exception):
    pass


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    install_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service.start(settings)
        issuer = EmbeddedIssuer(settings, service.platform.engine) if settings.auth_jwks_url is None else None
        if issuer is not None and (secret := issuer.ensure_demo_client()) is not None:
            # Printed once, never logged or stored in clear: the next start finds the client exists.
            sys.stderr.write(
                "Efimis ETL: created the demo client for tenant "
                f"{settings.tenant!r}. Its secret is shown only now:\n"
                f"  export EFIMIS_CLIENT_ID={settings.demo_client_id}\n  export EFIMIS_CLIENT_SECRET={secret}\n"
            )
        app.state.service = service
        app.state.issuer = issuer
        app.state.verifier = TokenVerifier(settings, issuer)
        try:
            yield
        finally:
            service.queue.stop()

    app = FastAPI(
        title="Efimis ETL",
        version=__version__,
        summary="Import a law firm's data from SQL Server staging tables, validate it, promote it.",
        lifespan=lifespan,
    )

    def service(request: Request) -> Service:
        return request.app.state.service  # type: ignore[no-any-return]

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

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

    @app.exception_handler(SourceRefused)
    async def refused_source(_request: Request, exc: SourceRefused) -> JSONResponse:
        return _error(422, "source-refused", str(exc))

    @app.exception_handler(AuthError)
    async def unauthenticated(_request: Request, exc: AuthError) -> JSONResponse:
        response = _error(401, "unauthenticated", str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response

    @app.exception_handler(EtlError)
    async def etl_error(_request: Request, exc: EtlError) -> JSONResponse:
        status = {NotFound: 404, Conflict: 409, Gone: 410, TooManyImports: 429}.get(type(exc), 400)
        return _error(status, exc.code, exc.message)

    @app.post("/etl/import", status_code=202, response_model=Accepted, responses=ERRORS, tags=["import"])
    def start_import(body: ImportRequest, request: Request, who: CallerDep) -> Accepted:
        """Queue an import of the source database; poll `GET /etl/import-status/{requestId}`."""
        request_id = service(request).submit_import(who, body.connection_string)
        return Accepted(message=IMPORT_QUEUED, request_id=request_id)

    @app.post(
        "/etl/promote-to-production",
        status_code=202,
        response_model=Accepted,
        responses=ERRORS,
        tags=["import"],
    )
    def promote(body: PromoteRequest, request: Request, who: CallerDep) -> Accepted:
        """Promote a Validated import into the tenant's production data (atomic, idempotent)."""
        request_id = service(request).request_promotion(who, body.request_id)
        return Accepted(message=PROMOTION_STARTED, request_id=request_id)

    @app.get("/etl/import-status/{requestId}", response_model=ImportStatus, responses=ERRORS, tags=["import"])
    def import_status(requestId: str, request: Request, who: CallerDep) -> ImportStatus:  # noqa: N803
        """Where the import or promotion stands: state, progress per table, validation, failure reason."""
        return status_view(service(request).status(who, requestId))

    @app.get("/etl/import/{requestId}/id-map", response_model=IdMap, responses=ERRORS, tags=["import"])
    def import_id_map(
        requestId: str,  # noqa: N803
        request: Request,
        who: CallerDep,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> IdMap:
        """The platform reference of every object of a promoted import, by entity and ImportId."""
        total, items = service(request).id_map(who, requestId, offset=offset, limit=limit)
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
        who: CallerDep,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> FindingsPage:
        """Every validation finding of an import, a page at a time, filtered by rule, table or severity."""
        total, items = service(request).findings(who, requestId, where, offset=offset, limit=limit)
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
        who: CallerDep,
    ) -> StreamingResponse:
        """All findings as CSV (rule, severity, table, importId, column, value, message)."""
        rows = service(request).all_findings(who, requestId, where)  # raises 404/409 before streaming starts

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

    @app.get("/etl/audit", response_model=AuditPage, responses=ERRORS, tags=["audit"])
    def audit(
        request: Request,
        who: CallerDep,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        """Who submitted or promoted what, when and from where, for the caller's tenant (newest first)."""
        total, items = service(request).audit_events(who, offset=offset, limit=limit)
        return AuditPage(
            total=total, offset=offset, limit=limit, items=[AuditEvent.model_validate(i) for i in items]
        )

    @app.post("/oauth2/token", tags=["auth"], responses={401: {"description": "invalid_client"}})
    async def token(request: Request) -> JSONResponse:
        """Client-credentials tokens (RFC 6749 §4.4) from the built-in issuer of the embedded default.

        Form fields grant_type=client_credentials, client_id, client_secret (or HTTP Basic)."""
        issuer: EmbeddedIssuer | None = request.app.state.issuer
        if issuer is None:
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": f"Tokens come from {settings.auth_issuer} on this service.",
                },
                status_code=400,
            )
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        field = {k: v[0] for k, v in form.items() if v}
        client_id, secret = field.get("client_id"), field.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = secret = None
        if field.get("grant_type") != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Use grant_type=client_credentials.",
                },
                status_code=400,
            )
        if not client_id or not secret:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Give client_id and client_secret."},
                status_code=400,
            )
        try:
            issued = await run_in_threadpool(issuer.issue, unquote(client_id), unquote(secret))
        except AuthError as error:
            return JSONResponse(
                {"error": "invalid_client", "error_description": str(error)},
                status_code=401,
                headers={"WWW-Authenticate": "Basic"},
            )
        return JSONResponse(issued, headers={"Cache-Control": "no-store"})

    @app.get("/oauth2/jwks", tags=["auth"])
    def jwks(request: Request) -> dict[str, Any]:
        """The built-in issuer's public keys."""
        issuer: EmbeddedIssuer | None = request.app.state.issuer
        return issuer.jwks if issuer is not None else {"keys": []}

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
