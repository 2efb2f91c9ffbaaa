"""Tenant stores on PostgreSQL: the `TenantStores` of a scaled-out deployment.

Where things live
    Staging (`EFIMIS_STAGING_URL`): one schema per import request, `staging_<requestId>`, holding the
    entity tables (every column nullable, as on SQLite), `_Finding`, and `_Meta` (the request id and the
    schema's creation time, for retention). Production (`EFIMIS_PRODUCTION_URL`): one schema per tenant,
    `tenant_<tenant>` (a name too long for PostgreSQL's 63 bytes is shortened with a hash: see
    `postgres_naming.tenant_schema`), created on demand with the production tables and `_Promotion`. Every table
    comes from the one schema model (`schema.tables`), placed with `schema_translate_map`; money is
    NUMERIC(19,4) / NUMERIC(9,4).

Loading
    `create_staging` returns a loader holding one psycopg connection; each batch is one binary COPY (and
    one of the reader's findings) in one transaction (`stores.postgres_staging`). `close_staging` closes it.

Validation
    The same rules as on SQLite, compiled for PostgreSQL (`stores.sql`), run by `validation` inside
    the staging database in one transaction with the staging schema first on the search path. When
    staging and production are the same database (same host, port and database in both URLs) the rules
    read the tenant's schema directly. When they are different servers, the rules read temporary tables
    (`pg_temp`, dropped at commit) into which the production columns the rules need — ImportId and
    PlatformId of every entity, plus `base.PRODUCTION_LOOKUPS` — are streamed with COPY first, from one
    repeatable-read snapshot of production. No foreign-data wrapper or extension is needed.

Promotion
    Same database: one transaction on the production connection (which sees the staging schema): the id
    map in temporary tables (`pg_temp`, dropped at commit), before-images of the rows about to change, one
    `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE … IS DISTINCT FROM` per table, the `_Revision` and
    `_Promotion` records (`promotion.promote`, on the connection `promotion_session` gives). A revert
    (`promotion.revert`) needs production only (`production_session`).
    Different servers: first a resumable, idempotent
    copy of the staged rows into a side schema `promote_<requestId>` on the production server, one table
    per transaction, each with its completion marker (`_Copied`) written in the same transaction, so a
    copy interrupted midway resumes with the first incomplete table; then the same single transaction,
    reading the side schema. Either way production changes all at once or not at all. Promotions of one
    tenant queue behind a transaction-scoped advisory lock. The side schema is kept (the id map reads it,
    on the production server) and dropped with the staging schema (`discard_staging`, retention).

Retention
    `drop_expired_staging(now, in_use=...)` drops every staging schema whose `_Meta.CreatedAt` is older
    than `staging_retention_hours`, and its side schema (and any side schema older than that), unless the
    caller says the import still needs it (`in_use`: Queued, Importing, Validating, Promoting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, Engine, collate, insert, select, text
from sqlalchemy.schema import CreateSchema

from efimis_etl.ids import is_request_id
from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import PRODUCTION, STAGING
from efimis_etl.settings import Settings
from efimis_etl.stores.base import (
    FINDINGS,
    ID_SCHEMA,
    META,
    PRODUCTION_LOOKUPS,
    PROMOTION_LOG,
    REVISIONS,
    STAGED_SCHEMA,
)
from efimis_etl.stores.postgres_naming import (
    COPIED,
    SIDE_PREFIX,
    STAGING_PREFIX,
    columns_sql,
    create_tables,
    db_errors,
    driver,
    lock,
    pg_engine,
    quote,
    schema_exists,
    schemas_like,
    server_of,
    side_schema,
    staging_schema,
    stream_copy,
    table_sql,
    tenant_schema,
)
from efimis_etl.stores.postgres_staging import PostgresStaging

TEMPORARY_SCHEMA = "pg_temp"


class PostgresStores:
    """Staging schemas on `settings.staging_url`, tenant schemas on `settings.production_url`."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.staging_url and settings.production_url):
            raise ValueError("PostgresStores needs both EFIMIS_STAGING_URL and EFIMIS_PRODUCTION_URL.")
        self.settings = settings
        self.staging_engine = pg_engine(settings.staging_url)
        self.same_server = server_of(settings.staging_url) == server_of(settings.production_url)
        self.production_engine = (
            self.staging_engine
            if settings.staging_url == settings.production_url
            else pg_engine(settings.production_url)
        )
        self._tenants_ready: set[str] = set()

    def dispose(self) -> None:
        self.staging_engine.dispose()
        self.production_engine.dispose()

    # Staging.

    def create_staging(self, request_id: str) -> PostgresStaging:
        schema = staging_schema(request_id)
        with self.staging_engine.begin() as conn:
            lock(conn, schema)
            if schema_exists(conn, schema):
                raise FileExistsError(f"staging schema {schema} already exists")
            conn.execute(CreateSchema(schema))
            create_tables(conn, schema, [*STAGING.tables.values(), *FINDINGS.tables.values()])
            placed = conn.execution_options(schema_translate_map={None: schema})
            placed.execute(insert(META).values(RequestId=request_id, CreatedAt=text("now()")))
        return PostgresStaging(self.staging_engine, schema)

    def close_staging(self, loader: object) -> None:
        assert isinstance(loader, PostgresStaging)
        loader.close()

    def staging_exists(self, request_id: str) -> bool:
        if not is_request_id(request_id):
            return False
        with self.staging_engine.connect() as conn:
            return schema_exists(conn, staging_schema(request_id))

    def discard_staging(self, request_id: str) -> None:
        if not is_request_id(request_id):
            return
        with self.staging_engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote(staging_schema(request_id))} CASCADE")
        if not self.same_server:
            with self.production_engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote(side_schema(request_id))} CASCADE")

    def _existing_staging(self, conn: Connection, request_id: str) -> str:
        schema = staging_schema(request_id)
        if not schema_exists(conn, schema):
            raise FileNotFoundError(f"staging schema {schema} does not exist")
        return schema

    # Validation and findings.

    @contextmanager
    def validation_session(self, request_id: str, tenant: str) -> Iterator[tuple[Connection, str]]:
        production = self._ensure_production(tenant)
        with self.staging_engine.begin() as conn:
            schema = self._existing_staging(conn, request_id)
            # pg_temp last: the temporary copies of production share the staging tables' names.
            conn.execute(
                text("SELECT set_config('search_path', :path, true)"), {"path": f"{quote(schema)}, pg_temp"}
            )
            if not self.same_server:
                self._copy_production_lookups(conn, production)
                production = TEMPORARY_SCHEMA
            for table in [*STAGING.tables, *FINDINGS.tables]:
                conn.exec_driver_sql(f"ANALYZE {quote(schema)}.{quote(table)}")  # fresh tables: no stats
            yield conn, production

    def _copy_production_lookups(self, conn: Connection, production: str) -> None:
        """Temporary tables (dropped at commit) on the staging connection holding what the rules read of
        production, streamed from one snapshot of the production server."""
        target = driver(conn)
        with self.production_engine.connect() as source_conn:
            source_conn = source_conn.execution_options(isolation_level="REPEATABLE READ")
            with source_conn.begin():
                source = driver(source_conn)
                for entity in ENTITIES:
                    table = PRODUCTION.tables[entity.name]
                    columns = ["ImportId", "PlatformId", *PRODUCTION_LOOKUPS.get(entity.name, ())]
                    definition = ", ".join(
                        f"{quote(c)} {table.c[c].type.compile(dialect=conn.dialect)}" for c in columns
                    )
                    temporary = f"pg_temp.{quote(entity.name)}"
                    conn.exec_driver_sql(
                        f"CREATE TEMPORARY TABLE {quote(entity.name)} ({definition}) ON COMMIT DROP"
                    )
                    with db_errors(f"copying {production}.{entity.name} for validation"):
                        stream_copy(
                            source,
                            sql.SQL("SELECT {} FROM {}").format(
                                columns_sql(columns), table_sql(production, entity.name)
                            ),
                            target,
                            table_sql("pg_temp", entity.name),
                            columns,
                        )
                    conn.exec_driver_sql(f'CREATE UNIQUE INDEX ON {temporary} ("ImportId")')
                    conn.exec_driver_sql(f'CREATE INDEX ON {temporary} ("PlatformId")')
                    conn.exec_driver_sql(f"ANALYZE {temporary}")

    @contextmanager
    def staging_session(self, request_id: str) -> Iterator[Connection]:
        with self.staging_engine.connect() as conn:
            schema = self._existing_staging(conn, request_id)
            yield conn.execution_options(schema_translate_map={None: schema})

    # Production.

    def _ensure_production(self, tenant: str) -> str:
        """The tenant's schema, created with its tables on first use."""
        schema = tenant_schema(tenant)
        if schema in self._tenants_ready:
            return schema
        with self.production_engine.begin() as conn:
            lock(conn, schema)
            if not schema_exists(conn, schema):
                conn.execute(CreateSchema(schema))
            placed = conn.execution_options(schema_translate_map={None: schema})
            PRODUCTION.create_all(placed, checkfirst=True)
            PROMOTION_LOG.create(placed, checkfirst=True)
            REVISIONS.create_all(placed, checkfirst=True)
        self._tenants_ready.add(schema)
        return schema

    @contextmanager
    def promotion_session(self, request_id: str, tenant: str, *, write: bool) -> Iterator[Connection]:
        production = self._ensure_production(tenant)
        if self.same_server:
            with self.staging_engine.connect() as conn:
                source = self._existing_staging(conn, request_id)
        else:
            source = self._side_copy(request_id)
        with self.production_engine.connect() as conn:
            placed = conn.execution_options(
                schema_translate_map={STAGED_SCHEMA: source, None: production, ID_SCHEMA: TEMPORARY_SCHEMA}
            )
            if write:
                with conn.begin():
                    lock(conn, production)  # one promotion per tenant at a time
                    yield placed
            else:
                yield placed

    @contextmanager
    def production_session(self, tenant: str, *, write: bool) -> Iterator[Connection]:
        production = self._ensure_production(tenant)
        with self.production_engine.connect() as conn:
            placed = conn.execution_options(schema_translate_map={None: production})
            if write:
                with conn.begin():
                    lock(conn, production)  # the same lock as promotions: one change of production at a time
                    yield placed
            else:
                yield placed

    def _side_copy(self, request_id: str) -> str:
        """The request's staged rows on the production server, copied once: a table already copied
        completely (its `_Copied` marker committed with its rows) is not copied again."""
        side, staging = side_schema(request_id), staging_schema(request_id)
        with self.production_engine.begin() as conn:
            lock(conn, side)
            if not schema_exists(conn, side):
                with self.staging_engine.connect() as staging_conn:
                    self._existing_staging(staging_conn, request_id)
                conn.execute(CreateSchema(side))
                create_tables(conn, side, [*STAGING.tables.values(), META, COPIED])
                placed = conn.execution_options(schema_translate_map={None: side})
                placed.execute(insert(META).values(RequestId=request_id, CreatedAt=text("now()")))
        for entity in ENTITIES:
            with self.production_engine.begin() as conn:
                lock(conn, side)
                placed = conn.execution_options(schema_translate_map={None: side})
                done = placed.execute(select(COPIED.c.Rows).where(COPIED.c.TableName == entity.name)).first()
                if done is not None:
                    continue
                conn.exec_driver_sql(f"TRUNCATE {quote(side)}.{quote(entity.name)}")
                columns = [c.name for c in entity.all_columns]
                with (
                    self.staging_engine.connect() as staging_conn,
                    staging_conn.begin(),
                    db_errors(f"copying {staging}.{entity.name} to the production server"),
                ):
                    rows = stream_copy(
                        driver(staging_conn),
                        sql.SQL("SELECT {} FROM {}").format(
                            columns_sql(columns), table_sql(staging, entity.name)
                        ),
                        driver(conn),
                        table_sql(side, entity.name),
                        columns,
                    )
                placed.execute(insert(COPIED).values(TableName=entity.name, Rows=rows))
                conn.exec_driver_sql(f"ANALYZE {quote(side)}.{quote(entity.name)}")
        return side

    def production_rows(self, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every production row, ordered by ImportId in binary order (as SQLite orders text), values
        decoded as on SQLite: ImportId, PlatformId, LastRequestId, then the entity's columns."""
        schema = tenant_schema(tenant)
        with self.production_engine.connect() as conn:
            if not schema_exists(conn, schema):
                return {e.name: [] for e in ENTITIES}
            placed = conn.execution_options(schema_translate_map={None: schema})
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for entity in ENTITIES:
                table = PRODUCTION.tables[entity.name]
                query = select(table).order_by(collate(table.c.ImportId, "C"))
                rows[entity.name] = [tuple(r) for r in placed.execute(query)]
            return rows

    @contextmanager
    def production_snapshot(self, tenant: str) -> Iterator[Connection | None]:
        schema = tenant_schema(tenant)
        with self.production_engine.connect() as conn:
            # One REPEATABLE READ, READ ONLY transaction: every table from the same snapshot. Its reads take
            # ACCESS SHARE locks only, which promotions' INSERT and UPDATE never wait for; and unlike
            # `_ensure_production`, it neither creates the tenant's schema nor takes the promotion lock.
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                if not schema_exists(conn, schema):
                    yield None
                    return
                yield conn.execution_options(schema_translate_map={None: schema})

    # Retention.

    def drop_expired_staging(self, now: datetime, *, in_use: Callable[[str], bool]) -> list[str]:
        """Drop the staging schemas created more than `staging_retention_hours` before `now` (and their
        side schemas on the production server), except those `in_use` names; return the request ids whose
        staging was dropped."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        cutoff = now - timedelta(hours=self.settings.staging_retention_hours)
        dropped = self._drop_expired(self.staging_engine, STAGING_PREFIX, cutoff, in_use)
        if not self.same_server:
            self._drop_expired(self.production_engine, SIDE_PREFIX, cutoff, in_use, also=set(dropped))
        return dropped

    @staticmethod
    def _drop_expired(
        engine: Engine, prefix: str, cutoff: datetime, in_use: Callable[[str], bool], also: set[str] | None = None
    ) -> list[str]:
        dropped: list[str] = []
        with engine.connect() as conn:
            schemas = schemas_like(conn, prefix)
        for schema in schemas:
            request_id = schema[len(prefix) :]
            if not is_request_id(request_id):
                continue  # not one of ours
            with engine.begin() as conn:
                lock(conn, schema)
                placed = conn.execution_options(schema_translate_map={None: schema})
                has_meta = conn.execute(
                    text("SELECT to_regclass(:name)"), {"name": f"{quote(schema)}.{quote(META.name)}"}
                ).scalar()
                if has_meta is None:
                    continue
                created = placed.execute(select(META.c.CreatedAt)).scalar()
                expired = (created is not None and created <= cutoff) or request_id in (also or set())
                # Asked last, under the schema's lock: a side schema of a promotion retried today may be
                # older than the retention, and its promotion still needs it.
                if expired and not in_use(request_id):
                    conn.exec_driver_sql(f"DROP SCHEMA {quote(schema)} CASCADE")
                    dropped.append(request_id)
        return dropped


__all__ = ["PostgresStores"]
