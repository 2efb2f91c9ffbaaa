"""A staging tenant: one store per import request, holding the source rows as read and the findings.

On the embedded default a staging store is one SQLite file. It is created empty for each import and
deleted when the import fails, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Unicode,
    UnicodeText,
    select,
)

from efimis_etl.schema.model import Entity, Kind
from efimis_etl.schema.tables import MONEY_SCALE, STAGING
from efimis_etl.source.reconcile import (
    DIGEST_MODULUS,
    Figures,
    aggregate_query,
    figures_from_aggregates,
    import_id_hash,
    money_columns,
)
from efimis_etl.source.values import Rejected
from efimis_etl.sqlite import sqlite_engine

FINDINGS = MetaData()
FINDING = Table(
    "_Finding",
    FINDINGS,
    Column("Id", Integer, primary_key=True, autoincrement=True),
    Column("Rule", Unicode(60), nullable=False),
    Column("Severity", Unicode(10), nullable=False),
    Column("TableName", Unicode(60), nullable=False),
    Column("ImportId", UnicodeText),
    Column("ColumnName", Unicode(60)),
    Column("Value", UnicodeText),
    Column("Detail", UnicodeText),
    # The `required` rule looks up the reader's findings by row and column.
    Index("ix_Finding_row", "TableName", "ColumnName", "ImportId"),
)


SQLITE_MONEY_LIMIT = Decimal(2**63 - 1).scaleb(-MONEY_SCALE)  # 922337203685477.5807


def _scaled(value: Decimal) -> int:
    # Values arrive quantized to 4 places (source.values), so this is exact.
    scaled = int(value.scaleb(MONEY_SCALE))
    if abs(scaled) > 2**63 - 1:
        raise Rejected(
            "precision",
            f"beyond ±{SQLITE_MONEY_LIMIT}, the most the embedded (SQLite) store holds exactly; import into "
            "the PostgreSQL stores (EFIMIS_STAGING_URL), which hold all of DECIMAL(19,4)",
        )
    return scaled


_ENCODERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.MONEY: _scaled,
    Kind.RATE: _scaled,
    Kind.DATE: dt.date.isoformat,
    Kind.BOOLEAN: int,
}
_FINDING_SQL = (
    'INSERT INTO "_Finding" (Rule, Severity, TableName, ImportId, ColumnName, Value, Detail) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@cache
def _insert_sql(entity: Entity) -> str:
    names = ", ".join(f'"{c.name}"' for c in entity.all_columns)
    return f'INSERT INTO "{entity.name}" ({names}) VALUES ({", ".join("?" * len(entity.all_columns))})'


class StagingStore:
    """The staging tenant of one import request."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine

    @classmethod
    def create(cls, path: Path) -> StagingStore:
        if path.exists():
            raise FileExistsError(f"staging store {path} already exists")
        store = cls(path, sqlite_engine(path))
        with store.engine.begin() as conn:
            STAGING.create_all(conn)
            FINDINGS.create_all(conn)
        return store

    @classmethod
    def open(
        cls, path: Path, *, attach: dict[str, Path] | None = None, readonly: bool = False
    ) -> StagingStore:
        if not path.exists():
            raise FileNotFoundError(f"staging store {path} does not exist")
        return cls(path, sqlite_engine(path, attach=attach, readonly=readonly))

    @staticmethod
    def encoders(entity: Entity) -> list[Callable[[Any], Any] | None]:
        """Per column, what turns an exact Python value into what SQLite keeps (None: as it is)."""
        return [_ENCODERS.get(c.kind) for c in entity.all_columns]

    def load(
        self, entity: Entity, rows: Sequence[tuple[Any, ...]], findings: Sequence[tuple[Any, ...]]
    ) -> None:
        """Append one batch of encoded rows, and the findings met reading it, in one transaction."""
        with self.engine.begin() as conn:
            if rows:
                conn.exec_driver_sql(_insert_sql(entity), list(rows))
            if findings:
                conn.exec_driver_sql(_FINDING_SQL, list(findings))

    def measure(self, entity: Entity) -> Figures:
        """The loaded figures of one table, for reconciliation with what was read."""
        table = STAGING.tables[entity.name]
        money = money_columns(entity)
        with self.engine.connect() as conn:
            row = conn.execute(aggregate_query(table, entity, sums=False)).one()
            figures = figures_from_aggregates(entity, tuple(row), money=Decimal, date=str, sums=False)
            # Sums and digest in Python, streamed: SQLite's integer sum() overflows on large totals.
            digest, sums = 0, dict.fromkeys(money, Decimal(0))
            query = select(table.c.ImportId, *(table.c[n] for n in money))
            for import_id, *amounts in conn.execution_options(yield_per=10_000).execute(query):
                if import_id is not None:
                    digest = (digest + import_id_hash(import_id)) % DIGEST_MODULUS
                for name, amount in zip(money, amounts, strict=True):
                    if amount is not None:
                        sums[name] += amount
        figures.digest, figures.sums = f"{digest:016x}", sums
        return figures

    def discard(self) -> None:
        self.engine.dispose()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
