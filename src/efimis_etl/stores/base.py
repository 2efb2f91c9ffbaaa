"""The seam between the stages and the databases: the store protocol and the tables every store shares.

A *staging store* holds one import request's rows as read (the `STAGING` tables) and its findings; a
*production store* holds one tenant's promoted rows (`PRODUCTION`) and its promotion log. Stages
(`staging`, `validation`, `promotion`) write dialect-neutral SQLAlchemy against these tables and ask a
`TenantStores` for connections on which the names resolve: staging tables unqualified, or under
`STAGED_SCHEMA` beside unqualified production tables. Each backend (`stores.sqlite`, `stores.postgres`)
implements all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy import Column, Connection, Index, MetaData, Table
from sqlalchemy.types import DateTime, Integer, String, Unicode, UnicodeText

from efimis_etl.schema.model import ENTITIES, IMPORT_ID_LENGTH, Entity
from efimis_etl.schema.tables import PRODUCTION, STAGING

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
# A finding as the reader and the rules write it: every column but the Id, in this order.
FINDING_COLUMNS = [c.name for c in FINDING.columns if c.name != "Id"]

# In every staging store: which request it holds and since when (retention).
META = Table(
    "_Meta",
    FINDINGS,
    Column("RequestId", String(64), primary_key=True),
    Column("CreatedAt", DateTime(timezone=True), nullable=False),
)

# Every production column the rules read besides each entity's ImportId and PlatformId: a store whose
# production lives on another server copies these for validation.
PRODUCTION_LOOKUPS: dict[str, tuple[str, ...]] = {
    "Invoice": ("MatterId",),
    "Account": ("JournalId",),
    "Journal": ("Type",),
}

PROMOTION_LOG = Table(
    "_Promotion",
    MetaData(),
    Column("RequestId", String(32), primary_key=True),
    Column("PromotedAt", DateTime, nullable=False),
    Column("Summary", UnicodeText, nullable=False),
)

# Beside the production tables, in every production store: what a revert needs (`promotion.revert`).
REVISIONS = MetaData()
# One row per promotion and per revert, numbered in the order they committed: the latest number is the
# production revision a preview was computed against.
REVISION = Table(
    "_Revision",
    REVISIONS,
    Column("Revision", Integer, primary_key=True, autoincrement=True),
    Column("RequestId", String(32), nullable=False, index=True),
    Column("Action", String(10), nullable=False),  # "promote" or "revert"
    Column("At", DateTime, nullable=False),  # UTC
    Column("RevertedBy", Integer),  # a promotion's: the revert that undid it
)
# The platform ids of rows a revert deleted: promoting the same ImportId again gives the same id back.
RETIRED_ID = Table(
    "_RetiredId",
    REVISIONS,
    Column("TableName", Unicode(60), primary_key=True),
    Column("ImportId", Unicode(IMPORT_ID_LENGTH), primary_key=True),
    Column("PlatformId", String(32), nullable=False),
)


def _before_image(entity: Entity) -> Table:
    """The production rows a promotion updated, as they were before it: one per updated row only."""
    promoted = PRODUCTION.tables[entity.name]
    columns = [Column(c.name, c.type, primary_key=c.name == "ImportId") for c in promoted.columns]
    return Table(f"_Before_{entity.name}", REVISIONS, Column("Revision", Integer, primary_key=True), *columns)


BEFORE_IMAGE = {e.name: _before_image(e) for e in ENTITIES}

# A promotion's id map of the objects new to production, one temporary table per entity (dropped at
# commit); `ID_SCHEMA` is translated to each database's schema of temporary tables (`temp`, `pg_temp`) on
# a promotion connection.
ID_SCHEMA = "ids"
IDS = MetaData()
ID_MAP = {
    e.name: Table(
        f"_Ids_{e.name}",
        IDS,
        Column("ImportId", Unicode(IMPORT_ID_LENGTH), primary_key=True),
        Column("PlatformId", String(32), nullable=False),
        schema=ID_SCHEMA,
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    for e in ENTITIES
}

# On a promotion connection the staged rows are in this schema, production's tables unqualified.
STAGED_SCHEMA = "staging"
_STAGED = MetaData()
for _table in STAGING.tables.values():
    _table.to_metadata(_STAGED, schema=STAGED_SCHEMA)


def staged(entity: Entity) -> Table:
    """An entity's staged rows as a promotion connection names them."""
    return _STAGED.tables[f"{STAGED_SCHEMA}.{entity.name}"]


