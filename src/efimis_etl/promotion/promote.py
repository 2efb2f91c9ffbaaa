"""Promotion: staging → the tenant's production store, in one transaction, idempotent by ImportId.

One implementation for every store: the statements read the staged rows under `STAGED_SCHEMA` and write
the production tables unqualified, on the connection `TenantStores.promotion_session` gives.

1. The platform id map, for every entity some reference names, before any row is written (a reference
   may name an object of the same import, such as an account's parent): each staged ImportId new to
   production with the platform id it had before a revert deleted it (`_RetiredId`), or a new one (32 hex
   digits), generated once. An entity nothing refers to gets its ids the same way as its rows are
   inserted. An object keeps its platform id for life.
2. Per table, the rows it is about to update, as they are (before-images, for a revert: only the rows
   that differ, so a first promotion copies nothing).
3. Per table, the rows new to production in one `INSERT … SELECT …`, and the rows found to differ in one
   `INSERT … SELECT … ON CONFLICT (ImportId) DO UPDATE … WHERE … IS DISTINCT FROM …`: every value, each
   reference resolved by joins to the id map (and to production, for objects of earlier imports) into
   the canonical platform reference (`matter_<id>`). Every row is written once; an unchanged row is not
   written at all, so promoting twice changes nothing.

The preview (`diff`) is the same comparison without the write: its id map is a query instead of a
temporary table, and an object not yet in production shows as `prefix_new:<ImportId>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    Table,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

from efimis_etl.errors import EtlError
from efimis_etl.schema.model import ENTITIES, ENTITY_BY_NAME, Entity, Kind
from efimis_etl.schema.tables import PRODUCTION
from efimis_etl.stores.base import (
    BEFORE_IMAGE,
    ID_MAP,
    PROMOTION_LOG,
    RETIRED_ID,
    REVISION,
    TableResult,
    TenantStores,
    staged,
)
from efimis_etl.stores.sql import (
    binary_order,
    is_reference,
    new_platform_id,
)

_COUNTED = {"preserve_rowcount": True}  # SQLAlchemy keeps an INSERT's row count only when asked
NEW = "new:"  # a preview's stand-in for a platform id not generated yet


class ProductionMoved(EtlError):
    """Production is not at the revision the caller saw: another promotion or revert happened since."""

    code = "production-moved"

    def __init__(self, expected: int, current: int, movers: list[str]) -> None:
        self.expected, self.current, self.movers = expected, current, movers
        names = ", ".join(movers) or "none recorded"
        super().__init__(
            f"Production has moved since revision {expected}: it is at revision {current}, changed by "
            f"import(s) {names}. Nothing was written; preview again and promote with productionRevision "
            f"{current}."
        )


@dataclass(frozen=True)
class Promoted:
    """What a promotion did: per table, and the production revision it made."""

    tables: list[TableResult]
    revision: int


def promote(stores: TenantStores, request_id: str, tenant: str) -> list[TableResult]:
    """Move one import's staging data into production: all of it, or (on any error) none of it."""
    return promote_revision(stores, request_id, tenant).tables


def promote_revision(
    stores: TenantStores,
    request_id: str,
    tenant: str,
    *,
    expected_revision: int | None = None,
    keep_days: float = 30,
) -> Promoted:
    """`promote`, also saying which production revision it made; with `expected_revision`, refused
    (`ProductionMoved`, nothing written) unless production is still at that revision. Before-images of
    promotions older than `keep_days` (EFIMIS_REVERT_DAYS) are dropped: those can no longer be reverted."""
    with stores.promotion_session(request_id, tenant, write=True) as conn:
        if expected_revision is not None:
            check_revision(conn, expected_revision)
        _drop_expired_before_images(conn, keep_days)
        revision = _new_revision(conn, request_id, "promote")
        counts = {e.name: _count(conn, staged(e)) for e in ENTITIES}
        inserted = {e.name: _build_id_map(conn, e) for e in ENTITIES if e.name in REFERENCED}
        # An entity nothing refers to gets its new ids as it is inserted: no map written for it (for work
        # items, the biggest table, that map was a third of the promotion).
        idmaps: dict[str, FromClause] = {
            e.name: ID_MAP[e.name] if e.name in REFERENCED else _new_ids(e) for e in ENTITIES
        }
        updated = {}
        for entity in ENTITIES:
            resolved = resolved_rows(entity, request_id, idmaps)
            updated[entity.name] = _keep_before_images(conn, entity, resolved, revision)
            # Rows new to production are plain inserts (under the promotion lock nothing else can add
            # them, and a conflict check per row costs a first promotion a third more); only the rows
            # just found to differ go through ON CONFLICT. Unchanged rows are neither written nor locked.
            promoted = PRODUCTION.tables[entity.name]
            new_rows = resolved_rows(entity, request_id, idmaps, only_new=True)
            written = conn.execute(
                insert(promoted).from_select([c.name for c in promoted.columns], new_rows),
                execution_options=_COUNTED,
            )
            inserted.setdefault(entity.name, int(written.rowcount))
            if updated[entity.name]:
                changed = resolved_rows(entity, request_id, idmaps, changed_in=revision)
                conn.execute(_upsert(conn, entity, changed))
        results = [TableResult(e.name, counts[e.name], inserted[e.name], updated[e.name]) for e in ENTITIES]
        _log(conn, request_id, results)
        return Promoted(results, revision)


