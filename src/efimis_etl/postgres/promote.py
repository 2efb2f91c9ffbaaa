"""Promotion on PostgreSQL: the same two set-based steps as `promotion.promote`, in one transaction.

The statements name the staged tables in schema `staging` and the production tables unqualified; the
caller maps both with `schema_translate_map` (`{"staging": <schema with the staged rows>, None: <tenant
schema>}`) on a connection to the production server, where both schemas then live:

1. `INSERT … SELECT … ON CONFLICT (ImportId) DO NOTHING`: every ImportId not yet in production gets a row
   and a new platform id (`replace(gen_random_uuid()::text, '-', '')`: 32 hex digits) for life;
2. `UPDATE … FROM` the staged rows, each reference rewritten to the canonical platform reference, only
   where some column `IS DISTINCT FROM` its new value, so promoting twice changes nothing.

Counts (rows, inserted, updated) are exactly those of the SQLite promotion on the same data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    MetaData,
    Select,
    Table,
    UnicodeText,
    cast,
    collate,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from efimis_etl.promotion.promote import PROMOTION_LOG, TableResult, write_values
from efimis_etl.schema.model import ENTITIES, Entity
from efimis_etl.schema.tables import PRODUCTION, STAGING
from efimis_etl.validation.business import platform_reference_regex

STAGED_SCHEMA = "staging"  # translated to the real schema by the caller
_STAGED = MetaData()
for _table in STAGING.tables.values():
    _table.to_metadata(_STAGED, schema=STAGED_SCHEMA)


def staged(entity: Entity) -> Table:
    return _STAGED.tables[f"{STAGED_SCHEMA}.{entity.name}"]


def _is_reference(value: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    return collate(value, "C").op("~", is_comparison=True)(platform_reference_regex(prefix))


def _assign_platform_ids(conn: Connection, entity: Entity, request_id: str) -> int:
    source, promoted = staged(entity), PRODUCTION.tables[entity.name]
    new_id = func.replace(cast(func.gen_random_uuid(), UnicodeText()), "-", "")
    new_rows = select(source.c.ImportId, new_id, literal(request_id))
    statement = (
        pg_insert(promoted)
        .from_select(["ImportId", "PlatformId", "LastRequestId"], new_rows)
        .on_conflict_do_nothing(index_elements=["ImportId"])
    )
    # SQLAlchemy keeps an INSERT's row count only when asked to.
    return conn.execute(statement, execution_options={"preserve_rowcount": True}).rowcount


def _write_values(conn: Connection, entity: Entity, request_id: str) -> int:
    return conn.execute(
        write_values(staged(entity).alias("staged"), entity, request_id, _is_reference)
    ).rowcount


def promote_translated(conn: Connection, request_id: str) -> list[TableResult]:
    """Both steps for every entity and the `_Promotion` record, on `conn` (schemas translated, inside the
    caller's one transaction)."""
    counts = {
        e.name: conn.execute(select(func.count()).select_from(staged(e))).scalar_one() for e in ENTITIES
    }
    inserted = {e.name: _assign_platform_ids(conn, e, request_id) for e in ENTITIES}
    changed = {e.name: _write_values(conn, e, request_id) for e in ENTITIES}
    results = [
        TableResult(e.name, counts[e.name], inserted[e.name], changed[e.name] - inserted[e.name])
        for e in ENTITIES
    ]
    summary = ";".join(f"{r.entity}:{r.inserted}/{r.updated}/{r.unchanged}" for r in results)
    promoted_at = datetime.now(UTC).replace(tzinfo=None)  # the column is a UTC timestamp, as on SQLite
    conn.execute(
        pg_insert(PROMOTION_LOG)
        .values(RequestId=request_id, PromotedAt=promoted_at, Summary=summary)
        .on_conflict_do_update(
            index_elements=["RequestId"], set_={"PromotedAt": promoted_at, "Summary": summary}
        )
    )
    return results


def id_map_query() -> tuple[Select[Any], Any]:
    """(count query, page query without offset/limit) of the id map: every staged row with its platform
    reference, in entity order and then ImportId (binary) order."""
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
    total = select(func.count()).select_from(union)
    page = select(union.c.entity, union.c.import_id, union.c.reference).order_by(
        union.c.position, collate(union.c.import_id, "C")
    )
    return total, page
