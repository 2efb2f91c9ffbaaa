"""A staging tenant: one store per import request, holding the source rows as read and the findings.

On the embedded default a staging store is one SQLite file. It is created empty for each import and
deleted when the import fails, so a failed import leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    insert,
)

from efimis_etl.schema.model import Entity
from efimis_etl.schema.tables import STAGING
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

    def load(
        self, entity: Entity, rows: Sequence[dict[str, Any]], findings: Sequence[dict[str, Any]]
    ) -> None:
        """Append one batch of rows, and the findings met while reading it, in one transaction."""
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(STAGING.tables[entity.name]), list(rows))
            if findings:
                conn.execute(insert(FINDING), list(findings))

    def discard(self) -> None:
        self.engine.dispose()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
