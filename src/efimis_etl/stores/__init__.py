"""Where tenant data lives: one protocol (`base.TenantStores`), a SQLite and a PostgreSQL implementation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine

from efimis_etl.settings import Settings
from efimis_etl.stores.base import Loader, TableResult, TenantStores
from efimis_etl.stores.postgres import PostgresStores
from efimis_etl.stores.sqlite import SqliteStores, sqlite_engine


def make_stores(settings: Settings) -> TenantStores:
    """PostgreSQL schemas when EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL are set, else SQLite files."""
    if settings.staging_url or settings.production_url:
        if not (settings.staging_url and settings.production_url):
            raise ValueError("Set both EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL, or neither.")
        return PostgresStores(settings)
    return SqliteStores.from_settings(settings)


def platform_engine(url: str) -> Engine:
    """The engine of the platform's own records: a SQLite file (`sqlite:///…`), else PostgreSQL.

    Unlike the tenant stores' engines it pools connections: every status poll reads the platform database.
    """
    if url.startswith("sqlite:///"):
        return sqlite_engine(Path(url.removeprefix("sqlite:///")))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True)


__all__ = ["Loader", "PostgresStores", "SqliteStores", "TableResult", "TenantStores", "make_stores", "platform_engine"]