def _drop_expired_before_images(conn: Connection, keep_days: float) -> None:
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=keep_days)
    expired = select(REVISION.c.Revision).where(REVISION.c.At < cutoff)
    for before in BEFORE_IMAGE.values():
        conn.execute(delete(before).where(before.c.Revision.in_(expired)))


def _count(conn: Connection, table: FromClause) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _new_revision(conn: Connection, request_id: str, action: str) -> int:
    at = datetime.now(UTC).replace(tzinfo=None)  # a UTC timestamp
    statement = insert(REVISION).values(RequestId=request_id, Action=action, At=at)
    return int(conn.execute(statement).inserted_primary_key[0])


def current_revision(conn: Connection) -> int:
    """The production revision: the number of the latest promotion or revert (0: none yet)."""
    return int(conn.execute(select(func.coalesce(func.max(REVISION.c.Revision), 0))).scalar_one())


def check_revision(conn: Connection, expected: int) -> None:
    current = current_revision(conn)
    if current != expected:
        movers = conn.execute(
            select(REVISION.c.RequestId)
            .where(REVISION.c.Revision > expected)
            .group_by(REVISION.c.RequestId)
            .order_by(func.min(REVISION.c.Revision))
        ).scalars()
        raise ProductionMoved(expected, current, list(movers))


def _new_objects(entity: Entity, new_id: Callable[[ColumnElement[str]], ColumnElement[str]]) -> Select[Any]:
    """The entity's objects new to production: (ImportId, PlatformId), the platform id a revert retired,
    else `new_id(ImportId)`. The one query behind the id map, its inline form and the preview's."""
    source, promoted = staged(entity), PRODUCTION.tables[entity.name]
    retired = RETIRED_ID.alias(f"retired_{entity.name}")
    return (
        select(
            source.c.ImportId.label("ImportId"),
            func.coalesce(retired.c.PlatformId, new_id(source.c.ImportId)).label("PlatformId"),
        )
        .select_from(source)
        .outerjoin(promoted, promoted.c.ImportId == source.c.ImportId)
        .outerjoin(retired, (retired.c.TableName == entity.name) & (retired.c.ImportId == source.c.ImportId))
        .where(promoted.c.ImportId.is_(None))
    )


def _build_id_map(conn: Connection, entity: Entity) -> int:
    """The platform ids of the entity's objects new to production, as a temporary table (the others'
    are in production already); how many."""
    ids = ID_MAP[entity.name]
    ids.create(conn)
    rows = _new_objects(entity, lambda _: new_platform_id())
    inserted = conn.execute(
        insert(ids).from_select(["ImportId", "PlatformId"], rows), execution_options=_COUNTED
    )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f'ANALYZE pg_temp."{ids.name}"')  # a fresh table: the planner needs its size
    return int(inserted.rowcount)


# The entities some reference names: their id maps must exist before any row is written.
REFERENCED = frozenset(c.target for e in ENTITIES for c in e.columns if c.kind is Kind.REFERENCE)


def _new_ids(entity: Entity) -> FromClause:
    """The id map as a query, for an entity nothing refers to: each new id generated once, as its row is
    inserted."""
    return _new_objects(entity, lambda _: new_platform_id()).subquery(f"new_ids_{entity.name}")


