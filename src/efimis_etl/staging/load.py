"""Loading a source into a staging store: connect, check, then copy every table in batches.

Progress is reported through two callbacks, so that an import records it in the platform database and
the pre-flight check (`efimis-etl validate`) can show it on the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from efimis_etl.errors import SourceError
from efimis_etl.schema.model import ENTITIES, Entity
from efimis_etl.source.connect import explain_read_failure, open_source
from efimis_etl.source.connstr import Source
from efimis_etl.source.extract import (
    check_conformance,
    check_schema_version,
    count_rows,
    read_batches,
    source_columns,
)


class Loader(Protocol):
    """Where batches go: a staging store of any backend."""

    def encoders(self, entity: Entity) -> list[Callable[[Any], Any] | None]: ...

    def load(
        self, entity: Entity, rows: Sequence[tuple[Any, ...]], findings: Sequence[tuple[Any, ...]]
    ) -> None: ...


PlanCallback = Callable[[list[tuple[str, int]]], None]
ProgressCallback = Callable[[str, int], None]


def load_from_source(
    source: Source,
    staging: Loader,
    *,
    batch_size: int,
    on_plan: PlanCallback,
    on_progress: ProgressCallback,
) -> None:
    """Copy every table of the source into `staging`, or raise a SourceError saying what to fix."""
    connection = open_source(source)
    try:
        tables = source_columns(connection)
        check_schema_version(connection, tables)
        check_conformance(tables)
        expected = [(e.name, count_rows(connection, e)) for e in ENTITIES]
        on_plan(expected)
        for entity, (_, rows_expected) in zip(ENTITIES, expected, strict=True):
            read = 0
            for batch in read_batches(connection, entity, batch_size, staging.encoders(entity)):
                staging.load(entity, batch.rows, batch.findings)
                read += len(batch.rows)
                on_progress(entity.name, read)
            if read != rows_expected:
                raise SourceError(
                    f"etl.{entity.name}: counted {rows_expected} rows but read {read} in ImportId order. "
                    "Rows without an ImportId, or rows changed during the import, cause this: give "
                    "every row an ImportId and do not change the tables while importing.",
                    code="row-count-mismatch",
                )
    except connection.errors as error:
        raise explain_read_failure(source, error) from None
    finally:
        connection.close()
