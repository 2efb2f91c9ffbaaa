"""The one place that sets the browser-facing security headers of every response.

Every HTML page the service serves (the console, `/docs`, `/redoc`, the schema reference) gets a
Content-Security-Policy that allows only the service's own scripts, styles and images: no inline script,
nothing from another origin. One exception, on `/redoc` only: ReDoc injects `<style>` elements of fixed
content (an empty one that styled-components then fills through the CSSOM, which CSP does not govern, and
its bundled style sheet), which the page allows by their SHA-256 (`allow_styles`); scripts stay the
service's own files there too. Values from a firm's data reach the console's pages through findings, so even
a rendering mistake there cannot run a script. Every response gets `X-Content-Type-Options: nosniff`, so a
browser never takes a download (a CSV of findings) for HTML or script.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_STYLES = "efimis.allowed_styles"  # where a route leaves its style hashes for this middleware (ASGI scope)


def allow_styles(request: Request, *sha256: str) -> None:
    """Allow this response's `<style>` elements whose content has one of these SHA-256 digests (base64)."""
    request.scope[_STYLES] = sha256


def content_security_policy(style_hashes: tuple[str, ...] = ()) -> str:
    """The policy of an HTML response; `<style>` elements of the given digests are allowed too."""
    if not style_hashes:
        return CONTENT_SECURITY_POLICY
    allowed = " ".join(f"'sha256-{digest}'" for digest in style_hashes)
    return CONTENT_SECURITY_POLICY.replace("style-src 'self'", f"style-src 'self' {allowed}")


class SecurityHeaders:
    """Add the Content-Security-Policy to HTML responses and `nosniff` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if headers.get("content-type", "").lower().startswith("text/html"):
                    headers["Content-Security-Policy"] = content_security_policy(scope.get(_STYLES, ()))
            await send(message)

        await self.app(scope, receive, sending)
