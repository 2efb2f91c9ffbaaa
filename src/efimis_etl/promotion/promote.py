"""Promotion: staging → the tenant's production store, in one transaction, idempotent by ImportId.

Two set-based steps per entity, all inside one SQLite transaction on the production store (with the
staging store attached read-only as `staging`):

1. every ImportId not yet in production gets a row and a new platform id (32 hex digits), which it keeps
   for life: later promotions of the same ImportId update that row;
2. every row of this import gets its values, with each reference rewritten to the canonical platform
   reference (`matter_<id>`), and only where something differs, so promoting twice changes nothing.

Because the platform ids all exist after step 1, step 2 resolves references in any order, including an
account's reference to its parent account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    UnicodeText,
    case,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Update

from efimis_etl.schema.model import ENTITIES, ENTITY_BY_NAME, Entity, Kind, platform_reference_glob
from efimis_etl.schema.tables import PRODUCTION, STAGING
from efimis_etl.sqlite import sqlite_engine

PROMOTION_LOG = Table(
    "_Promotion",
    MetaData(),
    Column("RequestId", String(32), primary_key=True),
    Column("PromotedAt", DateTime, nullable=False),
    Column("Summary", UnicodeText, nullable=False),
)

_STAGING_ATTACHED = MetaData()
for _table in STAGING.tables.values():
    _table.to_metadata(_STAGING_ATTACHED, schema="staging")


@dataclass(frozen=True)
class TableResult:
    entity: str
    rows: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated


def production_engine(path: Path, *, staging: Path | None = None) -> Engine:
    """The tenant's production store, created with its tables on first use."""
    engine = sqlite_engine(path, attach={"staging": staging} if staging else None)
    with engine.begin() as conn:
        PRODUCTION.create_all(conn)
        PROMOTION_LOG.create(conn, checkfirst=True)
    return engine


def _staged(entity: Entity) -> Any:
    return _STAGING_ATTACHED.tables[f"staging.{entity.name}"]


ReferenceTest = Callable[[ColumnElement[Any], str], ColumnElement[bool]]


def _is_reference(value: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    return value.op("GLOB", is_comparison=True)(platform_reference_glob(prefix))


def resolve_reference(
    value: ColumnElement[Any], target: Entity, is_reference: ReferenceTest
) -> ColumnElement[Any]:
    """A staged reference as the canonical platform reference of the object it names; `is_reference`
    tells, in the store's SQL dialect, whether a value is already a `prefix_<id>` reference."""
    promoted = PRODUCTION.tables[target.name].alias()
    by_import_id = (
        select(literal(target.prefix + "_") + promoted.c.PlatformId)
        .where(promoted.c.ImportId == value)
        .scalar_subquery()
    )
    return case(
        (or_(value.is_(None), func.trim(value) == ""), None),
        (is_reference(value, target.prefix), value),
        else_=by_import_id,
    )


def write_values(staged: Table, entity: Entity, request_id: str, is_reference: ReferenceTest) -> Update:
    """UPDATE … FROM the staged rows: every value, references resolved, only where something differs
    (so promoting twice changes nothing). `staged` must be aliased apart from the production table."""
    promoted = PRODUCTION.tables[entity.name]
    values: dict[str, ColumnElement[Any]] = {}
    for column in entity.columns:
        source = staged.c[column.name]
        if column.kind is Kind.REFERENCE:
            assert column.target is not None
            values[column.name] = resolve_reference(source, ENTITY_BY_NAME[column.target], is_reference)
        else:
            values[column.name] = source
    differs = or_(*(promoted.c[name].is_distinct_from(expr) for name, expr in values.items()))
    return (
        update(promoted)
        .values({**values, "LastRequestId": literal(request_id)})
        .where(promoted.c.ImportId == staged.c.ImportId, differs)
    )


def _assign_platform_ids(conn: Connection, entity: Entity, request_id: str) -> int:
    staged, promoted = _staged(entity), PRODUCTION.tables[entity.name]
    new_rows = select(
        staged.c.ImportId, func.lower(func.hex(func.randomblob(16))), literal(request_id)
    ).where(true())  # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT
    statement = (
        sqlite_insert(promoted)
        .from_select(["ImportId", "PlatformId", "LastRequestId"], new_rows)
        .on_conflict_do_nothing(index_elements=["ImportId"])
    )
    return conn.execute(statement).rowcount


def _write_values(conn: Connection, entity: Entity, request_id: str) -> int:
    # Aliased: staging and production tables share names, and UPDATE … FROM needs them apart.
    return conn.execute(
        write_values(_staged(entity).alias("staged"), entity, request_id, _is_reference)
    ).rowcount


def promote(production: Path, staging: Path, request_id: str) -> list[TableResult]:
    """Move one import's staging data into production: all of it, or (on any error) none of it."""
    engine = production_engine(production, staging=staging)
    try:
        with engine.begin() as conn:
            counts = {
                e.name: conn.execute(select(func.count()).select_from(_staged(e))).scalar_one()
                for e in ENTITIES
            }
            inserted = {e.name: _assign_platform_ids(conn, e, request_id) for e in ENTITIES}
            changed = {e.name: _write_values(conn, e, request_id) for e in ENTITIES}
            results = [
                TableResult(e.name, counts[e.name], inserted[e.name], changed[e.name] - inserted[e.name])
                for e in ENTITIES
            ]
            summary = ";".join(f"{r.entity}:{r.inserted}/{r.updated}/{r.unchanged}" for r in results)
            conn.execute(
                sqlite_insert(PROMOTION_LOG)
                .values(RequestId=request_id, PromotedAt=datetime.now(UTC), Summary=summary)
                .on_conflict_do_update(
                    index_elements=["RequestId"],
                    set_={"PromotedAt": datetime.now(UTC), "Summary": summary},
                )
            )
        return results
    finally:
        engine.dispose()


def id_map(production: Path, staging: Path, *, offset: int, limit: int) -> tuple[int, list[dict[str, str]]]:
    """The platform ids of this import's objects: (total, one page of entity/ImportId/reference)."""
    engine = production_engine(production, staging=staging)
    try:
        with engine.connect() as conn:
            parts = []
            for position, entity in enumerate(ENTITIES):
                staged, promoted = _staged(entity), PRODUCTION.tables[entity.name]
                parts.append(
                    select(
                        literal(position).label("position"),
                        literal(entity.name).label("entity"),
                        staged.c.ImportId.label("import_id"),
                        (literal(entity.prefix + "_") + promoted.c.PlatformId).label("reference"),
                    ).join_from(staged, promoted, promoted.c.ImportId == staged.c.ImportId)
                )
            union = parts[0].union_all(*parts[1:]).subquery()
            total = conn.execute(select(func.count()).select_from(union)).scalar_one()
            page = conn.execute(
                select(union.c.entity, union.c.import_id, union.c.reference)
                .order_by(union.c.position, union.c.import_id)
                .offset(offset)
                .limit(limit)
            ).all()
        return total, [{"entity": e, "importId": i, "reference": r} for e, i, r in page]
    finally:
        engine.dispose()


__all__ = ["TableResult", "id_map", "production_engine", "promote"]
