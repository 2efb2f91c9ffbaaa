"""The pages the service serves besides the console — `/docs`, `/redoc`, the HTML schema reference — load
nothing from the internet, need no inline script, and carry the Content-Security-Policy; every response
says `nosniff`. (The browser tests render them; these check what the service sends, over real HTTP.)"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from conftest import Serve, Service
from efimis_etl.api.routes.docs import STATIC_DIR
from efimis_etl.reference import render_markdown
from efimis_etl.schema.model import ENUMERATIONS
from efimis_etl.validation.catalogue import RULES

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGES = ("/docs", "/redoc", "/etl/schema-reference")


class Page(HTMLParser):
    """What a page loads (script, style sheet, icon, image URLs) and whether it has inline script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.style_attributes = 0
        self.handlers: list[str] = []
        self._tag: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "script":
            if "src" in found:
                self.loads.append(found["src"])
            self._tag = tag
        elif tag == "link":
            self.loads.append(found.get("href", ""))
        elif tag in ("img", "iframe", "embed", "object"):
            self.loads.append(found.get("src", found.get("data", "")))
        elif tag == "style":
            self._tag = tag
        self.style_attributes += "style" in found
        self.handlers += [name for name in found if name.startswith("on")]

    def handle_data(self, data: str) -> None:
        if self._tag == "script" and data.strip():
            self.inline_scripts += 1
        if self._tag == "style" and data.strip():
            self.inline_styles += 1

    def handle_endtag(self, tag: str) -> None:
        self._tag = None


def _parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture
def service(serve: Serve) -> Iterator[Service]:  # the pages touch no store: the embedded default is enough
    with serve() as running:
        yield running


def test_pages_load_only_the_services_own_files_with_no_inline_script(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as anonymous:  # the pages are public
        for path in PAGES:
            response = anonymous.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            page = _parse(response.text)
            assert page.loads, path
            assert page.inline_scripts == 0 and page.inline_styles == 0 and page.style_attributes == 0, path
            assert page.handlers == [], path
            assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", response.text, re.I), path
            for url in page.loads:
                assert url.startswith("/static/"), (path, url)
                asset = anonymous.get(url)
                assert asset.status_code == 200, url
                kind = "text/css" if url.endswith(".css") else "text/javascript"
                assert asset.headers["content-type"].startswith(kind), url
                assert asset.headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_and_redoc_are_given_the_openapi_document_and_start_from_a_file(service: Service) -> None:
    docs = service.client.get("/docs").text
    assert 'data-openapi-url="/openapi.json"' in docs
    assert (
        "/static/docs/swagger-init.js" in docs
        and "/static/vendor/swagger-ui-5.35.0/swagger-ui-bundle.js" in docs
    )
    init = service.client.get("/static/docs/swagger-init.js").text
    assert 'getAttribute("data-openapi-url")' in init and "SwaggerUIBundle(" in init
    redoc = service.client.get("/redoc").text
    assert (
        '<redoc spec-url="/openapi.json"' in redoc
        and "/static/vendor/redoc-2.5.4/redoc.standalone.js" in redoc
    )
    openapi = service.client.get("/openapi.json")
    assert openapi.status_code == 200 and "/etl/imports" in openapi.json()["paths"]
    # FastAPI's own pages, which load from a CDN, are not there any more.
    assert "/docs" not in openapi.json()["paths"] and "/docs/oauth2-redirect" not in openapi.json()["paths"]
    assert service.client.get("/docs/oauth2-redirect").status_code == 404


def test_every_html_page_has_the_content_security_policy_and_every_response_nosniff(service: Service) -> None:
    for path in ("/docs", "/etl/schema-reference"):
        response = service.client.get(path)
        assert response.headers["content-security-policy"] == POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff"
    # ReDoc injects two <style> elements of fixed content (one empty): allowed by their digests, nothing else.
    redoc = service.client.get("/redoc").headers["content-security-policy"]
    assert redoc == POLICY.replace(
        "style-src 'self'",
        "style-src 'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' "
        "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
    )
    assert (
        base64.b64encode(hashlib.sha256(b"").digest()).decode()
        == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    )
    # Not HTML: no policy needed, but never sniffed — JSON, CSV, Markdown, errors, refusals before routing.
    for response in (
        service.client.get("/etl/imports"),
        service.client.get("/etl/schema-reference", params={"format": "markdown"}),
        service.client.get("/etl/import-status/" + "0" * 32),
        service.client.get("/static/efimis.css"),
        service.client.post("/etl/import", content=b"x" * (service.settings.max_body_bytes + 1)),
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
        assert "content-security-policy" not in response.headers


def test_schema_reference_renders_its_markdown_as_html(service: Service) -> None:
    response = service.client.get("/etl/schema-reference")
    text = response.text
    page = _parse(text)
    assert page.loads == ["/static/efimis.css"]
    # The introduction: bold, code and a list, not Markdown's raw marks.
    assert "<strong>ImportId</strong>" in text and "**" not in text
    assert "<code>Efimis-1.0.sql</code>" in text and "`" not in text
    assert "<li><strong>Money</strong> is DECIMAL(19,4)" in text and "<li>Dates are DATE" in text
    # Every enumeration's values and every rule's fix in a table cell; severities as badges.
    for enumeration in ENUMERATIONS:
        for value in enumeration.values:
            assert f"<td>{value.value}</td>\n<td>{html.escape(value.name, quote=False)}</td>" in text
    for rule in RULES.values():
        assert f"<td>{html.escape(rule.fix, quote=False)}</td>" in text, rule.code
        badge = "badge-error" if rule.severity == "error" else "badge-warn"
        assert (
            f'<td><code>{rule.code}</code></td>\n<td><span class="{badge}">{rule.severity}</span></td>'
            in text
        )
    assert '<div class="table-wrap"><table>' in text and '<h3 id="etl-matter">etl.Matter</h3>' in text
    assert '<a href="#etl-matter">etl.Matter</a>' in text
    # The Markdown form is the text the page was rendered from, unchanged.
    markdown = service.client.get("/etl/schema-reference", params={"format": "markdown"})
    assert markdown.text == render_markdown()


def test_style_sheet_and_vendored_assets_ship_with_their_licences() -> None:
    css = (STATIC_DIR / "efimis.css").read_text()
    for badge in (".badge-ok", ".badge-warn", ".badge-error", ".badge-run"):
        assert badge in css
    assert "http" not in css  # no web fonts, no remote images
    for vendored, licence in (("swagger-ui-5.35.0", "Apache License"), ("redoc-2.5.4", "MIT License")):
        assert licence in (STATIC_DIR / "vendor" / vendored / "LICENSE").read_text()


def test_static_files_count_under_one_route_in_the_metrics(serve: Serve) -> None:
    with serve(metrics_token="scrape-me") as service:
        for path in ("/static/efimis.css", "/static/docs/swagger-init.js", "/static/no-such-file.js"):
            service.client.get(path)
        metrics = service.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).text
        assert (
            'efimis_http_requests_total{method="GET",route="/static/{path:path}",status="200"} 2.0' in metrics
        )
        assert (
            'efimis_http_requests_total{method="GET",route="/static/{path:path}",status="404"} 1.0' in metrics
        )
        assert "efimis.css" not in metrics and 'route="unmatched"' not in metrics
