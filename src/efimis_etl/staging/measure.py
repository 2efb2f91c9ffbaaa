"""The *loaded* figures of a staged table, measured in the staging store for reconciliation."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from efimis_etl.schema.model import Entity
from efimis_etl.schema.tables import STAGING
from efimis_etl.source.reconcile import (
    DIGEST_MODULUS,
    Figures,
    aggregate_query,
    figures_from_aggregates,
    import_id_hash,
    money_columns,
)
from efimis_etl.stores.base import Loader

_STREAM = {"yield_per": 10_000}  # rows per round trip when streaming a whole table


def measure(staging: Loader, entity: Entity) -> Figures:
    """Row count, money sums, date range and ImportId digest of what staging holds, in one snapshot:
    aggregates in SQL where the store sums exactly, the digest (and otherwise the sums) streamed."""
    table = STAGING.tables[entity.name]
    in_sql = staging.sums_in_sql
    money = [] if in_sql else money_columns(entity)
    with staging.reading() as conn:
        row = conn.execute(aggregate_query(table, entity, sums=in_sql)).one()
        figures = figures_from_aggregates(entity, tuple(row), money=Decimal, date=str, sums=in_sql)
        digest, sums = 0, dict.fromkeys(money, Decimal(0))
        query = select(table.c.ImportId, *(table.c[n] for n in money))
        for import_id, *amounts in conn.execute(query, execution_options=_STREAM):
            if import_id is not None:
                digest = (digest + import_id_hash(import_id)) % DIGEST_MODULUS
            for name, amount in zip(money, amounts, strict=True):
                if amount is not None:
                    sums[name] += amount
    figures.digest = f"{digest:016x}"
    if not in_sql:
        figures.sums = sums
    return figures

