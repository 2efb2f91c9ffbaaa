"""STANDIN (dropped at merge): the console-api branch's /static mount, /etl/imports and describe, minimal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import select

from efimis_etl.api.dependencies import CallerDep, ServiceDep
from efimis_etl.jobs.state import IMPORT_REQUEST, IMPORT_TABLE
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.source.policy import check_source

router = APIRouter()


class Describe(BaseModel):
    connectionString: str  # noqa: N815


@router.get("/etl/imports")
def imports(
    who: CallerDep, service: ServiceDep, state: str | None = None, offset: int = 0, limit: int = 50
) -> Any:
    platform = service.platform
    with platform.engine.connect() as conn:
        query = select(IMPORT_REQUEST).where(IMPORT_REQUEST.c.tenant == who.tenant)
        if state:
            query = query.where(IMPORT_REQUEST.c.state == state)
        rows = [dict(r) for r in conn.execute(query.order_by(IMPORT_REQUEST.c.created_at.desc())).mappings()]
        out = []
        for r in rows[offset : offset + limit]:
            tables = list(
                conn.execute(select(IMPORT_TABLE).where(IMPORT_TABLE.c.request_id == r["id"])).mappings()
            )
            v = r["validation"]
            out.append(
                {
                    "requestId": r["id"],
                    "state": r["state"],
                    "source": r["source"],
                    "createdAt": r["created_at"].isoformat(),
                    "importFinishedAt": r["import_finished_at"] and r["import_finished_at"].isoformat(),
                    "promotionFinishedAt": r["promotion_finished_at"]
                    and r["promotion_finished_at"].isoformat(),
                    "rowsLoaded": sum(t["rows_loaded"] for t in tables),
                    "rowsExpected": sum(t["rows_expected"] or 0 for t in tables) if tables else None,
                    "errors": v and v["errors"],
                    "warnings": v and v["warnings"],
                }
            )
    return {"total": len(rows), "offset": offset, "limit": limit, "imports": out}


@router.post("/etl/connection-string/describe")
def describe(body: Describe, who: CallerDep, service: ServiceDep) -> Any:
    try:
        source = parse_connection_string(body.connectionString)
        check_source(source, service.settings.source_policy())
    except ValueError as error:
        return {"valid": False, "message": str(error)}
    return {
        "valid": True,
        "description": {"kind": "sqlite", "summary": source.describe(), "passwordGiven": False},
    }


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(
        "/static", StaticFiles(directory=Path(__file__).resolve().parent.parent / "static"), name="static"
    )
