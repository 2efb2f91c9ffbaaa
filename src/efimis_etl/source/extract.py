"""Reading the customer's `etl` tables: schema version, conformance, then every table in batches.

Reads are SELECT statements only (a db_datareader login is enough) and go in ImportId order, one batch
per query (keyset pagination), so no table is ever held in memory whole and every batch is an indexed
range scan on the primary key.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Column as SAColumn
from sqlalchemy import MetaData, Table, Unicode, func, select
from sqlalchemy.types import NullType

from efimis_etl.errors import SourceError
from efimis_etl.schema.model import (
    ALL_TABLES,
    ENTITIES,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ENTITY,
    Entity,
    Kind,
)
from efimis_etl.schema.tables import source_type_name
from efimis_etl.source.columnar import Check, Converted, convert_batch
from efimis_etl.source.connect import SourceConnection
from efimis_etl.source.reconcile import Figures, Tally, aggregate_query, figures_from_aggregates


def _raw_table(source: SourceConnection, entity: Entity) -> Table:
    """The table as the source names it (SQLite has no schemas), with untyped value columns, so values
    arrive as the driver made them and only `values` decides what they mean."""
    key = "ImportId" if entity.importable else "Version"
    return Table(
        entity.name,
        MetaData(schema=None if source.is_sqlite else SCHEMA_NAME),
        *(SAColumn(c.name, Unicode() if c.name == key else NullType()) for c in entity.all_columns),
    )


def check_schema_version(source: SourceConnection, tables: dict[str, dict[str, str]]) -> None:
    if SCHEMA_VERSION_ENTITY.name.lower() not in tables:
        raise SourceError(
            f"The source has no table {SCHEMA_NAME}.SchemaVersion: create the tables by running "
            f"Efimis-{SCHEMA_VERSION}.sql (GET /etl/schema/Efimis-{SCHEMA_VERSION}.sql) in this database.",
            code="schema-missing",
        )
    table = _raw_table(source, SCHEMA_VERSION_ENTITY)
    versions = [str(row[0]) for row in source.rows(select(table.c.Version))]
    if versions != [SCHEMA_VERSION]:
        found = ", ".join(repr(v) for v in versions) or "no row"
        raise SourceError(
            f"{SCHEMA_NAME}.SchemaVersion holds {found}; this service imports schema {SCHEMA_VERSION} "
            f"only: build the tables from Efimis-{SCHEMA_VERSION}.sql, which inserts the one row "
            f"Version = '{SCHEMA_VERSION}'.",
            code="schema-version",
        )


_INFORMATION_SCHEMA = (
    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE "
    "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = '{schema}'"
)


def source_columns(source: SourceConnection) -> dict[str, dict[str, str]]:
    """{table: {column: declared type}} of the source's `etl` tables, names lowercased."""
    found: dict[str, dict[str, str]] = {}
    if source.is_sqlite:
        names = {e.name.lower(): e.name for e in ALL_TABLES}
        for (table,) in source.rows("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"):
            if table.lower() in names:
                columns = source.rows(f'PRAGMA table_info("{table}")')
                found[table.lower()] = {str(c[1]).lower(): str(c[2] or "").upper() for c in columns}
        return found
    for table, column, data_type, length, precision, scale in source.rows(
        _INFORMATION_SCHEMA.format(schema=SCHEMA_NAME)
    ):
        declared = str(data_type).upper()
        if length is not None:
            declared += "(MAX)" if length == -1 else f"({length})"
        elif declared in ("DECIMAL", "NUMERIC") and precision is not None:
            declared += f"({precision}, {scale})"
        found.setdefault(str(table).lower(), {})[str(column).lower()] = declared
    return found


