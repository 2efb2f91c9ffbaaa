"""Where tenant data lives: one protocol (`base.TenantStores`), a SQLite and a PostgreSQL implementation."""

from __future__ import annotations

from efimis_etl.settings import Settings
from efimis_etl.stores.base import Loader, TableResult, TenantStores
from efimis_etl.stores.postgres import PostgresStores
from efimis_etl.stores.sqlite import SqliteStores


def make_stores(settings: Settings) -> TenantStores:
    """PostgreSQL schemas when EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL are set, else SQLite files."""
    if settings.staging_url or settings.production_url:
        if not (settings.staging_url and settings.production_url):
            raise ValueError("Set both EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL, or neither.")
        return PostgresStores(settings)
    return SqliteStores.from_settings(settings)


__all__ = ["Loader", "PostgresStores", "SqliteStores", "TableResult", "TenantStores", "make_stores"]
