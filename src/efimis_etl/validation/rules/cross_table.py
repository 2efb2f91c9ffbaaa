"""Cross-table rules: every reference names an object of the right kind that exists, in this import or in
production, and a billed item's invoice is on the item's own matter."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import wraps

from sqlalchemy import ColumnElement, exists, literal, not_, select

from efimis_etl.schema.model import ENTITY_BY_NAME, ENTITY_BY_PREFIX, Column, Entity
from efimis_etl.stores.sql import platform_id
from efimis_etl.validation.rule import ERROR, Found, Rows, Rule, column_rule, found, table_rule
from efimis_etl.validation.tables import (
    excerpt,
    filled,
    followed,
    is_reference,
    key,
    lookup,
    production,
    staging,
)

# A reference rule's function: the staging table, the reference column's value, the column and its target.
ReferenceCheck = Callable[[Rows, ColumnElement[str], Column, Entity], Iterable[Found]]


def _reference_rule(code: str) -> Callable[[ReferenceCheck], Rule]:
    """A column rule on reference columns only (its docstring is the rule's, as for any rule)."""

    def declare(check: ReferenceCheck) -> Rule:
        @column_rule(code, ERROR)
        @wraps(check)
        def finds(table: Rows, column: Column) -> Iterable[Found]:
            if column.target is None:
                return ()
            return check(table, table.c[column.name], column, ENTITY_BY_NAME[column.target])

        return finds

    return declare


@_reference_rule("reference-unresolved")
def reference_unresolved(
    table: Rows, value: ColumnElement[str], column: Column, target: Entity
) -> Iterator[Found]:
    """A reference names an ImportId found neither in this import nor among promoted objects.

    Correct the ImportId, include the row it refers to, or write the platform reference (prefix_id) of an
    object promoted earlier.
    """
    # Aliased, so that a self-reference (an account's parent account) is not correlated away.
    staged, promoted = staging(target.name).alias(), production(target.name).alias()
    yield found(
        table,
        column.name,
        excerpt(value),
        f"no {target.name} has this ImportId in this import or in production",
        filled(value),
        not_(is_reference(value, *ENTITY_BY_PREFIX)),
        not_(exists().where(staged.c.ImportId == value)),
        not_(exists().where(promoted.c.ImportId == value)),
    )


@_reference_rule("reference-wrong-entity")
def reference_wrong_entity(
    table: Rows, value: ColumnElement[str], column: Column, target: Entity
) -> Iterator[Found]:
    """A platform reference points at another kind of object.

    Use a reference with the target entity's prefix, such as matter_<id> in MatterId.
    """
    others = [prefix for prefix in ENTITY_BY_PREFIX if prefix != target.prefix]
    detail = f"{column.name} must refer to a {target.name} ({target.prefix}_<id>)"
    yield found(table, column.name, excerpt(value), detail, is_reference(value, *others))


@_reference_rule("reference-missing-in-production")
def reference_missing_in_production(
    table: Rows, value: ColumnElement[str], column: Column, target: Entity
) -> Iterator[Found]:
    """A platform reference (prefix_id) names no object in the tenant's production data.

    Copy the reference from the id map of the import that promoted the object.
    """
    promoted = production(target.name).alias()
    yield found(
        table,
        column.name,
        excerpt(value),
        f"no {target.name} with this platform id exists in production",
        is_reference(value, target.prefix),
        not_(exists().where(promoted.c.PlatformId == platform_id(value))),
    )


@table_rule("invoice-matter", ERROR, on=("WorkItem", "Disbursement"))
def invoice_matter(table: Rows) -> Iterator[Found]:
    """A billed work item or disbursement is on an invoice of another matter.

    Bill the item on an invoice of its own matter, or correct its MatterId.
    """
    invoice = key(table.c.InvoiceId, "Invoice")
    items = followed(
        table,
        "InvoiceId",
        InvoiceMatter=key(lookup("Invoice", "MatterId", invoice), "Matter"),
        ItemMatter=key(table.c.MatterId, "Matter"),
    )
    detail = (
        literal("the invoice is on matter ") + items.c.InvoiceMatter + ", this item on " + items.c.ItemMatter
    )
    mismatched = items.c.InvoiceMatter != items.c.ItemMatter
    yield Found("InvoiceId", select(items.c.ImportId, items.c.InvoiceId, detail).where(mismatched))
