"""The pre-flight check: the import's own reading and rules, run on a scratch copy, importing nothing.

A consultant runs it (`efimis-etl validate CONNSTR`) against the firm's database before submitting, and
gets the findings the import would report. It works on scratch stores in a temporary directory, deleted
afterwards: a SQLite staging store for the source's rows, and a SQLite production store holding what the
rules read of the tenant's real production (every entity's ImportId and PlatformId, and
`base.PRODUCTION_LOOKUPS`), copied from one read-only snapshot of wherever production lives: this
machine's production file on the embedded default, or the tenant's schema on EFIMIS_PRODUCTION_URL when
PostgreSQL stores are configured. So references to objects promoted earlier (`matter_<id>`) resolve as
they will on import, and production is only ever read: nothing created, written, or locked against a
promotion.

Why scratch SQLite even when the service runs on PostgreSQL: the pre-flight then needs nothing of the
servers but read access to production (no schema to create on the staging server, none left behind
if it is killed), and the rules are the same set-based SQL on both. One difference remains: the
embedded store holds money up to ±922,337,203,685,477.5807 only, and reports larger values as
`precision` findings that PostgreSQL staging would accept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import DBAPIError

from efimis_etl.errors import EtlError
from efimis_etl.ids import new_request_id
from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import PRODUCTION
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import PlanCallback, ProgressCallback, load_from_source
from efimis_etl.stores import SqliteStores, TenantStores, make_stores
from efimis_etl.stores.base import PRODUCTION_LOOKUPS
from efimis_etl.validation.run import FindingFilter, iter_findings, validate

COPY_BATCH = 10_000  # production rows copied per insert: memory stays flat however large production is


@dataclass
class PreflightReport:
    summary: dict[str, Any]
    stores: TenantStores
    request_id: str

    def findings(self) -> Iterator[dict[str, Any]]:
        return iter_findings(self.stores, self.request_id, FindingFilter())


@contextmanager
def preflight(
    settings: Settings, connection_string: str, *, on_plan: PlanCallback, on_progress: ProgressCallback
) -> Iterator[PreflightReport]:
    """Read and validate the source; the report is usable inside the `with` block only."""
    source = parse_connection_string(connection_string)
    with tempfile.TemporaryDirectory(prefix="efimis-preflight-") as scratch:
        stores = SqliteStores(Path(scratch) / "staging", Path(scratch) / "production")
        request_id = new_request_id()
        staging = stores.create_staging(request_id)
        try:
            load_from_source(
                source, staging, policy=settings.read_policy(), on_plan=on_plan, on_progress=on_progress
            )
        finally:
            stores.close_staging(staging)
        # Production as it is when the rules run, as on import, where validation follows the reading.
        _copy_production(settings, stores, request_id)
        summary = validate(stores, request_id, settings.tenant, first=settings.findings_in_status)
        yield PreflightReport(summary, stores, request_id)


def _copy_production(settings: Settings, scratch: SqliteStores, request_id: str) -> None:
    """What the rules read of the tenant's production, from one snapshot, into the scratch production
    store (created empty when the tenant has none yet)."""
    production = make_stores(settings)
    try:
        with (
            production.production_snapshot(settings.tenant) as snapshot,
            # The scratch production store's one write connection: a promotion session writes production.
            scratch.promotion_session(request_id, settings.tenant, write=True) as target,
        ):
            if snapshot is not None:
                for entity in ENTITIES:
                    _copy_lookups(snapshot, target, entity.name)
    except DBAPIError as error:
        where = "EFIMIS_PRODUCTION_URL" if settings.production_url else f"{settings.data_dir / 'production'}"
        raise EtlError(
            f"The pre-flight could not read tenant {settings.tenant}'s production data ({where}): "
            f"{error.orig or error}. Check that this machine reaches it, then run the pre-flight again.",
            code="production-unreadable",
        ) from None
    finally:
        production.dispose()


def _copy_lookups(snapshot: Connection, target: Connection, entity: str) -> None:
    table = PRODUCTION.tables[entity]
    names = ["ImportId", "PlatformId", "LastRequestId", *PRODUCTION_LOOKUPS.get(entity, ())]
    rows = snapshot.execution_options(yield_per=COPY_BATCH).execute(select(*(table.c[n] for n in names)))
    for batch in rows.partitions():
        target.execute(insert(table), [dict(zip(names, row, strict=True)) for row in batch])
