"""The pre-flight (`efimis-etl validate`, run as a user runs it) with PostgreSQL stores configured: it checks
references into that tenant's production as the import will, and only ever reads it: nothing written,
no schema created, no lock a promotion holds waited for."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from conftest import DemoSource, Service
from efimis_etl.promotion.promote import promote
from efimis_etl.schema.tables import PRODUCTION
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.stores.postgres_naming import lock, pg_engine, tenant_schema
from efimis_etl.validation.run import validate
from support import stage

TENANT = "default"


def _promote_firm(stores: TenantStores, demo: DemoSource) -> None:
    request_id = stage(stores, demo.url)
    assert validate(stores, request_id, TENANT, first=0)["errors"] == 0
    promote(stores, request_id, TENANT)


def _checksum(stores: TenantStores) -> str:
    return hashlib.sha256(repr(stores.production_rows(TENANT)).encode()).hexdigest()


def _schemas(url: str) -> list[str]:
    engine = pg_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT nspname FROM pg_namespace ORDER BY nspname")).scalars())
    finally:
        engine.dispose()


def _later_import(demo: DemoSource, target: Path, matter_reference: str) -> tuple[str, str, str]:
    """The firm's next import, as a copy of the firm where:
    * one work item names its matter by `matter_reference` (the platform reference of a promoted matter);
    * another names a matter that exists nowhere;
    * an invoice is left out (it was promoted before), and a work item billed on another matter's invoice
      is moved onto it by its ImportId: only production knows that invoice's matter.
    Their ImportIds: (resolved, missing, misbilled)."""
    shutil.copy(demo.path, target)
    with sqlite3.connect(target) as source:
        unbilled = "SELECT ImportId, MatterId FROM WorkItem WHERE InvoiceId IS NULL ORDER BY ImportId LIMIT 2"
        (resolved, matter), (missing, _) = source.execute(unbilled).fetchall()
        assert matter and matter_reference.startswith("matter_")
        source.execute("UPDATE WorkItem SET MatterId = ? WHERE ImportId = ?", (matter_reference, resolved))
        source.execute(
            "UPDATE WorkItem SET MatterId = ? WHERE ImportId = ?", (f"matter_{uuid.uuid4().hex}", missing)
        )
        misbilled, promoted_invoice = source.execute(
            "SELECT w.ImportId, other.ImportId FROM WorkItem w JOIN Invoice other ON other.MatterId <> w.MatterId "
            "WHERE w.InvoiceId IS NOT NULL ORDER BY w.ImportId, other.ImportId LIMIT 1"
        ).fetchone()
        source.execute("DELETE FROM Invoice WHERE ImportId = ?", (promoted_invoice,))
        source.execute("UPDATE WorkItem SET InvoiceId = ? WHERE ImportId = ?", (promoted_invoice, misbilled))
    return resolved, missing, misbilled


def _preflight(source: Path, pg_url: str, data_dir: Path, tenant: str = TENANT) -> list[dict[str, Any]]:
    """`efimis-etl validate --json` with PostgreSQL stores configured: every finding."""
    env = {
        "PATH": os.environ["PATH"],
        "EFIMIS_DATA_DIR": str(data_dir),
        "EFIMIS_STAGING_URL": pg_url,
        "EFIMIS_PRODUCTION_URL": pg_url,
        "EFIMIS_TENANT": tenant,
        "COLUMNS": "200",
    }
    run = subprocess.run(
        [sys.executable, "-m", "efimis_etl.cli", "validate", f"sqlite:///{source}", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # errors found
    return [json.loads(line) for line in run.stdout.splitlines()]


@contextmanager
def _promotion_running(pg_url: str, stores: TenantStores) -> Iterator[None]:
    """What a running promotion holds: the tenant's promotion lock, and uncommitted changes to production."""
    engine = pg_engine(pg_url)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            lock(conn, tenant_schema(TENANT))
            placed = conn.execution_options(schema_translate_map={None: tenant_schema(TENANT)})
            changed = placed.execute(
                update(PRODUCTION.tables["Matter"]).values(Description="renamed by a promotion")
            )
            assert changed.rowcount > 0
            yield
            transaction.rollback()
    finally:
        engine.dispose()


def test_preflight_resolves_references_into_postgresql_production_and_only_reads_it(
    tmp_path: Path, pg_url: str, demo: DemoSource
) -> None:
    stores = make_stores(Settings(data_dir=tmp_path / "var", staging_url=pg_url, production_url=pg_url))
    _promote_firm(stores, demo)
    # A promoted matter, as a later import names it: its platform reference (rows are ImportId, PlatformId, ...).
    reference = f"matter_{stores.production_rows(TENANT)['Matter'][0][1]}"
    source = tmp_path / "later.db"
    resolved, missing, misbilled = _later_import(demo, source, reference)
    before, schemas = _checksum(stores), _schemas(pg_url)

    with _promotion_running(pg_url, stores):  # neither its lock nor its row locks hold the pre-flight up
        findings = _preflight(source, pg_url, tmp_path / "var")
    references = [f for f in findings if f["rule"].startswith("reference-")]
    assert [(f["rule"], f["table"], f["importId"], f["column"]) for f in references] == [
        ("reference-missing-in-production", "WorkItem", missing, "MatterId")
    ], references
    assert not [f for f in findings if f["importId"] == resolved]
    # Production's lookups were read too: the promoted invoice's matter is not the work item's.
    assert [(f["table"], f["importId"]) for f in findings if f["rule"] == "invoice-matter"] == [
        ("WorkItem", misbilled)
    ]
    assert _checksum(stores) == before and _schemas(pg_url) == schemas
    assert not (tmp_path / "var").exists()

    # Another tenant's production has no such matter (and no schema, which the pre-flight does not create).
    elsewhere = _preflight(source, pg_url, tmp_path / "var", tenant="another-firm")
    assert sorted(
        f["importId"] for f in elsewhere if f["rule"] == "reference-missing-in-production"
    ) == sorted([resolved, missing])
    assert _schemas(pg_url) == schemas and tenant_schema("another-firm") not in schemas
    assert _checksum(stores) == before


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_preflight_with_postgresql_stores_reports_what_the_scaled_out_import_reports(
    service: Service, settings: Settings, demo_with_errors: DemoSource, tmp_path: Path
) -> None:
    request_id = service.import_(demo_with_errors.url)
    assert service.wait(request_id)["state"] == "ValidationFailed"
    response = service.client.get(f"/etl/import/{request_id}/findings", params={"limit": 1000})
    assert response.status_code == 200, response.text
    imported = response.json()["items"]
    assert len(imported) == response.json()["total"] > 0
    assert settings.production_url is not None
    assert _preflight(demo_with_errors.path, settings.production_url, tmp_path / "preflight") == imported
