"""`GET /metrics`: Prometheus text, requests by route template, jobs from the platform database, nothing
of any tenant's, and only for a scraper holding EFIMIS_METRICS_TOKEN."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from conftest import DemoSource, Serve, token
from efimis_etl.demo import row_counts
from efimis_etl.identity import Clients
from efimis_etl.settings import Settings

SCRAPE_TOKEN = "scrape-Secret-9f2c"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_and_jobs_and_leak_no_tenant_data(
    serve: Serve, settings: Settings, tmp_path: Path, demo: DemoSource
) -> None:
    broken = tmp_path / "notes.db"
    broken.write_text("not a database\n" * 100)
    with (
        serve(settings=settings.model_copy(update={"metrics_token": SecretStr(SCRAPE_TOKEN)})) as service,
        httpx.Client(base_url=service.url, timeout=30) as scraper,
    ):
        imported = service.import_(demo.url)
        assert service.wait(imported)["state"] == "Validated"
        assert service.wait_promoted(imported)["state"] == "Promoted"
        failed = service.import_(f"sqlite:///{broken}")
        assert service.wait(failed)["state"] == "Failed"
        Clients(service.app.state.service.platform.engine).register(
            "acme-client", "acme-secret-1", "acme-legal"
        )
        acme = token(scraper, "acme-client", "acme-secret-1")
        hidden = scraper.get(f"/etl/import-status/{imported}", headers={"Authorization": f"Bearer {acme}"})
        assert hidden.status_code == 404
        assert scraper.get(f"/no/such/page/{imported}").status_code == 404
        too_big = service.client.post("/etl/import", json={"connectionString": "x" * 100_000})
        assert too_big.status_code == 413

        assert scraper.get("/metrics").status_code == 401
        wrong = scraper.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        scraped = scraper.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "/metrics" not in service.client.get("/openapi.json").json()["paths"]
    text = scraped.text
    got = _samples(text)

    def value(name: str, **labels: str) -> float:
        return got[name, tuple(sorted(labels.items()))]

    status_route = "/etl/import-status/{requestId}"
    assert value("efimis_http_requests_total", method="GET", route=status_route, status="200") >= 4
    assert value("efimis_http_requests_total", method="GET", route=status_route, status="404") == 1
    assert value("efimis_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value("efimis_http_requests_total", method="POST", route="/etl/import", status="413") == 1
    assert value("efimis_http_requests_total", method="POST", route="/etl/import", status="202") == 2
    assert value("efimis_http_request_duration_seconds_count", method="GET", route=status_route) >= 5

    assert value("efimis_platform_database_up") == 1
    assert value("efimis_import_requests", state="Promoted") == 1
    assert value("efimis_import_requests", state="Failed") == 1
    assert value("efimis_jobs_finished", kind="import", state="Validated") == 1  # then promoted
    assert value("efimis_jobs_finished", kind="import", state="Failed") == 1
    assert value("efimis_jobs_finished", kind="promotion", state="Promoted") == 1
    assert value("efimis_job_duration_seconds_count", kind="import") == 2
    assert value("efimis_job_duration_seconds_bucket", kind="import", le="+Inf") == 2
    assert value("efimis_job_duration_seconds_bucket", kind="promotion", le="3600.0") == 1
    assert 0 < value("efimis_job_duration_seconds_sum", kind="import") < 3600
    counts = row_counts(demo.path)
    assert value("efimis_rows_read", table="WorkItem") == counts["WorkItem"]
    assert value("efimis_rows_loaded", table="WorkItem") == counts["WorkItem"]

    # Nothing of any tenant's: no tenant, client or request id, no source.
    for private in (
        imported,
        failed,
        "default",
        "acme-legal",
        "acme-client",
        "demo",
        str(tmp_path),
        "sqlite",
    ):
        assert private not in text, private
    assert SCRAPE_TOKEN not in text


def test_metrics_are_off_unless_the_operator_sets_a_token(serve: Serve, tmp_path: Path) -> None:
    with serve() as service:
        response = service.client.get("/metrics")  # even with a valid API token
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "metrics-off"
        assert "EFIMIS_METRICS_TOKEN" in response.json()["error"]["message"]
