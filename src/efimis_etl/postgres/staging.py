"""The staging loader on PostgreSQL: each batch streamed into the import's schema with COPY.

One psycopg connection per import (the reader's batches arrive one at a time), one transaction per batch
(its rows and the reader's findings together), binary COPY with the column types given, so a batch is
written as it is read and nothing accumulates: memory stays flat however large the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from psycopg import sql
from sqlalchemy import Engine, select

from efimis_etl.postgres.naming import columns_sql, db_errors, driver, table_sql
from efimis_etl.schema.model import Entity, Kind
from efimis_etl.schema.tables import STAGING
from efimis_etl.source.reconcile import (
    DIGEST_MODULUS,
    Figures,
    aggregate_query,
    figures_from_aggregates,
    import_id_hash,
)
from efimis_etl.staging.store import FINDING

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
_FINDING_COLUMNS = ["Rule", "Severity", "TableName", "ImportId", "ColumnName", "Value", "Detail"]
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
        table_sql(schema, FINDING.name), columns_sql(_FINDING_COLUMNS)
    )


class PostgresStaging:
    """The staging schema of one import request, open for loading (a `staging.load.Loader`)."""

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
                    copy.set_types(["text"] * len(_FINDING_COLUMNS))
                    for finding in findings:
                        copy.write_row([without_nul(v) if isinstance(v, str) else v for v in finding])

    def measure(self, entity: Entity) -> Figures:
        """The loaded figures of one table, for reconciliation with what was read: aggregates in SQL,
        the ImportId digest streamed through a server-side cursor."""
        table = STAGING.tables[entity.name]
        with self._conn.begin():
            row = self._conn.execute(aggregate_query(table, entity)).one()
            figures = figures_from_aggregates(entity, tuple(row), money=Decimal, date=dt.date.isoformat)
            digest = 0
            ids = self._conn.execute(select(table.c.ImportId), execution_options={"yield_per": 10_000})
            for (import_id,) in ids:
                if import_id is not None:
                    digest = (digest + import_id_hash(import_id)) % DIGEST_MODULUS
        figures.digest = f"{digest:016x}"
        return figures

    def close(self) -> None:
        self._conn.close()
