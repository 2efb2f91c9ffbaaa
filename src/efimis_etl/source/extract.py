"""Reading the customer's `etl` tables: schema version, conformance, then every table in batches.

Reads are SELECT statements only (a db_datareader login is enough) and go in ImportId order, one batch
per query (keyset pagination), so no table is ever held in memory whole and every batch is an indexed
range scan on the primary key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column as SAColumn
from sqlalchemy import Connection, MetaData, Table, func, inspect, select
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import mssql
from sqlalchemy.types import NullType

from efimis_etl.errors import SourceError
from efimis_etl.schema.model import (
    ALL_TABLES,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ENTITY,
    Column,
    Entity,
    Kind,
)
from efimis_etl.schema.tables import source_type_name
from efimis_etl.source.values import Converter, Rejected, converter


def _raw_table(entity: Entity) -> Table:
    """The table with untyped columns, so values arrive as the driver made them and nothing (such as
    SQLAlchemy's float-to-Decimal rounding on SQLite) alters them before `values` checks them."""
    return Table(
        entity.name,
        MetaData(schema=SCHEMA_NAME),
        *(SAColumn(c.name, NullType()) for c in entity.all_columns),
    )


def check_schema_version(conn: Connection) -> None:
    table = _raw_table(SCHEMA_VERSION_ENTITY)
    if not inspect(conn).has_table(table.name, schema=_schema(conn)):
        raise SourceError(
            f"The source has no table {SCHEMA_NAME}.SchemaVersion: create the tables by running "
            f"Efimis-{SCHEMA_VERSION}.sql (GET /etl/schema/Efimis-{SCHEMA_VERSION}.sql) in this database.",
            code="schema-missing",
        )
    versions = [str(v) for v in conn.execute(select(table.c.Version)).scalars()]
    if versions != [SCHEMA_VERSION]:
        found = ", ".join(repr(v) for v in versions) or "no row"
        raise SourceError(
            f"{SCHEMA_NAME}.SchemaVersion holds {found}; this service imports schema {SCHEMA_VERSION} "
            f"only: build the tables from Efimis-{SCHEMA_VERSION}.sql, which inserts the one row "
            f"Version = '{SCHEMA_VERSION}'.",
            code="schema-version",
        )


def _schema(conn: Connection) -> str | None:
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    return translate.get(SCHEMA_NAME, SCHEMA_NAME)


def _compatible(kind: Kind, found: sqltypes.TypeEngine[Any]) -> bool:
    if isinstance(found, sqltypes.Float):
        return False  # a float column has already lost cents; no conversion can bring them back
    match kind:
        case Kind.TEXT | Kind.LONG_TEXT | Kind.REFERENCE:
            return isinstance(found, sqltypes.String)
        case Kind.INTEGER | Kind.ENUM:
            return isinstance(found, sqltypes.Integer)
        case Kind.BOOLEAN:
            return isinstance(found, sqltypes.Boolean | sqltypes.Integer)
        case Kind.MONEY | Kind.RATE:
            return isinstance(found, sqltypes.Numeric | mssql.MONEY | mssql.SMALLMONEY)
        case Kind.DATE:
            return isinstance(found, sqltypes.Date | sqltypes.DateTime)


def check_conformance(conn: Connection) -> None:
    """Every table and column of the schema exists with a compatible type; else one error naming all."""
    inspector = inspect(conn)
    schema = _schema(conn)
    problems: list[str] = []
    for entity in ALL_TABLES:
        qualified = f"{SCHEMA_NAME}.{entity.name}"
        if not inspector.has_table(entity.name, schema=schema):
            problems.append(f"table {qualified} is missing")
            continue
        found = {c["name"].lower(): c for c in inspector.get_columns(entity.name, schema=schema)}
        for column in entity.all_columns:
            actual = found.get(column.name.lower())
            if actual is None:
                problems.append(f"column {qualified}.{column.name} is missing")
            elif not _compatible(column.kind, actual["type"]):
                problems.append(
                    f"column {qualified}.{column.name} is {_type_name(actual['type'])}; expected "
                    f"{source_type_name(column)}"
                )
    if problems:
        raise SourceError(
            "The source tables do not match schema "
            f"{SCHEMA_VERSION}: " + "; ".join(problems) + f". Create them with Efimis-{SCHEMA_VERSION}.sql.",
            code="schema-mismatch",
        )


def _type_name(found: sqltypes.TypeEngine[Any]) -> str:
    try:
        return str(found.compile(dialect=mssql.dialect()))
    except Exception:  # a reflected type SQL Server has no name for
        return type(found).__name__.upper()


def count_rows(conn: Connection, entity: Entity) -> int:
    return int(conn.execute(select(func.count()).select_from(_raw_table(entity))).scalar_one())


@dataclass
class Batch:
    """Rows ready for staging, and the findings met converting them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)


def read_batches(conn: Connection, entity: Entity, batch_size: int) -> Iterator[Batch]:
    """Yield the table in ImportId order, `batch_size` rows at a time, converted for staging.

    Each query starts at the last ImportId read (`>=`, skipping the rows of that ImportId already read),
    so rows that share an ImportId (a source table without its primary key) are all read and then
    reported by validation, never skipped at a batch boundary.
    """
    table = _raw_table(entity)
    key = table.c.ImportId
    converters: list[tuple[str, Column, Converter]] = [(c.name, c, converter(c)) for c in entity.all_columns]
    last: object = None
    already_read = 0  # rows with ImportId == last that earlier batches yielded
    while True:
        query = select(*table.c).order_by(key).limit(batch_size + already_read)
        if last is not None:
            query = query.where(key >= last)
        fetched = conn.execute(query).all()
        rows = fetched[already_read:]
        if not rows:
            return
        batch = Batch()
        for row in rows:
            batch.rows.append(_convert(entity, row, converters, batch.findings))
        yield batch
        if len(fetched) < batch_size + already_read:
            return
        if rows[-1][0] == last:
            already_read += len(rows)
        else:
            last = rows[-1][0]
            already_read = sum(1 for row in rows if row[0] == last)


def _convert(
    entity: Entity, row: Any, converters: list[tuple[str, Column, Converter]], findings: list[dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (name, _column, convert), value in zip(converters, row, strict=True):
        if value is None:
            out[name] = None
            continue
        try:
            out[name] = convert(value)
        except Rejected as rejected:
            out[name] = None
            findings.append(
                {
                    "Rule": rejected.rule,
                    "Severity": "error",
                    "TableName": entity.name,
                    "ImportId": None if row[0] is None else str(row[0]),
                    "ColumnName": name,
                    "Value": str(value)[:200],
                    "Detail": rejected.detail,
                }
            )
    return out