def preview_id_map(entity: Entity) -> FromClause:
    """The id map a promotion would build, as a query: new objects as `new:<ImportId>`."""
    return _new_objects(entity, lambda import_id: literal(NEW) + import_id).subquery(f"ids_{entity.name}")


def resolved_rows(
    entity: Entity,
    request_id: str,
    idmaps: dict[str, FromClause],
    *,
    only_new: bool = False,
    changed_in: int | None = None,
) -> Select[Any]:
    """The staged rows as production would hold them: ImportId, PlatformId, LastRequestId, then every
    column, references resolved by joins to the id map (objects new to production) and to production
    (the others). With `only_new`, only the rows new to production; with `changed_in` (a revision), only
    those with a before-image in that revision."""
    source = staged(entity)
    own = idmaps[entity.name].alias(f"own_{entity.name}")
    existing = PRODUCTION.tables[entity.name].alias(f"existing_{entity.name}")
    joined = source.outerjoin(own, own.c.ImportId == source.c.ImportId).outerjoin(
        existing, existing.c.ImportId == source.c.ImportId
    )
    values: list[ColumnElement[Any]] = [
        source.c.ImportId.label("ImportId"),
        func.coalesce(own.c.PlatformId, existing.c.PlatformId).label("PlatformId"),
        literal(request_id).label("LastRequestId"),
    ]
    for column in entity.columns:
        value = source.c[column.name]
        if column.kind is not Kind.REFERENCE:
            values.append(value.label(column.name))
            continue
        assert column.target is not None
        target = ENTITY_BY_NAME[column.target]
        mapped = idmaps[target.name].alias(f"ids_{column.name}")
        promoted = PRODUCTION.tables[target.name].alias(f"prod_{column.name}")
        joined = joined.outerjoin(mapped, mapped.c.ImportId == value).outerjoin(
            promoted, promoted.c.ImportId == value
        )
        reference = case(
            (or_(value.is_(None), func.trim(value) == ""), None),
            (is_reference(value, target.prefix), value),
            else_=literal(target.prefix + "_") + func.coalesce(mapped.c.PlatformId, promoted.c.PlatformId),
        )
        values.append(reference.label(column.name))
    # `WHERE true`: SQLite reads `ON CONFLICT` after a join's ON as part of the join without it.
    rows = select(*values).select_from(joined).where(true())
    if only_new:
        rows = rows.where(own.c.ImportId.is_not(None))
    if changed_in is not None:
        before = BEFORE_IMAGE[entity.name]
        rows = rows.where(exists().where(before.c.Revision == changed_in, before.c.ImportId == source.c.ImportId))
    return rows


def _differs(entity: Entity, current: Any, proposed: Any) -> ColumnElement[bool]:
    """Some column of `current` differs from `proposed` (column collections, such as `table.c`)."""
    return or_(*(current[c.name].is_distinct_from(proposed[c.name]) for c in entity.columns))


def _changed_rows(entity: Entity, resolved: Select[Any]) -> tuple[Table, FromClause, Select[Any]]:
    """(production, the resolved rows, production rows JOIN resolved rows WHERE something differs)."""
    promoted = PRODUCTION.tables[entity.name]
    proposed = resolved.subquery("proposed")
    changed = (
        select(promoted)
        .join_from(promoted, proposed, proposed.c.ImportId == promoted.c.ImportId)
        .where(_differs(entity, promoted.c, proposed.c))
    )
    return promoted, proposed, changed


def _keep_before_images(conn: Connection, entity: Entity, resolved: Select[Any], revision: int) -> int:
    """Copy the rows this promotion will update, as they are now; how many."""
    promoted, _, changed = _changed_rows(entity, resolved)
    before = BEFORE_IMAGE[entity.name]
    rows = changed.with_only_columns(literal(revision), *promoted.columns)
    names = ["Revision", *(c.name for c in promoted.columns)]
    return int(conn.execute(insert(before).from_select(names, rows), execution_options=_COUNTED).rowcount)


def _upsert(conn: Connection, entity: Entity, resolved: Select[Any]) -> Any:
    promoted = PRODUCTION.tables[entity.name]
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(promoted).from_select([c.name for c in promoted.columns], resolved)
    updates = {c.name: statement.excluded[c.name] for c in entity.columns}
    return statement.on_conflict_do_update(
        index_elements=[promoted.c.ImportId],
        set_={**updates, "LastRequestId": statement.excluded.LastRequestId},
        where=_differs(entity, promoted.c, statement.excluded),
    )


