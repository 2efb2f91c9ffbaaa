"""The *loaded* figures of a staged table, measured in the staging store for reconciliation."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import DBAPIError

from efimis_etl.schema.model import Entity
from efimis_etl.schema.tables import STAGING
from efimis_etl.source.reconcile import (
    Figures,
    aggregate_query,
    figures_from_aggregates,
    money_columns,
)
from efimis_etl.stores.base import Loader

_STREAM = {"yield_per": 100_000}  # rows per round trip when streaming a whole table


def measure(staging: Loader, entity: Entity) -> Figures:
    """Row count, money sums, date range and ImportId digest of what staging holds, in one snapshot:
    aggregates in SQL, and the ImportId digest as the store computes it (the same hash the reader used).

    SQLite sums the integer ten-thousandths it keeps exactly or not at all ("integer overflow"): then, and
    only then, the money columns are streamed and added here."""
    table = STAGING.tables[entity.name]
    with staging.reading() as conn:
        try:
            row = conn.execute(aggregate_query(table, entity)).one()
            figures = figures_from_aggregates(entity, tuple(row), money=Decimal, date=str)
        except DBAPIError as error:
            if "integer overflow" not in str(error.orig):
                raise
            row = conn.execute(aggregate_query(table, entity, sums=False)).one()
            figures = figures_from_aggregates(entity, tuple(row), money=Decimal, date=str, sums=False)
            figures.sums = _streamed_sums(conn, table, money_columns(entity))
        figures.digest = f"{staging.import_id_digest(conn, entity):016x}"
    return figures


def _streamed_sums(conn: Connection, table: Table, money: list[str]) -> dict[str, Decimal]:
    sums = dict.fromkeys(money, Decimal(0))
    for amounts in conn.execute(select(*(table.c[n] for n in money)), execution_options=_STREAM):
        for name, amount in zip(money, amounts, strict=True):
            if amount is not None:
                sums[name] += amount
    return sums