@dataclass(frozen=True)
class TableResult:
    """What one promotion did to one table."""

    entity: str
    rows: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated


class Loader(Protocol):
    """A staging store open for loading: batches go in, figures come out for reconciliation."""

    # The largest money magnitude the store holds exactly, where that is less than the schema allows.
    store_limit: Decimal | None

    def checks(self, entity: Entity) -> list[Callable[[Any], Any] | None]:
        """Per column, the store's own check of one exact Python value (None: it holds every value);
        raises `Rejected` for a value it cannot hold, and is asked only about columns beyond `store_limit`."""
        ...

    def load(self, entity: Entity, data: pa.RecordBatch | None, findings: Sequence[tuple[Any, ...]]) -> None:
        """Append one batch of rows (Arrow, in `source.columnar.arrow_schema(entity)`) and the findings met
        reading it, in one transaction."""
        ...

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection in one snapshot of the store, its tables unqualified."""
        ...

    def import_id_digest(self, conn: Connection, entity: Entity) -> int:
        """The `digest.import_id_digest` of an entity's staged ImportIds, on `reading()`'s
        connection."""
        ...


class TenantStores(Protocol):
    """Where tenant data lives. Every method takes request ids the service issued (`ids`) and refuses
    anything else."""

    def create_staging(self, request_id: str) -> Loader: ...

    def close_staging(self, loader: Loader) -> None: ...

    def staging_exists(self, request_id: str) -> bool: ...

    def discard_staging(self, request_id: str) -> None: ...

    def validation_session(
        self, request_id: str, tenant: str
    ) -> AbstractContextManager[tuple[Connection, str]]:
        """One transaction on the staging store (its tables unqualified), with the tenant's production
        tables readable under the schema name returned beside the connection."""
        ...

    def staging_session(self, request_id: str) -> AbstractContextManager[Connection]:
        """A read-only connection on the staging store, its tables (staged rows, findings) unqualified."""
        ...

    def promotion_session(
        self, request_id: str, tenant: str, *, write: bool
    ) -> AbstractContextManager[Connection]:
        """A connection on the tenant's production store (created on first use), its tables unqualified,
        with the request's staged rows under `STAGED_SCHEMA`. With `write`, one transaction, and no other
        promotion of the tenant runs until it ends."""
        ...

    def production_session(self, tenant: str, *, write: bool) -> AbstractContextManager[Connection]:
        """A connection on the tenant's production store (created on first use), its tables unqualified,
        without any staged rows (a revert needs none). With `write`, one transaction, and no promotion of
        the tenant runs until it ends."""
        ...

    def production_rows(self, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
        """Every production row by table, ImportId in binary order (checksums, tests)."""
        ...

    def production_snapshot(self, tenant: str) -> AbstractContextManager[Connection | None]:
        """A read-only connection in one snapshot of the tenant's production store, its tables (`PRODUCTION`)
        unqualified; None when the tenant has no production store yet. It creates nothing, writes nothing,
        and takes no lock a promotion would wait for (the pre-flight reads production through it)."""
        ...

    def drop_expired_staging(self, now: datetime, *, in_use: Callable[[str], bool]) -> list[str]:
        """Delete the staging stores created more than the retention before `now`; their request ids.

        A store knows no request states, so the caller says which stores an unfinished import still needs:
        `in_use(request_id)` is asked for each expired store just before it would be dropped (as late as
        possible, so a promotion requested meanwhile is seen), and a store in use is kept, however old."""
        ...

    def dispose(self) -> None: ...
