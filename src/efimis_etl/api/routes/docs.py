"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), served with no internet.

FastAPI's own pages load their scripts from a CDN, which a firm's closed network cannot reach, and start
Swagger UI with an inline script, which the service's Content-Security-Policy forbids. These pages load
the vendored assets (`static/vendor/`, pinned versions) and our start-up file (`static/docs/`) from the
service itself. FastAPI's `get_swagger_ui_html` always writes an inline script and `get_redoc_html` an
inline style, so the two small pages are written here instead.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from efimis_etl.api.security_headers import allow_styles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI_VERSION = "5.35.0"  # npm swagger-ui-dist
REDOC_VERSION = "2.5.4"  # npm redoc; major 2, the one FastAPI's /redoc targets
SWAGGER_UI = f"vendor/swagger-ui-{SWAGGER_UI_VERSION}"
REDOC = f"vendor/redoc-{REDOC_VERSION}"
# The <style> elements ReDoc injects, by content: empty (styled-components fills it through the CSSOM) and
# the style sheet bundled with it (same for every page of this version; a new version may change it).
REDOC_STYLES = (
    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    "QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc=",
)

router = APIRouter(include_in_schema=False)


def static_url(request: Request, path: str) -> str:
    """The URL of a file under `static/`, behind a proxy's path prefix too."""
    return f"{request.scope.get('root_path', '').rstrip('/')}/static/{path}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '').rstrip('/')}{request.app.openapi_url}"


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    e = html.escape
    title = e(f"{request.app.title} - Swagger UI")
    return HTMLResponse(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>"
        f'<link rel="stylesheet" href="{e(static_url(request, SWAGGER_UI + "/swagger-ui.css"))}">'
        "</head><body>"
        f'<div id="swagger-ui" data-openapi-url="{e(_openapi_url(request))}"></div>'
        f'<script src="{e(static_url(request, SWAGGER_UI + "/swagger-ui-bundle.js"))}"></script>'
        f'<script src="{e(static_url(request, "docs/swagger-init.js"))}"></script>'
        "</body></html>\n"
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    e = html.escape
    title = e(f"{request.app.title} - ReDoc")
    # ReDoc's standalone bundle starts itself on the <redoc spec-url> element: no start-up script needed.
    # Its search runs in a worker made from a blob: URL, which script-src 'self' forbids: it is switched
    # off rather than the policy widened. (Its footer's logo, from Redocly's CDN, is refused by img-src and
    # hides itself.)
    allow_styles(request, *REDOC_STYLES)
    return HTMLResponse(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>"
        f'<link rel="stylesheet" href="{e(static_url(request, "docs/redoc.css"))}">'
        "</head><body>"
        f'<redoc spec-url="{e(_openapi_url(request))}" disable-search="true"></redoc>'
        f'<script src="{e(static_url(request, REDOC + "/redoc.standalone.js"))}"></script>'
        "</body></html>\n"
    )
