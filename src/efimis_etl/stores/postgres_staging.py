"""The staging loader on PostgreSQL: each batch streamed into the import's schema with COPY.

One psycopg connection per import (the reader's batches arrive one at a time), one transaction per batch
(its rows and the reader's findings together), binary COPY with the column types given, so a batch is
written as it is read and nothing accumulates: memory stays flat however large the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, Engine

from efimis_etl.schema.model import Entity, Kind
from efimis_etl.stores.base import FINDING, FINDING_COLUMNS
from efimis_etl.stores.postgres_naming import columns_sql, db_errors, driver, table_sql

# The COPY type of each kind: values arrive as str, int, bool, Decimal (4 places) and date (source.values).
_COPY_TYPES = {
    Kind.TEXT: "text",
    Kind.LONG_TEXT: "text",
    Kind.REFERENCE: "text",
    Kind.INTEGER: "int8",
    Kind.ENUM: "int8",
    Kind.BOOLEAN: "bool",
    Kind.MONEY: "numeric",
    Kind.RATE: "numeric",
    Kind.DATE: "date",
}
_TEXT_KINDS = frozenset({Kind.TEXT, Kind.LONG_TEXT, Kind.REFERENCE})
REPLACEMENT = "\ufffd"


def without_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL (U+0000), which SQL Server and SQLite text can: it becomes U+FFFD
    (the replacement character), visibly, rather than failing the whole import."""
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value


@cache
def _copy_rows(schema: str, entity: Entity) -> sql.Composed:
    columns = [c.name for c in entity.all_columns]
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table_sql(schema, entity.name), columns_sql(columns)
    )


@cache
def _copy_findings(schema: str) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table_sql(schema, FINDING.name), columns_sql(FINDING_COLUMNS)
    )


class PostgresStaging:
    """The staging schema of one import request, open for loading (a `stores.base.Loader`)."""

    sums_in_sql = True  # NUMERIC sums are exact

    def __init__(self, engine: Engine, schema: str) -> None:
        self.schema = schema
        self._conn = engine.connect().execution_options(schema_translate_map={None: schema})

    @staticmethod
    def encoders(entity: Entity) -> list[Callable[[Any], Any] | None]:
        """COPY takes the exact Python values as they are; text only loses NUL characters."""
        return [without_nul if c.kind in _TEXT_KINDS else None for c in entity.all_columns]

    def load(
        self, entity: Entity, rows: Sequence[tuple[Any, ...]], findings: Sequence[tuple[Any, ...]]
    ) -> None:
        """Append one batch of rows, and the findings met reading it, in one transaction."""
        with (
            self._conn.begin(),
            db_errors(f"COPY into {self.schema}.{entity.name}"),
            driver(self._conn).cursor() as cursor,
        ):
            if rows:
                with cursor.copy(_copy_rows(self.schema, entity)) as copy:
                    copy.set_types([_COPY_TYPES[c.kind] for c in entity.all_columns])
                    for row in rows:
                        copy.write_row(row)
            if findings:
                with cursor.copy(_copy_findings(self.schema)) as copy:
                    copy.set_types(["text"] * len(FINDING_COLUMNS))
                    for finding in findings:
                        copy.write_row([without_nul(v) if isinstance(v, str) else v for v in finding])

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._conn.begin():
            yield self._conn

    def close(self) -> None:
        self._conn.close()
