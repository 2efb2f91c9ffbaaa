"""Routes of the staging schema: its T-SQL DDL and its reference. Public: a firm reads them before it has a token."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from efimis_etl.api.routes.docs import static_url
from efimis_etl.reference import render_html, render_markdown
from efimis_etl.schema.model import SCHEMA_VERSION
from efimis_etl.schema.tables import render_ddl

router = APIRouter(tags=["schema"])


@router.get(f"/etl/schema/Efimis-{SCHEMA_VERSION}.sql", response_class=PlainTextResponse)
def schema_sql() -> Response:
    """The T-SQL that creates the staging tables in your SQL Server database."""
    return Response(
        render_ddl("tsql"),
        media_type="application/sql; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="Efimis-{SCHEMA_VERSION}.sql"'},
    )


@router.get("/etl/schema-reference")
def schema_reference(request: Request, format: Literal["html", "markdown"] = "html") -> Response:
    """Every table, column, type, reference, enumeration and validation rule."""
    if format == "markdown":
        return PlainTextResponse(render_markdown(), media_type="text/markdown; charset=utf-8")
    return HTMLResponse(render_html(stylesheet_url=static_url(request, "efimis.css")))
