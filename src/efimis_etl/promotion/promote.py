"""Promotion: staging → the tenant's production store, in one transaction, idempotent by ImportId.

One implementation for every store: the statements read the staged rows under `STAGED_SCHEMA` and write
the production tables unqualified, on the connection `TenantStores.promotion_session` gives. Two
set-based steps per entity:

1. every ImportId not yet in production gets a row and a new platform id (32 hex digits), which it keeps
   for life: later promotions of the same ImportId update that row;
2. every row of this import gets its values, with each reference rewritten to the canonical platform
   reference (`matter_<id>`), and only where something differs, so promoting twice changes nothing.

Because the platform ids all exist after step 1, step 2 resolves references in any order, including an
account's reference to its parent account.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)

from efimis_etl.schema.model import ENTITIES, ENTITY_BY_NAME, Entity, Kind
from efimis_etl.schema.tables import PRODUCTION
from efimis_etl.stores.base import PROMOTION_LOG, TableResult, TenantStores, staged
from efimis_etl.stores.sql import binary_order, is_platform_reference, new_platform_id

_COUNTED = {"preserve_rowcount": True}  # SQLAlchemy keeps an INSERT's row count only when asked


def promote(stores: TenantStores, request_id: str, tenant: str) -> list[TableResult]:
    """Move one import's staging data into production: all of it, or (on any error) none of it."""
    with stores.promotion_session(request_id, tenant, write=True) as conn:
        counts = {
            e.name: conn.execute(select(func.count()).select_from(staged(e))).scalar_one() for e in ENTITIES
        }
        inserted = {e.name: _assign_platform_ids(conn, e, request_id) for e in ENTITIES}
        changed = {e.name: conn.execute(write_values(e, request_id)).rowcount for e in ENTITIES}
        results = [
            TableResult(e.name, counts[e.name], inserted[e.name], changed[e.name] - inserted[e.name])
            for e in ENTITIES
        ]
        _log(conn, request_id, results)
        return results


def _assign_platform_ids(conn: Connection, entity: Entity, request_id: str) -> int:
    source, promoted = staged(entity), PRODUCTION.tables[entity.name]
    new_rows = select(source.c.ImportId, new_platform_id(), literal(request_id)).where(
        not_(exists().where(promoted.c.ImportId == source.c.ImportId))
    )
    statement = insert(promoted).from_select(["ImportId", "PlatformId", "LastRequestId"], new_rows)
    return conn.execute(statement, execution_options=_COUNTED).rowcount


def resolve_reference(value: ColumnElement[Any], target: Entity) -> ColumnElement[Any]:
    """A staged reference as the canonical platform reference of the object it names."""
    promoted = PRODUCTION.tables[target.name].alias()
    by_import_id = (
        select(literal(target.prefix + "_") + promoted.c.PlatformId)
        .where(promoted.c.ImportId == value)
        .scalar_subquery()
    )
    return case(
        (or_(value.is_(None), func.trim(value) == ""), None),
        (is_platform_reference(value, target.prefix), value),
        else_=by_import_id,
    )


def write_values(entity: Entity, request_id: str) -> Any:
    """UPDATE … FROM the staged rows: every value, references resolved, only where something differs
    (so promoting twice changes nothing)."""
    # Aliased: staged and production tables share names, and UPDATE … FROM needs them apart.
    source: Table = staged(entity).alias("staged")  # type: ignore[assignment]
    promoted = PRODUCTION.tables[entity.name]
    values: dict[str, ColumnElement[Any]] = {}
    for column in entity.columns:
        value = source.c[column.name]
        if column.kind is Kind.REFERENCE:
            assert column.target is not None
            values[column.name] = resolve_reference(value, ENTITY_BY_NAME[column.target])
        else:
            values[column.name] = value
    differs = or_(*(promoted.c[name].is_distinct_from(expr) for name, expr in values.items()))
    return (
        update(promoted)
        .values({**values, "LastRequestId": literal(request_id)})
        .where(promoted.c.ImportId == source.c.ImportId, differs)
    )


def _log(conn: Connection, request_id: str, results: list[TableResult]) -> None:
    summary = ";".join(f"{r.entity}:{r.inserted}/{r.updated}/{r.unchanged}" for r in results)
    promoted_at = datetime.now(UTC).replace(tzinfo=None)  # a UTC timestamp
    conn.execute(delete(PROMOTION_LOG).where(PROMOTION_LOG.c.RequestId == request_id))
    conn.execute(insert(PROMOTION_LOG).values(RequestId=request_id, PromotedAt=promoted_at, Summary=summary))


def id_map(
    stores: TenantStores, request_id: str, tenant: str, *, offset: int, limit: int
) -> tuple[int, list[dict[str, str]]]:
    """The platform ids of this import's objects: (total, one page of entity/ImportId/reference), in
    entity order, then ImportId in binary order."""
    parts = []
    for position, entity in enumerate(ENTITIES):
        source, promoted = staged(entity), PRODUCTION.tables[entity.name]
        parts.append(
            select(
                literal(position).label("position"),
                literal(entity.name).label("entity"),
                source.c.ImportId.label("import_id"),
                (literal(entity.prefix + "_") + promoted.c.PlatformId).label("reference"),
            ).join_from(source, promoted, promoted.c.ImportId == source.c.ImportId)
        )
    union = parts[0].union_all(*parts[1:]).subquery()
    page = (
        select(union.c.entity, union.c.import_id, union.c.reference)
        .order_by(union.c.position, binary_order(union.c.import_id))
        .offset(offset)
        .limit(limit)
    )
    with stores.promotion_session(request_id, tenant, write=False) as conn:
        total = conn.execute(select(func.count()).select_from(union)).scalar_one()
        rows = conn.execute(page).all()
    return total, [{"entity": e, "importId": i, "reference": r} for e, i, r in rows]


def iter_id_map(
    stores: TenantStores, request_id: str, tenant: str, *, batch: int = 5000
) -> Iterator[dict[str, str]]:
    """The whole id map in `id_map`'s order, read a batch at a time after the last ImportId (keyset, never
    OFFSET), a connection per batch: none is held while a slow download reads."""
    for entity in ENTITIES:
        source, promoted = staged(entity), PRODUCTION.tables[entity.name]
        key = binary_order(source.c.ImportId)
        last: str | None = None
        while True:
            query = (
                select(source.c.ImportId, literal(entity.prefix + "_") + promoted.c.PlatformId)
                .join_from(source, promoted, promoted.c.ImportId == source.c.ImportId)
                .order_by(key)
                .limit(batch)
            )
            if last is not None:
                query = query.where(key > binary_order(literal(last)))
            with stores.promotion_session(request_id, tenant, write=False) as conn:
                rows = conn.execute(query).all()
            yield from ({"entity": entity.name, "importId": i, "reference": r} for i, r in rows)
            if len(rows) < batch:
                break
            last = rows[-1][0]
