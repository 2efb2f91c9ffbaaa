"""What every tenant store promises, whichever backend: retention as configured, names only from request
ids the service issues, and a pre-flight that only ever reads production."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import DemoSource
from efimis_etl.demo import row_counts
from efimis_etl.digest import import_id_digest
from efimis_etl.jobs.distributed import build_app
from efimis_etl.jobs.state import Platform
from efimis_etl.preflight import preflight
from efimis_etl.promotion.promote import promote
from efimis_etl.schema.model import ENTITY_BY_NAME
from efimis_etl.settings import Settings
from efimis_etl.source.columnar import convert_batch
from efimis_etl.staging.measure import measure
from efimis_etl.stores import make_stores
from efimis_etl.validation.run import validate
from support import stage

TENANT = "default"


def _settings(tmp_path: Path, pg_url: str | None = None, **extra: object) -> Settings:
    urls = (
        {"staging_url": pg_url, "production_url": pg_url, "platform_database_url": pg_url} if pg_url else {}
    )
    return Settings(data_dir=tmp_path / "var", **urls, **extra)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield _settings(tmp_path, staging_retention_hours=24)
    else:
        yield _settings(tmp_path, request.getfixturevalue("pg_url"), staging_retention_hours=24)


def test_the_periodic_retention_task_drops_staging_exactly_when_the_retention_has_passed(
    tmp_path: Path, pg_url: str, demo: DemoSource
) -> None:
    settings = _settings(tmp_path, pg_url, staging_retention_hours=24)
    Platform(settings.platform_url).migrate()  # the task asks the platform which imports have finished
    stores = make_stores(settings)
    request_id = stage(stores, demo.url)
    created = datetime.now(UTC)
    task = build_app(settings).tasks["efimis.drop-expired-staging"]

    task(timestamp=int((created + timedelta(hours=23)).timestamp()))
    assert stores.staging_exists(request_id), "dropped before its 24 h were up"
    task(timestamp=int((created + timedelta(hours=24, minutes=5)).timestamp()))
    assert not stores.staging_exists(request_id), "kept past its 24 h"


def test_sqlite_staging_stores_expire_like_postgresql_ones(tmp_path: Path, demo: DemoSource) -> None:
    stores = make_stores(_settings(tmp_path, staging_retention_hours=24))
    request_id = stage(stores, demo.url)
    created = datetime.now(UTC)
    assert stores.drop_expired_staging(created + timedelta(hours=23), in_use=lambda _: False) == []
    later = created + timedelta(hours=24, minutes=5)
    assert stores.drop_expired_staging(later, in_use=lambda r: r == request_id) == []  # still running
    assert stores.drop_expired_staging(later, in_use=lambda _: False) == [request_id]
    assert not stores.staging_exists(request_id)


@pytest.mark.parametrize(
    "name", ["ABCDEF", "0" * 31, "0" * 33, "../../escaped", "staging_x", "a" * 32 + "; DROP SCHEMA public"]
)
def test_stores_refuse_names_the_service_never_issues(settings: Settings, name: str) -> None:
    stores = make_stores(settings)
    with pytest.raises(ValueError, match="not a request id"):
        stores.create_staging(name)
    assert stores.staging_exists(name) is False
    stores.discard_staging(name)  # nothing to do, and nothing outside the stores touched
    assert not (settings.data_dir / "escaped.sqlite").exists()
    assert not (settings.data_dir.parent / "escaped.sqlite").exists()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_preflight_only_reads_production_even_while_a_promotion_holds_it(
    tmp_path: Path, demo: DemoSource
) -> None:
    settings = _settings(tmp_path)
    stores = make_stores(settings)
    promoted = stage(stores, demo.url)
    assert validate(stores, promoted, TENANT, first=0)["errors"] == 0
    promote(stores, promoted, TENANT)
    production = settings.data_dir / "production" / f"{TENANT}.sqlite"
    before = _digest(production)

    writer = sqlite3.connect(production, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # as a promotion's transaction holds the store
    try:
        with preflight(
            settings, demo.url, on_plan=lambda _plan: None, on_progress=lambda _table, _rows: None
        ) as report:
            assert report.summary["errors"] == 0
            assert sum(1 for _ in report.findings()) == report.summary["warnings"]
    finally:
        writer.rollback()
        writer.close()
    assert _digest(production) == before
    assert {t: len(r) for t, r in stores.production_rows(TENANT).items()} == row_counts(demo.path)


def test_staged_import_ids_digest_as_they_were_read_whatever_their_characters(settings: Settings) -> None:
    # The read digest is computed in numpy, the loaded one by the store (PostgreSQL: hashtextextended in
    # SQL): NULL, the empty string, multi-byte text and every length around lookup3's 12-byte blocks.
    staff = ENTITY_BY_NAME["Staff"]
    ids = ["a", "", None, 'q"uote', "new\nline", "é漢", "\\N", "NULL", *("x" * n for n in range(2, 26))]
    stores = make_stores(settings)
    loader = stores.create_staging(uuid.uuid4().hex)
    try:
        columns: list[list[object]] = [ids] + [[None] * len(ids) for _ in staff.all_columns[1:]]
        converted = convert_batch(staff, columns, loader.checks(staff), loader.store_limit)
        loader.load(staff, converted.data, converted.findings)
        loaded = measure(loader, staff)
    finally:
        stores.close_staging(loader)
    assert loaded.rows == len(ids)
    assert loaded.digest == f"{import_id_digest(pa.array(ids)):016x}"
    assert import_id_digest(pa.array(ids[1:])) != import_id_digest(pa.array(ids))
