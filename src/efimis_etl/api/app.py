"""The FastAPI application: settings, the service's lifetime, middleware, error handlers and routers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from efimis_etl import __version__
from efimis_etl.api.body_limit import BodyLimit
from efimis_etl.api.errors import install_error_handlers
from efimis_etl.api.metrics import install_metrics
from efimis_etl.api.routes import audit, console, docs, health, imports, oauth, promotion, schema
from efimis_etl.api.routes.docs import STATIC_DIR
from efimis_etl.api.security_headers import SecurityHeaders
from efimis_etl.identity import EmbeddedIssuer, TokenVerifier
from efimis_etl.jobs.retention import Clock
from efimis_etl.logs import install_redaction
from efimis_etl.service import Service
from efimis_etl.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The app; `clock` is the time the embedded default's retention goes by (the real time unless given)."""
    settings = settings or get_settings()
    install_redaction()
    app = FastAPI(
        title="Efimis ETL",
        version=__version__,
        summary="Import a law firm's data from SQL Server staging tables, validate it, promote it.",
        lifespan=lifespan,
        # Served by routes/docs.py from the service's own files: FastAPI's load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outside BodyLimit: its refusals get the headers too
    install_error_handlers(app)
    # In this order OpenAPI lists the paths.
    for routes in (imports, promotion, schema, audit, oauth, health, docs):
        app.include_router(routes.router)
    # The console's files, the documentation pages' vendored assets and the style sheet they share.
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(console.router)
    install_metrics(app)  # last: its middleware is then the outermost, and counts refusals (413) too
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the service (and, on the embedded default, the token issuer) while the app serves."""
    settings: Settings = app.state.settings
    service = Service.start(settings, clock=app.state.clock)
    issuer = _embedded_issuer(settings, service) if settings.auth_jwks_url is None else None
    app.state.service = service
    app.state.issuer = issuer
    app.state.verifier = TokenVerifier(settings, issuer)
    try:
        yield
    finally:
        service.stop()


def _embedded_issuer(settings: Settings, service: Service) -> EmbeddedIssuer:
    issuer = EmbeddedIssuer(settings, service.platform.engine)
    if (secret := issuer.ensure_demo_client()) is not None:
        # Printed once, never logged or stored in clear: the next start finds the client exists.
        sys.stderr.write(
            "Efimis ETL: created the demo client for tenant "
            f"{settings.tenant!r}. Its secret is shown only now:\n"
            f"  export EFIMIS_CLIENT_ID={settings.demo_client_id}\n  export EFIMIS_CLIENT_SECRET={secret}\n"
        )
    return issuer
