"""What the routers ask FastAPI for: the running `Service` and the authenticated `Caller`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from efimis_etl.service import Caller, Service

MAX_OFFSET = 10**12  # far beyond any real page, and within the databases' 64-bit integers


def current_service(request: Request) -> Service:
    """The service the app's lifespan started."""
    return request.app.state.service  # type: ignore[no-any-return]


def caller(request: Request) -> Caller:
    """The tenant and client of the request's bearer token (401 without a valid one)."""
    principal = request.app.state.verifier.verify(request.headers.get("authorization"))
    remote = request.client.host if request.client else None
    return Caller(tenant=principal.tenant, client_id=principal.client_id, remote_address=remote)


ServiceDep = Annotated[Service, Depends(current_service)]
CallerDep = Annotated[Caller, Depends(caller)]
