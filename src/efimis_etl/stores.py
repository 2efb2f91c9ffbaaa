"""Where tenant data lives: the staging store of each import and the production store of each tenant.

`TenantStores` is the one seam between the jobs and the databases. The embedded default keeps each store
in a SQLite file (`SqliteStores`); scaled out, they are PostgreSQL schemas (`efimis_etl.postgres`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from efimis_etl.promotion.promote import TableResult, id_map, production_engine, promote
from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import PRODUCTION
from efimis_etl.settings import Settings
from efimis_etl.staging.load import Loader
from efimis_etl.staging.store import StagingStore
from efimis_etl.validation.run import FindingFilter, iter_findings, list_findings, validate_store


class TenantStores(Protocol):
    def create_staging(self, request_id: str) -> Loader: ...

    def close_staging(self, loader: Loader) -> None: ...

    def staging_exists(self, request_id: str) -> bool: ...

    def discard_staging(self, request_id: str) -> None: ...

    def validate(self, request_id: str, tenant: str, *, first: int) -> dict[str, Any]: ...

    def findings(
        self, request_id: str, where: FindingFilter, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]: ...

    def iter_findings(self, request_id: str, where: FindingFilter) -> Iterator[dict[str, Any]]: ...

    def promote(self, request_id: str, tenant: str) -> list[TableResult]: ...

    def id_map(
        self, request_id: str, tenant: str, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, str]]]: ...

    def production_rows(self, tenant: str) -> dict[str, list[tuple[Any, ...]]]: ...


class SqliteStores:
    """The embedded default: `staging/<requestId>.sqlite` and `production/<tenant>.sqlite`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _staging(self, request_id: str) -> Path:
        return self.settings.staging_path(request_id)

    def _production(self, tenant: str) -> Path:
        return self.settings.production_path(tenant)

    def create_staging(self, request_id: str) -> StagingStore:
        return StagingStore.create(self._staging(request_id))

    def close_staging(self, loader: Loader) -> None:
        assert isinstance(loader, StagingStore)
        loader.engine.dispose()

    def staging_exists(self, request_id: str) -> bool:
        return self._staging(request_id).exists()

    def discard_staging(self, request_id: str) -> None:
        path = self._staging(request_id)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def validate(self, request_id: str, tenant: str, *, first: int) -> dict[str, Any]:
        return validate_store(self._staging(request_id), self._production(tenant), first=first)

    def findings(
        self, request_id: str, where: FindingFilter, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        return list_findings(self._staging(request_id), where, offset=offset, limit=limit)

    def iter_findings(self, request_id: str, where: FindingFilter) -> Iterator[dict[str, Any]]:
        return iter_findings(self._staging(request_id), where)

    def promote(self, request_id: str, tenant: str) -> list[TableResult]:
        return promote(self._production(tenant), self._staging(request_id), request_id)

    def id_map(
        self, request_id: str, tenant: str, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, str]]]:
        return id_map(self._production(tenant), self._staging(request_id), offset=offset, limit=limit)

    def production_rows(self, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every production row, ordered by ImportId (tests and checksums)."""
        path = self._production(tenant)
        if not path.exists():
            return {e.name: [] for e in ENTITIES}
        engine = production_engine(path)
        try:
            with engine.connect() as conn:
                return {
                    e.name: [
                        tuple(r) for r in conn.execute(select(PRODUCTION.tables[e.name]).order_by("ImportId"))
                    ]
                    for e in ENTITIES
                }
        finally:
            engine.dispose()


def make_stores(settings: Settings) -> TenantStores:
    """PostgreSQL schemas when EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL are set, else SQLite files."""
    if settings.staging_url or settings.production_url:
        if not (settings.staging_url and settings.production_url):
            raise ValueError("Set both EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL, or neither.")
        from efimis_etl.postgres.stores import PostgresStores

        return PostgresStores(settings)
    return SqliteStores(settings)
