"""Schema names, engines and small SQL helpers of the PostgreSQL stores.

Every identifier built from a request id or a tenant is checked against a strict pattern first and then
quoted; no user data is ever interpolated into SQL (values travel as bound parameters).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateIndex, CreateTable

from efimis_etl.ids import checked_request_id
from efimis_etl.settings import TENANT_PATTERN

STAGING_PREFIX = "staging_"  # staging server: one schema per import request
SIDE_PREFIX = "promote_"  # production server: a request's staging rows copied for a cross-server promotion
TENANT_PREFIX = "tenant_"  # production server: one schema per tenant
MAX_IDENTIFIER = 63  # bytes; PostgreSQL cuts longer names silently, so we never build one

_TENANT = re.compile(TENANT_PATTERN)
DIALECT = psycopg_dialect.dialect()

# In a side schema: the tables copied completely (each with its marker in the same transaction).
COPIED = Table(
    "_Copied",
    MetaData(),
    Column("TableName", String(60), primary_key=True),
    Column("Rows", BigInteger, nullable=False),
)


def staging_schema(request_id: str) -> str:
    return STAGING_PREFIX + checked_request_id(request_id)


def side_schema(request_id: str) -> str:
    return SIDE_PREFIX + checked_request_id(request_id)


def tenant_schema(tenant: str) -> str:
    """`tenant_<tenant>`; a tenant name too long for that (PostgreSQL names have at most 63 bytes) keeps
    its first 39 characters and gets 16 hex digits of its SHA-256. Short names never contain `_` after the
    prefix and long ones always do, so two tenants never share a schema."""
    if not _TENANT.fullmatch(tenant):
        raise ValueError(f"not a tenant name: {tenant!r}")
    name = TENANT_PREFIX + tenant
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    name = f"{TENANT_PREFIX}{tenant[:39]}_{digest}"
    assert len(name) == MAX_IDENTIFIER
    return name


def quote(identifier: str) -> str:
    """A quoted identifier, for the few statements SQLAlchemy does not build (SET, ANALYZE, DROP)."""
    return DIALECT.identifier_preparer.quote_identifier(identifier)


def pg_engine(url: str) -> Engine:
    """An engine on a PostgreSQL URL (`postgresql://` or `postgresql+psycopg://`), through psycopg 3.

    NullPool: a connection per unit of work, none kept open between jobs (or to a dropped database).
    Dates are rendered ISO (validation shows them as text), whatever the server's default DateStyle. JIT
    is off: the rules' nested lookups look expensive to the planner, and compiling them took seconds
    (3.5 s for one rule on 10,000 work items) where running them takes milliseconds.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ValueError(f"a PostgreSQL URL is needed (postgresql://…), not {parsed.drivername}://")
    given = parsed.query.get("options")
    options = " ".join(
        [*((given,) if isinstance(given, str) else given or ()), "-c DateStyle=ISO,YMD -c jit=off"]
    )
    return create_engine(
        parsed.difference_update_query(["options"]), poolclass=NullPool, connect_args={"options": options}
    )


def server_of(url: str) -> tuple[str, int, str | None]:
    """Host, port and database: two URLs naming the same ones reach the same database."""
    parsed: URL = make_url(url)
    host = parsed.host or str(parsed.query.get("host") or "localhost")
    return host, parsed.port or 5432, parsed.database


def schema_exists(conn: Connection, schema: str) -> bool:
    query = text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :name")
    return conn.execute(query, {"name": schema}).first() is not None


def schemas_like(conn: Connection, prefix: str) -> list[str]:
    """The schemas whose names start with `prefix` (which holds no LIKE wildcard but `_`)."""
    query = text("SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE :pattern ORDER BY nspname")
    pattern = prefix.replace("_", "\\_") + "%"
    return list(conn.execute(query, {"pattern": pattern}).scalars())


@cache
def _ddl(tables: tuple[Table, ...]) -> str:
    statements: list[str] = []
    for table in tables:
        statements.append(str(CreateTable(table).compile(dialect=DIALECT)).strip())
        statements += [str(CreateIndex(index).compile(dialect=DIALECT)).strip() for index in table.indexes]
    return ";\n".join(statements)


def create_tables(conn: Connection, schema: str, tables: Sequence[Table]) -> None:
    """Create `tables` (unqualified in their metadata) in `schema`, in one round trip: a script of
    separate DDL statements costs several times as much."""
    conn.execute(text("SELECT set_config('search_path', :path, true)"), {"path": quote(schema)})
    driver(conn).execute(_ddl(tuple(tables)).encode())
    conn.execute(text("SELECT set_config('search_path', '', true)"))


def lock(conn: Connection, name: str) -> None:
    """A transaction-scoped advisory lock on a name: creations and promotions of one schema queue."""
    conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(literal(name), 0))))


def driver(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy connection (for COPY)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


def table_sql(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def columns_sql(columns: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


@contextmanager
def db_errors(what: str) -> Iterator[None]:
    """psycopg's errors as SQLAlchemy's, which the jobs report as "could not complete the job: …"."""
    try:
        yield
    except psycopg.Error as error:
        raise DBAPIError(what, None, error) from error


def stream_copy(
    source: psycopg.Connection[Any],
    select_sql: sql.Composable,
    target: psycopg.Connection[Any],
    table: sql.Composable,
    columns: list[str],
) -> int:
    """COPY the rows of `select_sql` on one server into `table` on another, block by block (binary, so
    values pass unchanged); returns the number of rows copied."""
    copy_out = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(select_sql)
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, columns_sql(columns))
    with source.cursor() as out_cursor, target.cursor() as in_cursor:
        with out_cursor.copy(copy_out) as copy_from, in_cursor.copy(copy_in) as copy_to:
            for block in copy_from:
                copy_to.write(block)
        return in_cursor.rowcount
