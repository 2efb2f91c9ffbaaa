"""`GET /metrics` in Prometheus' text format, and the middleware that counts the API's requests.

Two sources, both free of tenant data (no tenant, client or request id is ever a label):
- this process's HTTP requests, by method, route *template* (`/etl/import-status/{requestId}`, never the
  path a caller sent) and status, with their durations;
- the jobs, read from the platform database at scrape time: requests by state, finished jobs by kind and
  final state, job durations, rows read and loaded per table. Scaled out, jobs run in worker processes
  that serve nothing; because these figures come from the database they share, every API process reports
  all of them, whichever worker ran the jobs (aggregate them with max(), not sum(), across API processes).

The route is served only when the operator sets `EFIMIS_METRICS_TOKEN`, and only to a scraper sending it
as `Authorization: Bearer <token>`: a loopback-only rule would let anything behind a reverse proxy on the
same machine through, and counts of imports and their outcomes are the operator's business.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from efimis_etl.api.errors import error_response
from efimis_etl.jobs.state import DURATION_BUCKETS, JobFigures

log = logging.getLogger(__name__)

router = APIRouter()
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # any path no route knows: its text could be anything a caller sent


def install_metrics(app: FastAPI) -> None:
    """Count every request of `app` and serve the figures at `GET /metrics`."""
    registry = CollectorRegistry(auto_describe=True)  # one per app: tests run several apps in a process
    app.state.metrics = registry
    registry.register(JobCollector(app))
    app.add_middleware(RequestMetrics, registry=registry)
    app.include_router(router)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The Prometheus exposition, for a scraper holding EFIMIS_METRICS_TOKEN."""
    expected = request.app.state.settings.metrics_token
    if expected is None:
        return error_response(
            404,
            "metrics-off",
            "Metrics are off on this service: set EFIMIS_METRICS_TOKEN and scrape with "
            "Authorization: Bearer <that token>.",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    secret = expected.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), secret):
        response = error_response(
            401, "unauthenticated", "Scrape /metrics with Authorization: Bearer <EFIMIS_METRICS_TOKEN>."
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """ASGI middleware counting requests by method, route template and status, and timing them."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "efimis_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "efimis_http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route template.",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception that escapes becomes a 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = _route_template(scope)
            self.requests.labels(method, route, str(status)).inc()
            self.seconds.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's path template; a path no route matches gets one label for all."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    # Answered before routing (a body over the limit), or by a route that does not record itself in the
    # scope (the docs): match the path against the API's documented routes and the app's own.
    app = scope.get("app")
    templates = getattr(getattr(app, "state", None), "route_templates", None)
    if templates is None and isinstance(app, FastAPI):
        own = [
            # A mount (the static files) is one template for every file under it.
            r.path + "/{path:path}" if isinstance(r, Mount) else r.path
            for r in app.routes
            if isinstance(getattr(r, "path", None), str)
        ]
        templates = [(compile_path(p)[0], p) for p in [*app.openapi()["paths"], *own]]
        app.state.route_templates = templates
    for pattern, template in templates or ():
        if pattern.match(scope["path"]):
            return str(template)
    return UNMATCHED


class JobCollector(Collector):
    """Job figures read from the platform database at each scrape (see the module's docstring)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # the metrics' names depend on nothing here; collect() says what there is

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "efimis_platform_database_up", "1 if the platform database answered this scrape, else 0."
        )
        service = getattr(self.app.state, "service", None)
        try:
            figures = service.platform.job_figures() if service is not None else None
        except SQLAlchemyError as error:
            log.warning("metrics: the platform database did not answer: %s", type(error).__name__)
            figures = None
        up.add_metric([], 1 if figures is not None else 0)
        yield up
        if figures is not None:
            yield from _job_metrics(figures)


def _job_metrics(figures: JobFigures) -> Iterator[Metric]:
    requests = GaugeMetricFamily(
        "efimis_import_requests", "Import requests by their current state.", labels=["state"]
    )
    for state, count in sorted(figures.requests.items()):
        requests.add_metric([state], count)
    yield requests
    finished = GaugeMetricFamily(
        "efimis_jobs_finished",
        "Finished jobs by kind (import: read, load and validate; promotion) and final state; a request "
        "counts once per kind, with the outcome of its latest job.",
        labels=["kind", "state"],
    )
    for (kind, state), count in sorted(figures.finished.items()):
        finished.add_metric([kind, state], count)
    yield finished
    durations = HistogramMetricFamily(
        "efimis_job_duration_seconds",
        "How long finished jobs took (an import's latest attempt), by kind.",
        labels=["kind"],
    )
    for kind, d in sorted(figures.durations.items()):
        buckets: list[tuple[str, Any]] = [
            (str(b), n) for b, n in zip(DURATION_BUCKETS, d.within, strict=True)
        ]
        durations.add_metric([kind], [*buckets, ("+Inf", d.count)], d.seconds)
    yield durations
    read = GaugeMetricFamily(
        "efimis_rows_read", "Rows read from sources, by table, over every import recorded.", labels=["table"]
    )
    loaded = GaugeMetricFamily(
        "efimis_rows_loaded",
        "Rows loaded into staging, by table, over every import recorded.",
        labels=["table"],
    )
    for table, (rows_read, rows_loaded) in sorted(figures.rows.items()):
        read.add_metric([table], rows_read)
        loaded.add_metric([table], rows_loaded)
    yield read
    yield loaded
