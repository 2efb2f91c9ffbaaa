"""The embedded default's token issuer: client-credentials tokens (RFC 6749 §4.4) and its public keys.

Errors here follow OAuth 2.0 (`{"error", "error_description"}`), not the API's own error shape, because
OAuth clients parse them.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from efimis_etl.identity import AuthError, EmbeddedIssuer

router = APIRouter(tags=["auth"])


def embedded_issuer(request: Request) -> EmbeddedIssuer | None:
    """The built-in issuer, or None where tokens come from the operator's identity provider."""
    return request.app.state.issuer  # type: ignore[no-any-return]


IssuerDep = Annotated[EmbeddedIssuer | None, Depends(embedded_issuer)]


@router.post("/oauth2/token", responses={401: {"description": "invalid_client"}})
async def token(request: Request, issuer: IssuerDep) -> JSONResponse:
    """Client-credentials tokens (RFC 6749 §4.4) from the built-in issuer of the embedded default.

    Form fields grant_type=client_credentials, client_id, client_secret (or HTTP Basic)."""
    if issuer is None:
        where = request.app.state.settings.auth_issuer
        return _oauth_error(400, "unsupported_grant_type", f"Tokens come from {where} on this service.")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    field = {k: v[0] for k, v in form.items() if v}
    client_id, secret = _client_credentials(field, request.headers.get("authorization", ""))
    if field.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Use grant_type=client_credentials.")
    if not client_id or not secret:
        return _oauth_error(400, "invalid_request", "Give client_id and client_secret.")
    try:
        issued = await run_in_threadpool(issuer.issue, unquote(client_id), unquote(secret))
    except AuthError as error:
        return _oauth_error(401, "invalid_client", str(error), headers={"WWW-Authenticate": "Basic"})
    return JSONResponse(issued, headers={"Cache-Control": "no-store"})


@router.get("/oauth2/jwks")
def jwks(issuer: IssuerDep) -> dict[str, Any]:
    """The built-in issuer's public keys."""
    return issuer.jwks if issuer is not None else {"keys": []}


def _client_credentials(field: dict[str, str], authorization: str) -> tuple[str | None, str | None]:
    """The client id and secret: from HTTP Basic when the request sends it, else from the form."""
    if not authorization.lower().startswith("basic "):
        return field.get("client_id"), field.get("client_secret")
    try:
        client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return client_id, secret


def _oauth_error(
    status: int, error: str, description: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )
