"""Reconciliation: proof that staging holds exactly what the source holds, table by table.

Three measurements of each table, compared before validation may start:
- **source** — asked of the source database itself: its row count and, where it sums exactly (SQL
  Server, PostgreSQL: DECIMAL arithmetic; not SQLite, whose sums are floats), the sum of every money
  column and the first and last of every date column;
- **read** — the same figures plus an order-independent digest of the ImportIds, computed from each
  converted Arrow batch a column at a time (exact decimal sums, date ranges, the digest);
- **loaded** — the same figures measured in the staging store after loading (aggregates in SQL, the
  digest by the same code over the ImportIds read back).
Any difference fails the import, naming the table and the figure. A value the reader rejected (a
finding) is NULL in staging and not counted as read, so it never makes the figures differ; a column with
such values is then compared read-against-loaded only.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select

from efimis_etl.digest import DIGEST_MODULUS, import_id_digest
from efimis_etl.schema.model import Entity, Kind


def money_columns(entity: Entity) -> list[str]:
    return [c.name for c in entity.columns if c.kind in (Kind.MONEY, Kind.RATE)]


def date_columns(entity: Entity) -> list[str]:
    return [c.name for c in entity.columns if c.kind is Kind.DATE]


@dataclass
class Figures:
    rows: int = 0
    sums: dict[str, Decimal] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    digest: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "sums": {k: str(v) for k, v in self.sums.items()},
            "first": self.first,
            "last": self.last,
            "digest": self.digest,
        }


class Tally:
    """Accumulates the read figures of one table from the reader's converted values."""

    def __init__(self, entity: Entity) -> None:
        names = [c.name for c in entity.all_columns]
        self.money = [(names.index(n), n) for n in money_columns(entity)]
        self.dates = [(names.index(n), n) for n in date_columns(entity)]
        self.rows = 0
        self.digest = 0
        self.sums = {n: Decimal(0) for _, n in self.money}
        self.first: dict[str, dt.date] = {}
        self.last: dict[str, dt.date] = {}
        self.rejected: Counter[str] = Counter()

    def add_batch(self, data: pa.RecordBatch, rejected: dict[str, int]) -> None:
        """Count one converted batch in: rows, ImportId digest, exact money sums, date ranges."""
        self.rows += data.num_rows
        self.rejected.update(rejected)
        self.digest = (self.digest + import_id_digest(data.column(0))) % DIGEST_MODULUS
        for index, name in self.money:
            total = pc.sum(data.column(index)).as_py()  # decimal128: exact
            if total is not None:
                self.sums[name] += total
        for index, name in self.dates:
            bounds = pc.min_max(data.column(index))
            self._widen(name, bounds["min"].as_py(), bounds["max"].as_py())

    def _widen(self, name: str, low: dt.date | None, high: dt.date | None) -> None:
        """Stretch a date column's range to take in [low, high] (None: nothing seen)."""
        if low is not None and (name not in self.first or low < self.first[name]):
            self.first[name] = low
        if high is not None and (name not in self.last or high > self.last[name]):
            self.last[name] = high

    def merge(self, other: Tally) -> None:
        self.rows += other.rows
        self.digest = (self.digest + other.digest) % DIGEST_MODULUS
        for name, value in other.sums.items():
            self.sums[name] += value
        for name in other.first.keys() | other.last.keys():
            self._widen(name, other.first.get(name), other.last.get(name))
        self.rejected.update(other.rejected)

    def figures(self) -> Figures:
        return Figures(
            rows=self.rows,
            sums=dict(self.sums),
            first={k: v.isoformat() for k, v in self.first.items()},
            last={k: v.isoformat() for k, v in self.last.items()},
            digest=f"{self.digest:016x}",
        )


def aggregate_query(table: Any, entity: Entity, *, sums: bool = True) -> Any:
    """count, then (with `sums`) the sum of each money column, then min and max of each date column."""
    columns = [func.count()]
    columns += [func.sum(table.c[n]) for n in money_columns(entity)] if sums else []
    for name in date_columns(entity):
        columns += [func.min(table.c[name]), func.max(table.c[name])]
    return select(*columns).select_from(table)


def figures_from_aggregates(
    entity: Entity, row: tuple[Any, ...], *, money: Any, date: Any, sums: bool = True
) -> Figures:
    """Figures from `aggregate_query`'s row; `money` and `date` turn stored values into Decimal / ISO."""
    figures = Figures(rows=int(row[0]))
    position = 1
    for name in money_columns(entity) if sums else []:
        figures.sums[name] = money(row[position]) if row[position] is not None else Decimal(0)
        position += 1
    for name in date_columns(entity):
        low, high = row[position], row[position + 1]
        if low is not None:
            figures.first[name], figures.last[name] = date(low), date(high)
        position += 2
    return figures


def differences(
    entity: Entity, source: Figures | None, read: Figures, loaded: Figures, rejected: set[str]
) -> list[str]:
    """What differs, in words; empty when staging provably holds what was read (and what the source has)."""
    found: list[str] = []
    if source is not None and source.rows != loaded.rows:
        found.append(f"the source has {source.rows} rows, staging {loaded.rows}")
    if read.rows != loaded.rows:
        found.append(f"{read.rows} rows were read, {loaded.rows} are in staging")
    if read.digest != loaded.digest:
        found.append("the ImportIds in staging are not the ones read")
    for name in money_columns(entity):
        reference = source if source is not None and source.sums and name not in rejected else read
        if reference.sums.get(name, Decimal(0)) != loaded.sums.get(name, Decimal(0)):
            found.append(
                f"sum of {name}: {'source' if reference is source else 'read'} {reference.sums.get(name)}, "
                f"staging {loaded.sums.get(name)}"
            )
    for name in date_columns(entity):
        reference = source if source is not None and source.first and name not in rejected else read
        if (reference.first.get(name), reference.last.get(name)) != (
            loaded.first.get(name),
            loaded.last.get(name),
        ):
            found.append(
                f"range of {name}: {reference.first.get(name)}…{reference.last.get(name)}, staging "
                f"{loaded.first.get(name)}…{loaded.last.get(name)}"
            )
    return found