_FAMILIES: dict[Kind, frozenset[str]] = {
    Kind.TEXT: frozenset(
        {"NVARCHAR", "VARCHAR", "NCHAR", "CHAR", "TEXT", "NTEXT", "CHARACTER VARYING", "CHARACTER", "CLOB"}
    ),
    Kind.INTEGER: frozenset({"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT"}),
    Kind.BOOLEAN: frozenset({"BIT", "BOOLEAN", "BOOL", "INT", "INTEGER", "SMALLINT", "TINYINT"}),
    Kind.MONEY: frozenset({"DECIMAL", "NUMERIC", "MONEY", "SMALLMONEY"}),
    Kind.DATE: frozenset(
        {"DATE", "DATETIME", "DATETIME2", "SMALLDATETIME", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"}
    ),
}
_FAMILIES[Kind.LONG_TEXT] = _FAMILIES[Kind.REFERENCE] = _FAMILIES[Kind.TEXT]
_FAMILIES[Kind.ENUM] = _FAMILIES[Kind.INTEGER]
_FAMILIES[Kind.RATE] = _FAMILIES[Kind.MONEY]


def _compatible(kind: Kind, declared: str) -> bool:
    # FLOAT and REAL are in no family: a float column has already lost cents that nothing brings back.
    base = re.sub(r"\s*\(.*$", "", declared).strip()
    return base in _FAMILIES[kind]


_CANONICAL = {"INTEGER": "INT", "NUMERIC": "DECIMAL", "CHARACTER VARYING": "VARCHAR", "BOOL": "BOOLEAN"}


def _canonical(declared: str) -> str:
    """A declared type in one spelling: INTEGER/INT, NUMERIC/DECIMAL, `(19,4)`/`(19, 4)`, case."""
    text = re.sub(r"\s+", " ", declared.upper().replace(", ", ",")).strip()
    base, _, rest = text.partition("(")
    base = _CANONICAL.get(base.strip(), base.strip())
    return base + (f"({rest}" if rest else "")


def conformance_warnings(
    source: SourceConnection, tables: dict[str, dict[str, str]]
) -> list[tuple[Any, ...]]:
    """Findings (warnings) for columns of a compatible but different type, and for extra columns.

    Both are accepted: a value that then does not fit (a longer text, a BIGINT beyond INT) is reported
    row by row by the reader's and the rules' own findings; nothing is cut silently."""
    dialect = "sqlite" if source.is_sqlite else "tsql" if source.dialect.name == "mssql" else "postgresql"
    found_rows: list[tuple[Any, ...]] = []
    for entity in ENTITIES:
        found = tables.get(entity.name.lower(), {})
        expected = {c.name.lower(): c for c in entity.all_columns}
        for name, declared in sorted(found.items()):
            column = expected.get(name)
            if column is None:
                found_rows.append(
                    (
                        "extra-column",
                        "warning",
                        entity.name,
                        None,
                        name,
                        declared,
                        "this column is not in the schema and is not imported",
                    )
                )
            elif _canonical(declared) != _canonical(source_type_name(column, dialect)):
                found_rows.append(
                    (
                        "schema-variant",
                        "warning",
                        entity.name,
                        None,
                        column.name,
                        declared,
                        f"the schema says {source_type_name(column, dialect)}; accepted, and any value that "
                        "does not fit is reported as its own finding",
                    )
                )
    return found_rows


def check_conformance(tables: dict[str, dict[str, str]]) -> None:
    """Every table and column of the schema exists with a compatible type; else one error naming all."""
    problems: list[str] = []
    for entity in ALL_TABLES:
        qualified = f"{SCHEMA_NAME}.{entity.name}"
        found = tables.get(entity.name.lower())
        if found is None:
            problems.append(f"table {qualified} is missing")
            continue
        for column in entity.all_columns:
            declared = found.get(column.name.lower())
            if declared is None:
                problems.append(f"column {qualified}.{column.name} is missing")
            elif not _compatible(column.kind, declared):
                problems.append(
                    f"column {qualified}.{column.name} is {declared or 'untyped'}; expected "
                    f"{source_type_name(column)}"
                )
    if problems:
        raise SourceError(
            "The source tables do not match schema "
            f"{SCHEMA_VERSION}: " + "; ".join(problems) + f". Create them with Efimis-{SCHEMA_VERSION}.sql.",
            code="schema-mismatch",
        )


def count_rows(source: SourceConnection, entity: Entity) -> int:
    table = _raw_table(source, entity)
    return int(source.rows(select(func.count()).select_from(table))[0][0])


@dataclass(frozen=True)
class Position:
    """Where reading a table stands: the last ImportId read, and how many rows with it were read.

    The loader adopts a batch's `resume` only once it has loaded that batch, so a read that fails mid-way
    resumes after the last loaded batch, however far ahead the reader had read: no duplicates, no gaps."""

    last: object = None
    already_read: int = 0
    done: bool = False


@dataclass
class Batch:
    """One batch ready for staging: the converted rows and the findings met converting them
    (`columnar.Converted`), their read figures, and where reading continues after it."""

    converted: Converted
    tally: Tally
    resume: Position


def read_batches(
    source: SourceConnection,
    entity: Entity,
    batch_size: int,
    checks: Sequence[Check] | None = None,
    position: Position | None = None,
    *,
    store_limit: Decimal | None = None,
) -> Iterator[Batch]:
    """Yield the table in ImportId order, `batch_size` rows at a time, converted for staging.

    Each batch is converted a column at a time (`columnar`); `checks` (one per column, or None) are the
    staging store's own checks of a value, and `store_limit` the largest money magnitude it holds. Each
    query starts at the last ImportId read (`>=`, skipping the rows of that ImportId already read), so rows
    that share an ImportId (a source table without its primary key) are all read and then reported by
    validation, never skipped at a batch boundary; and a new connection can continue from `position`
    (the `resume` of the last batch loaded) where a lost one stopped. The generator ends only at the end
    of the table.
    """
    table = _raw_table(source, entity)
    key = table.c.ImportId
    checks = checks or [None] * len(entity.all_columns)
    at = position or Position()
    while not at.done:
        limit = batch_size + at.already_read
        query = select(*table.c).order_by(key).limit(limit)
        if at.last is not None:
            query = query.where(key >= at.last)
        fetched = source.columns(query, limit=limit)
        rows = fetched.length - at.already_read
        if rows <= 0 or fetched.length < limit:
            after = replace(at, done=True)
        elif (last := fetched.key(fetched.length - 1)) == at.last:
            after = replace(at, already_read=at.already_read + rows)
        else:
            after = Position(last, fetched.count_key(last, start=at.already_read))
        if rows > 0:
            converted = convert_batch(entity, fetched.after(at.already_read), checks, store_limit)
            tally = Tally(entity)
            tally.add_batch(converted.data, converted.rejected)
            yield Batch(converted, tally, after)
        at = after


def source_figures(source: SourceConnection, entity: Entity) -> Figures:
    """The source's own count, and where it sums exactly (not SQLite) its money sums and date ranges."""
    table = _raw_table(source, entity)
    if source.is_sqlite:
        return Figures(rows=count_rows(source, entity))
    row = source.rows(aggregate_query(table, entity))[0]
    return figures_from_aggregates(entity, row, money=_exact_sum, date=_iso_date)


def _exact_sum(value: Any) -> Decimal:
    if isinstance(value, float):  # a server that sums in floating point: its own words, to 4 places
        value = repr(value)
    return Decimal(value).quantize(Decimal("0.0001"))


def _iso_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
