"""The staging loader on PostgreSQL: each Arrow batch streamed into the import's schema with binary COPY.

One psycopg connection per import (the reader's batches arrive one at a time), one transaction per batch
(its rows and the reader's findings together). A batch goes from Arrow to PostgreSQL's binary COPY format
in one call (`pgpq`, in Rust: no Python object per value), so a batch is written as it is read and
nothing accumulates: memory stays flat however large the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import pgpq
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from sqlalchemy import Connection, Engine

from efimis_etl.digest import DIGEST_MODULUS
from efimis_etl.schema.model import Entity
from efimis_etl.stores.base import FINDING, FINDING_COLUMNS
from efimis_etl.stores.postgres_naming import columns_sql, db_errors, driver, table_sql

REPLACEMENT = "\ufffd"


def without_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL (U+0000), which SQL Server and SQLite text can: it becomes U+FFFD
    (the replacement character), visibly, rather than failing the whole import."""
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value


def _without_nul(data: pa.RecordBatch) -> pa.RecordBatch:
    """`without_nul` on every text column that has a NUL, a column at a time."""
    columns = list(data.columns)
    for index, column in enumerate(columns):
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if text and pc.any(pc.match_substring(column, "\x00")).as_py():
            columns[index] = pc.replace_substring(column, "\x00", REPLACEMENT)
    return pa.RecordBatch.from_arrays(columns, schema=data.schema)


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

    store_limit = None  # NUMERIC(19,4) holds every value the schema allows

    def __init__(self, engine: Engine, schema: str) -> None:
        self.schema = schema
        self._conn = engine.connect().execution_options(schema_translate_map={None: schema})

    @staticmethod
    def checks(entity: Entity) -> list[Callable[[Any], Any] | None]:
        """NUMERIC(19,4) and text hold every value the schema allows: nothing to refuse."""
        return [None] * len(entity.all_columns)

    def load(self, entity: Entity, data: pa.RecordBatch | None, findings: Sequence[tuple[Any, ...]]) -> None:
        """Append one batch of rows, and the findings met reading it, in one transaction."""
        with (
            self._conn.begin(),
            db_errors(f"COPY into {self.schema}.{entity.name}"),
            driver(self._conn).cursor() as cursor,
        ):
            if data is not None and data.num_rows:
                data = _without_nul(data)
                encoder = pgpq.ArrowToPostgresBinaryEncoder(data.schema)
                with cursor.copy(_copy_rows(self.schema, entity)) as copy:
                    copy.write(encoder.write_header())
                    copy.write(encoder.write_batch(data))
                    copy.write(encoder.finish())
            if findings:
                with cursor.copy(_copy_findings(self.schema)) as copy:
                    copy.set_types(["text"] * len(FINDING_COLUMNS))
                    for finding in findings:
                        copy.write_row([without_nul(v) if isinstance(v, str) else v for v in finding])

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._conn.begin():
            yield self._conn

    def import_id_digest(self, conn: Connection, entity: Entity) -> int:
        """Summed in SQL: `hashtextextended` is the hash `source.reconcile.text_hashes` computes."""
        statement = sql.SQL("SELECT sum(hashtextextended({}, 0)) FROM {}").format(
            sql.Identifier("ImportId"), table_sql(self.schema, entity.name)
        )
        with driver(conn).cursor() as cursor:
            total = cursor.execute(statement).fetchone()
        return int(total[0] or 0) % DIGEST_MODULUS if total else 0

    def close(self) -> None:
        self._conn.close()
