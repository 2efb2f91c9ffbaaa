"""The web console: one static page at `/`; its script and styles are served from /static/console/."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

CONSOLE = Path(__file__).resolve().parent.parent / "static" / "console" / "index.html"

router = APIRouter()


@router.get("/", include_in_schema=False)
def console() -> FileResponse:
    """The console's page. Public like /docs: it holds no data, and every call it makes carries a token."""
    # no-cache: a browser revalidates, so a new release's page never runs against a stale script.
    return FileResponse(CONSOLE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})
