"""Retention, through the code path the service runs: the staging data of finished imports expires after
EFIMIS_STAGING_RETENTION_HOURS, on a clock the test controls; an unfinished import's never does.

Embedded, the service's own retention timer sweeps (it waits on the test's `ManualClock`); scaled out, the
body of the procrastinate periodic task does (its clock is the timestamp procrastinate hands it). Each test
holds one import in Importing (a locked source table) and one in Promoting (production held as a running
promotion holds it), moves time past the retention, and checks that only the finished import's staging
went, that its findings and id map then answer 410 naming the setting, and that the held imports finish
normally and expire once finished.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import DemoSource, Serve, Service, fresh_database
from efimis_etl.jobs.distributed import build_app
from efimis_etl.jobs.retention import SWEEP_SECONDS
from efimis_etl.settings import Settings
from efimis_etl.stores.postgres_naming import lock, pg_engine, tenant_schema
from support import ManualClock, copy_to_postgresql, hold_table, until

TENANT = "default"
PAST_RETENTION = timedelta(hours=168 + 1)  # the default EFIMIS_STAGING_RETENTION_HOURS, and an hour


@pytest.fixture
def source_url(demo: DemoSource) -> Iterator[str]:
    """The demo firm as a PostgreSQL development source, whose tables a test can lock."""
    with fresh_database("efimis_source") as url:
        copy_to_postgresql(demo.path, url)
        yield url


def _validated(service: Service, source: str) -> str:
    request_id = service.import_(source)
    assert service.wait(request_id)["state"] == "Validated"
    return request_id


def _assert_expired(service: Service, request_id: str, *, promoted: bool) -> None:
    """Findings (and the id map of a promoted import) answer 410 naming the retention; the status stays."""
    assert not service.staging_exists(request_id)
    for path in ("findings", "findings.csv", *(["id-map", "id-map.csv"] if promoted else [])):
        response = service.client.get(f"/etl/import/{request_id}/{path}")
        assert response.status_code == 410, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "expired"
        assert "EFIMIS_STAGING_RETENTION_HOURS (168 h, the retention)" in error["message"], error
    assert service.status(request_id)["state"] == ("Promoted" if promoted else "Validated")


@contextmanager
def _sqlite_production_held(path: Path) -> Iterator[None]:
    """The tenant's production store write-locked, as a promotion's transaction holds it."""
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@contextmanager
def _postgresql_promotions_held(url: str) -> Iterator[Callable[[], int]]:
    """The tenant's promotion lock taken, as a running promotion holds it; yields how many wait for it."""
    engine = pg_engine(url)
    try:
        with engine.begin() as holder, engine.connect() as observer:
            lock(holder, tenant_schema(TENANT))

            def waiting() -> int:
                query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                return int(observer.execute(text(query)).scalar_one())

            yield waiting
    finally:
        engine.dispose()


def _retention_timers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "efimis-retention"]


def test_embedded_retention_timer_drops_only_finished_imports_staging(
    serve: Serve, demo: DemoSource, source_url: str
) -> None:
    clock = ManualClock(datetime.now(UTC))
    # Other tests' services run timers of their own in this process: this test answers for its own.
    earlier = set(_retention_timers())
    with serve(clock=clock) as service:
        promoted = _validated(service, demo.url)
        assert service.wait_promoted(promoted)["state"] == "Promoted"
        validated = _validated(service, demo.url)
        production = service.settings.data_dir / "production" / f"{TENANT}.sqlite"
        with _sqlite_production_held(production), hold_table(source_url, "WorkItem") as held:
            importing = service.import_(source_url)
            until(held.waiting, "the import to wait for the locked WorkItem table")
            assert service.status(importing)["state"] == "Importing" and service.staging_exists(importing)
            assert service.promote(validated).status_code == 202
            assert service.status(validated)["state"] == "Promoting"

            clock.sweep_after_advance(PAST_RETENTION)
            _assert_expired(service, promoted, promoted=True)
            assert service.staging_exists(importing) and service.staging_exists(validated)
        assert service.wait(importing)["state"] == "Validated"
        assert service.wait(validated)["state"] == "Promoted"
        assert service.client.get(f"/etl/import/{importing}/findings").status_code == 200

        # Finished now, and past the retention by the clock: the timer's next sweep drops them.
        clock.sweep_after_advance(timedelta(seconds=SWEEP_SECONDS))
        _assert_expired(service, importing, promoted=False)
        _assert_expired(service, validated, promoted=True)
    # The service has stopped: so has its timer (the clock wakes it no more).
    assert not set(_retention_timers()) - earlier


def test_embedded_start_drops_staging_past_its_retention(serve: Serve, demo: DemoSource) -> None:
    with serve(clock=ManualClock(datetime.now(UTC))) as service:
        request_id = _validated(service, demo.url)
        assert service.staging_exists(request_id)
    # Started again a week and an hour later. That clock never moves, so its timer never sweeps: what
    # is gone was dropped at start.
    with serve(clock=ManualClock(datetime.now(UTC) + PAST_RETENTION)) as service:
        _assert_expired(service, request_id, promoted=False)


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_scaled_out_retention_task_drops_only_finished_imports_staging(
    service: Service, settings: Settings, demo: DemoSource, source_url: str
) -> None:
    assert settings.staging_url is not None
    task = build_app(settings).tasks["efimis.drop-expired-staging"]
    promoted = _validated(service, demo.url)
    assert service.wait_promoted(promoted)["state"] == "Promoted"
    validated = _validated(service, demo.url)
    with (
        _postgresql_promotions_held(settings.staging_url) as promotions_waiting,
        hold_table(source_url, "WorkItem") as held,
    ):
        importing = service.import_(source_url)
        until(held.waiting, "the import to wait for the locked WorkItem table")
        assert service.status(importing)["state"] == "Importing" and service.staging_exists(importing)
        assert service.promote(validated).status_code == 202
        until(promotions_waiting, "the worker's promotion to wait for the tenant's promotion lock")
        assert service.status(validated)["state"] == "Promoting"

        task(timestamp=int((datetime.now(UTC) + PAST_RETENTION).timestamp()))
        _assert_expired(service, promoted, promoted=True)
        assert service.staging_exists(importing) and service.staging_exists(validated)
    assert service.wait(importing)["state"] == "Validated"
    assert service.wait(validated)["state"] == "Promoted"
    assert service.client.get(f"/etl/import/{importing}/findings").status_code == 200

    task(timestamp=int((datetime.now(UTC) + PAST_RETENTION).timestamp()))
    _assert_expired(service, importing, promoted=False)
    _assert_expired(service, validated, promoted=True)
