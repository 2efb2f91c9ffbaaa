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
    money_columns,
)
from efimis_etl.stores.base import Loader

_STREAM = {"yield_per": 100_000}  # rows per round trip when streaming a whole table


def measure(staging: Loader, entity: Entity) -> Figures:
    """Row count, money sums, date range and ImportId digest of what staging holds, in one snapshot:
    aggregates in SQL where the store sums exactly (else the money streamed and summed here), and the
    ImportId digest as the store computes it (the same hash the reader used)."""
    table = STAGING.tables[entity.name]
    in_sql = staging.sums_in_sql
    money = [] if in_sql else money_columns(entity)
    with staging.reading() as conn:
        row = conn.execute(aggregate_query(table, entity, sums=in_sql)).one()
        figures = figures_from_aggregates(entity, tuple(row), money=Decimal, date=str, sums=in_sql)
        digest = staging.import_id_digest(conn, entity)
        if money:
            sums = dict.fromkeys(money, Decimal(0))
            for amounts in conn.execute(select(*(table.c[n] for n in money)), execution_options=_STREAM):
                for name, amount in zip(money, amounts, strict=True):
                    if amount is not None:
                        sums[name] += amount
            figures.sums = sums
    figures.digest = f"{digest % DIGEST_MODULUS:016x}"
    return figures