def _log(conn: Connection, request_id: str, results: list[TableResult]) -> None:
    summary = ";".join(f"{r.entity}:{r.inserted}/{r.updated}/{r.unchanged}" for r in results)
    promoted_at = datetime.now(UTC).replace(tzinfo=None)  # a UTC timestamp
    conn.execute(delete(PROMOTION_LOG).where(PROMOTION_LOG.c.RequestId == request_id))
    conn.execute(insert(PROMOTION_LOG).values(RequestId=request_id, PromotedAt=promoted_at, Summary=summary))


# ------------------------------------------------------------------------------------------ preview


@dataclass(frozen=True)
class Change:
    """One updated row: its ImportId and, per changed column, the value before and after."""

    table: str
    import_id: str
    columns: list[tuple[str, str | None, str | None]]


def shown(value: Any) -> str | None:
    """A stored value as text, exactly (money to the last digit, dates ISO), the same on every store."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _preview_maps() -> dict[str, FromClause]:
    return {e.name: preview_id_map(e) for e in ENTITIES}


def diff(
    conn: Connection, request_id: str, *, sample: int
) -> tuple[list[TableResult], dict[str, list[Change]]]:
    """Per table what a promotion would do now (read-only), and up to `sample` changed rows of each."""
    idmaps = _preview_maps()
    results, samples = [], {}
    for entity in ENTITIES:
        source, promoted = staged(entity), PRODUCTION.tables[entity.name]
        rows = _count(conn, source)
        new_rows = (
            select(func.count())
            .select_from(source.outerjoin(promoted, promoted.c.ImportId == source.c.ImportId))
            .where(promoted.c.ImportId.is_(None))
        )
        inserted = int(conn.execute(new_rows).scalar_one())
        _, _, changed = _changed_rows(entity, resolved_rows(entity, request_id, idmaps))
        updated = _count(conn, changed.subquery())
        results.append(TableResult(entity.name, rows, inserted, updated))
        samples[entity.name] = list(_changes(conn, entity, request_id, idmaps, offset=0, limit=sample))
    return results, samples


def _changes(
    conn: Connection,
    entity: Entity,
    request_id: str,
    idmaps: dict[str, FromClause],
    *,
    offset: int,
    limit: int | None,
) -> Iterator[Change]:
    promoted, proposed, changed = _changed_rows(entity, resolved_rows(entity, request_id, idmaps))
    names = [c.name for c in entity.columns]
    query = (
        changed.with_only_columns(
            promoted.c.ImportId, *(promoted.c[n] for n in names), *(proposed.c[n] for n in names)
        )
        .order_by(binary_order(promoted.c.ImportId))
        .offset(offset)
        .limit(limit)
    )
    width = len(names)
    for row in conn.execute(query):
        before, after = row[1 : 1 + width], row[1 + width :]
        columns = [
            (name, shown(b), shown(a))
            for name, b, a in zip(names, before, after, strict=True)
            if shown(b) != shown(a)
        ]
        yield Change(entity.name, row[0], columns)


def changes(
    stores: TenantStores, request_id: str, tenant: str, table: str, *, offset: int, limit: int | None
) -> tuple[int, list[Change]]:
    """The rows of `table` a promotion would update now, in ImportId order: (total, one page)."""
    entity = ENTITY_BY_NAME[table]
    idmaps = _preview_maps()
    with stores.promotion_session(request_id, tenant, write=False) as conn:
        _, _, changed = _changed_rows(entity, resolved_rows(entity, request_id, idmaps))
        total = _count(conn, changed.subquery())
        return total, list(_changes(conn, entity, request_id, idmaps, offset=offset, limit=limit))


def iter_changes(stores: TenantStores, request_id: str, tenant: str) -> Iterator[Change]:
    """Every row every table's promotion would update now, streamed (the CSV)."""
    idmaps = _preview_maps()
    with stores.promotion_session(request_id, tenant, write=False) as conn:
        for entity in ENTITIES:
            yield from _changes(conn, entity, request_id, idmaps, offset=0, limit=None)


# ------------------------------------------------------------------------------------------- id map


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
