"""The tables validation rules read, and the expressions they share on them.

Staging tables are unqualified. The tenant's production tables are named under `PRODUCTION_PLACEHOLDER`,
which `run.compiled_rules` replaces with the tenant's production schema once the rules are compiled
(SQLite: the attached production store; PostgreSQL: the tenant's schema, or `pg_temp` where validation
reads temporary copies of what the rules need: `PRODUCTION_LOOKUPS`).

A reference can name its target three ways — an ImportId of this import, the ImportId of an object
promoted earlier, or a platform reference `prefix_<id>` — so rules that follow a reference first reduce it
to the target's ImportId (`key`) and then look the target up in staging, then production (`lookup`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    MetaData,
    Subquery,
    Table,
    UnicodeText,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    or_,
    select,
)

from efimis_etl.schema.model import ENTITY_BY_NAME
from efimis_etl.schema.tables import PRODUCTION, STAGING
from efimis_etl.stores.base import PRODUCTION_LOOKUPS
from efimis_etl.stores.sql import is_reference, platform_id

PRODUCTION_PLACEHOLDER = "efimis_production_schema"
SHOWN_CHARACTERS = 200  # of a value the field and reference rules show


def staging(name: str) -> Table:
    return STAGING.tables[name]


@cache
def _production_metadata() -> MetaData:
    metadata = MetaData()
    for table in PRODUCTION.tables.values():
        table.to_metadata(metadata, schema=PRODUCTION_PLACEHOLDER)
    return metadata


def production(name: str) -> Table:
    """A production table, as the compiled rules name it before the tenant's schema is put in."""
    return _production_metadata().tables[f"{PRODUCTION_PLACEHOLDER}.{name}"]


def number(value: int) -> ColumnElement[int]:
    """A plain integer, typed as one: beside a money column an untyped number would be taken for money
    (and on SQLite scaled to ten-thousandths)."""
    return literal(value, Integer())


def as_text(value: ColumnElement[Any]) -> ColumnElement[str]:
    return cast(value, UnicodeText())


def excerpt(value: ColumnElement[Any]) -> ColumnElement[str]:
    """The start of a value as text, as a finding shows it."""
    return func.substr(as_text(value), 1, SHOWN_CHARACTERS)


# `trim(value) = ''`, spelled so that `trim` runs only on values that start with a space: it was the most
# expensive part of the rules' pass over a large table (on PostgreSQL), and a text that trims to nothing is
# empty or starts with a space. `trim` removes spaces only, on both backends.
def blank(value: ColumnElement[Any]) -> ColumnElement[bool]:
    return or_(value.is_(None), value == "", and_(value.like(" %"), func.trim(value) == ""))


def filled(value: ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(value.is_not(None), value != "", or_(not_(value.like(" %")), func.trim(value) != ""))


def key(value: ColumnElement[Any], target: str) -> ColumnElement[Any]:
    """The target's ImportId for a reference value, however the reference was written.

    The subqueries here and in `lookup` correlate explicitly: they nest inside each other, and
    SQLAlchemy's automatic correlation only reaches the immediately enclosing SELECT."""
    promoted = production(target).alias()
    by_platform_id = (
        select(promoted.c.ImportId)
        .where(promoted.c.PlatformId == platform_id(value))
        .correlate_except(promoted)
    )
    return case(
        (is_reference(value, ENTITY_BY_NAME[target].prefix), by_platform_id.scalar_subquery()),
        else_=value,
    )


def lookup(target: str, column: str, import_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """A column of the target row (`import_id` from `key`): this import's row if there is one, else the
    promoted one."""
    assert column in PRODUCTION_LOOKUPS[target], f"add {target}.{column} to PRODUCTION_LOOKUPS"
    staged, promoted = staging(target).alias(), production(target).alias()
    staged_row = select(staged.c[column]).where(staged.c.ImportId == import_id).limit(1)
    promoted_row = select(promoted.c[column]).where(promoted.c.ImportId == import_id)
    return func.coalesce(
        staged_row.correlate_except(staged).scalar_subquery(),
        promoted_row.correlate_except(promoted).scalar_subquery(),
    )


def followed(table: Table, column: str, **keys: ColumnElement[Any]) -> Subquery:
    """The rows of `table` whose reference `column` is set: their ImportId, that column, and each of `keys`
    (expressions following the reference), computed once so that a rule can both compare and show them."""
    labelled = [expression.label(name) for name, expression in keys.items()]
    return select(table.c.ImportId, table.c[column], *labelled).where(table.c[column].is_not(None)).subquery()
