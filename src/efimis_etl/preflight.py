"""The pre-flight check: the import's own reading and rules, run on a scratch copy, importing nothing.

A consultant runs it (`efimis-etl validate CONNSTR`) against the firm's database before submitting, and
gets exactly the findings the import would report. The scratch staging store lives in a temporary
directory that is deleted afterwards. The tenant's production store, when this machine has it, is only
read (opened read-only, never created, written or locked), so references to objects promoted earlier
resolve as they would on import; without one, an empty production store in the scratch directory stands
in for it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efimis_etl.ids import new_request_id
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import PlanCallback, ProgressCallback, load_from_source
from efimis_etl.stores import SqliteStores, TenantStores
from efimis_etl.validation.run import FindingFilter, iter_findings, validate


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
        stores = _scratch_stores(settings, Path(scratch))
        request_id = new_request_id()
        staging = stores.create_staging(request_id)
        try:
            load_from_source(
                source, staging, policy=settings.read_policy(), on_plan=on_plan, on_progress=on_progress
            )
        finally:
            stores.close_staging(staging)
        summary = validate(stores, request_id, settings.tenant, first=settings.findings_in_status)
        yield PreflightReport(summary, stores, request_id)


def _scratch_stores(settings: Settings, scratch: Path) -> SqliteStores:
    production = SqliteStores.from_settings(settings).production_dir
    if (production / f"{settings.tenant}.sqlite").exists():
        return SqliteStores(scratch / "staging", production, production_readonly=True)
    return SqliteStores(scratch / "staging", scratch / "production")  # nothing promoted here yet
