"""The pre-flight check: the import's own reading and rules, run on a scratch copy, importing nothing.

A consultant runs it (`efimis-etl validate CONNSTR`) against the firm's database before submitting, and
gets exactly the findings the import would report. The scratch staging store lives in a temporary
directory that is deleted afterwards; the tenant's production store, when this machine has it, is only
read, so references to objects promoted earlier resolve as they would on import.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import PlanCallback, ProgressCallback, load_from_source
from efimis_etl.staging.store import StagingStore
from efimis_etl.validation.run import FindingFilter, iter_findings, validate_store


@dataclass
class PreflightReport:
    summary: dict[str, Any]
    staging: Path

    def findings(self) -> Iterator[dict[str, Any]]:
        return iter_findings(self.staging, FindingFilter())


@contextmanager
def preflight(
    settings: Settings, connection_string: str, *, on_plan: PlanCallback, on_progress: ProgressCallback
) -> Iterator[PreflightReport]:
    """Read and validate the source; the report is usable inside the `with` block only."""
    source = parse_connection_string(connection_string)
    with tempfile.TemporaryDirectory(prefix="efimis-preflight-") as scratch:
        staging_path = Path(scratch) / "staging.sqlite"
        staging = StagingStore.create(staging_path)
        try:
            load_from_source(
                source, staging, policy=settings.read_policy(), on_plan=on_plan, on_progress=on_progress
            )
        finally:
            staging.engine.dispose()
        production = settings.production_path(settings.tenant)
        if not production.exists():
            production = Path(scratch) / "production.sqlite"  # nothing promoted yet on this machine
        summary = validate_store(staging_path, production, first=settings.findings_in_status)
        yield PreflightReport(summary, staging_path)
