"""The scaled-out tenant stores: staging and production as PostgreSQL schemas (see `postgres.stores`)."""

from efimis_etl.postgres.stores import PostgresStores

__all__ = ["PostgresStores"]
