"""Revert: undo one import's promotions, in one transaction on the tenant's production store.

What a promotion wrote is known from production alone: the rows it updated have before-images under its
revision (`_Before_<Entity>`), and every other row whose `LastRequestId` is the import was inserted by it
(a later promotion that changed such a row would have rewritten `LastRequestId`, and is refused first).
So a revert restores the before-images (the oldest last, when the import was promoted more than once),
retires the platform ids of the rows it then deletes (so that promoting the import again gives the same
ids back), and records itself as a revision. Either all of that commits or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, delete, exists, insert, literal, select, update

from efimis_etl.errors import EtlError
from efimis_etl.promotion.promote import _new_revision
from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import PRODUCTION
from efimis_etl.stores.base import BEFORE_IMAGE, RETIRED_ID, REVISION, TenantStores

PROMOTE, REVERT = "promote", "revert"


class RevertRefused(EtlError):
    """A later promotion changed rows this one wrote: those must be reverted first."""

    code = "later-promotions"

    def __init__(self, request_id: str, later: list[str]) -> None:
        self.later = later
        super().__init__(
            f"Import {request_id} cannot be reverted: later promotion(s) of import(s) {', '.join(later)} "
            "changed rows it wrote. Revert those first (newest first), then this one."
        )


class RevertExpired(EtlError):
    code = "revert-expired"


class NothingToRevert(EtlError):
    code = "nothing-to-revert"


@dataclass(frozen=True)
class Reverted:
    revision: int  # the production revision the revert made (or made earlier, when it was done already)
    already: bool  # production had been reverted already (a revert whose state change was interrupted)


def revert(stores: TenantStores, request_id: str, tenant: str, *, keep_days: float) -> Reverted:
    now = datetime.now(UTC).replace(tzinfo=None)
    with stores.production_session(tenant, write=True) as conn:
        promotions = conn.execute(
            select(REVISION.c.Revision, REVISION.c.At, REVISION.c.RevertedBy)
            .where(REVISION.c.RequestId == request_id, REVISION.c.Action == PROMOTE)
            .order_by(REVISION.c.Revision)
        ).all()
        if not promotions:
            raise NothingToRevert(
                f"Production holds no record of a promotion of import {request_id} that a revert could undo."
            )
        live = [p.Revision for p in promotions if p.RevertedBy is None]
        if not live:
            return Reverted(max(p.RevertedBy for p in promotions), already=True)
        first_at = min(p.At for p in promotions if p.RevertedBy is None)
        if first_at < now - timedelta(days=keep_days):
            raise RevertExpired(
                f"Import {request_id} was promoted more than EFIMIS_REVERT_DAYS ({keep_days:g} days) ago; "
                "the before-images a revert needs are kept only that long, so it can no longer be reverted."
            )
        later = _later_promotions(conn, request_id, min(live))
        if later:
            raise RevertRefused(request_id, later)
        for entity in ENTITIES:
            _undo(conn, entity.name, request_id, live)
        revision = _new_revision(conn, request_id, REVERT)
        conn.execute(update(REVISION).where(REVISION.c.Revision.in_(live)).values(RevertedBy=revision))
        return Reverted(revision, already=False)


def _later_promotions(conn: Connection, request_id: str, since: int) -> list[str]:
    """Imports promoted after `since` (and not reverted) that updated a row this import had written."""
    later: set[str] = set()
    for entity in ENTITIES:
        before = BEFORE_IMAGE[entity.name]
        query = (
            select(REVISION.c.RequestId)
            .join_from(REVISION, before, before.c.Revision == REVISION.c.Revision)
            .where(
                REVISION.c.Revision > since,
                REVISION.c.Action == PROMOTE,
                REVISION.c.RevertedBy.is_(None),
                REVISION.c.RequestId != request_id,
                before.c.LastRequestId == request_id,
            )
            .distinct()
        )
        later.update(conn.execute(query).scalars())
    return sorted(later)


def _undo(conn: Connection, table: str, request_id: str, revisions: list[int]) -> None:
    promoted, before = PRODUCTION.tables[table], BEFORE_IMAGE[table]
    restored = [c.name for c in promoted.columns if c.name not in ("ImportId", "PlatformId")]
    # Newest first, so that the oldest before-image of a row (its value before this import) wins.
    for revision in sorted(revisions, reverse=True):
        conn.execute(
            update(promoted)
            .values({name: before.c[name] for name in restored})
            .where(before.c.Revision == revision, before.c.ImportId == promoted.c.ImportId)
        )
    inserted = promoted.c.LastRequestId == request_id
    already = exists().where(
        and_(RETIRED_ID.c.TableName == table, RETIRED_ID.c.ImportId == promoted.c.ImportId)
    )
    conn.execute(
        insert(RETIRED_ID).from_select(
            ["TableName", "ImportId", "PlatformId"],
            select(literal(table), promoted.c.ImportId, promoted.c.PlatformId).where(inserted, ~already),
        )
    )
    conn.execute(delete(promoted).where(inserted))
    conn.execute(delete(before).where(before.c.Revision.in_(revisions)))
