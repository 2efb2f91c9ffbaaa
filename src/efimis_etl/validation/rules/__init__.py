"""Every validation rule with SQL, by level (field, row, cross-table, accounting), and the order they run in.

The order fixes finding ids, and so "the first findings" an import reports and the order of every listing:
it is kept as it was first written, and a new rule goes at the end. The field rules read the reader's
findings (a value the reader rejected is not also `required`), which are written before any rule runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from sqlalchemy import ColumnElement, Executable, Table, or_, select, true
from sqlalchemy.schema import DropTable
from sqlalchemy.sql.ddl import CreateTableAs

from efimis_etl.schema.model import ENTITIES, Entity
from efimis_etl.validation.rule import Rows, Rule
from efimis_etl.validation.rules import accounting, cross_table, field, row
from efimis_etl.validation.tables import staging

# Each pass takes the tables in turn (ENTITIES order); on each table its rules run in the order given,
# except that column rules standing together run column by column: all of them on one column, then on the
# next.
RUN_ORDER: tuple[tuple[Rule, ...], ...] = (
    (
        field.required,
        field.max_length,
        field.enum,
        field.unique_import_id,
        cross_table.reference_missing_in_production,
        cross_table.reference_wrong_entity,
        cross_table.reference_unresolved,
    ),
    (row.date_order,),
    (field.date_range, field.email_format, field.currency_code, field.country_code, field.amount_sign),
    *(
        (rule,)
        for rule in (
            field.rate_range,
            row.work_item_amount,
            row.contact_name,
            row.billing_status,
            cross_table.invoice_matter,
            accounting.journal_unbalanced,
            accounting.invoice_total,
            accounting.invoice_items,
            accounting.allocation_exceeds_receipt,
            accounting.allocation_exceeds_invoice,
            accounting.trust_overdrawn,
            accounting.trust_account,
            accounting.sum_range,
        )
    ),
)


# The rules that find a row's problems in that row alone (its own values; production and the findings so
# far, which only grow while the rules run). On a large table nearly every row is clean, and each of these
# rules' statements used to scan the whole table for the few that are not: instead one pass per table copies
# the rows any of them might report (`flagged`), and their statements, unchanged, read that copy. A rule
# that compares rows with each other (shared ImportIds, references into this import, sums) reads the table.
ROW_LOCAL: tuple[Rule, ...] = (
    field.max_length,
    field.enum,
    field.date_range,
    field.email_format,
    field.currency_code,
    field.country_code,
    field.amount_sign,
    field.rate_range,
    row.date_order,
    row.work_item_amount,
    row.contact_name,
    row.billing_status,
    accounting.invoice_total,
    cross_table.reference_wrong_entity,
    cross_table.reference_missing_in_production,
    field.required,  # last: it looks up the reader's findings (for empty values only)
)


def _row_local_conditions(entity: Entity, table: Table) -> Iterator[ColumnElement[bool]]:
    """What each row-local rule's statements on `table` require of a row they report."""
    for rule in ROW_LOCAL:
        for column in entity.all_columns if rule.per_column else (None,):
            for violations in rule.finds(table, column) if rule.finds else ():
                assert violations.rows.columns_clause_froms == [table], f"{rule.code} is not row-local"
                where = violations.rows.whereclause
                yield true() if where is None else where


def flagged(entity: Entity) -> tuple[CreateTableAs, Table] | None:
    """The statement copying the rows of the entity's staging table that some row-local rule might report
    (those for which any of their conditions holds, at the start, when only the reader's findings exist:
    `required` only ever reports fewer rows later), and the copy it creates; None if no row-local rule
    looks at the entity."""
    table = staging(entity.name)
    conditions = list(_row_local_conditions(entity, table))
    if not conditions:
        return None
    copy = select(table).where(or_(*conditions)).into(f"_Flagged_{entity.name}", temporary=True)
    return copy, copy.table


def statements(*, flag_rows: bool = True) -> Iterator[Executable]:
    """Every rule's `INSERT INTO _Finding … SELECT …`, in the order they run; before them the statements
    creating the tables of flagged rows the row-local rules read, after them those dropping these. Without
    `flag_rows`, every rule reads the staging tables themselves (tests compare the two)."""
    copies = {entity.name: flagged(entity) for entity in ENTITIES} if flag_rows else {}
    rows: dict[str, Rows] = {}
    for name, made in copies.items():
        if made is not None:
            copy, table = made
            yield copy
            # Named as the staging table it stands for: what the rules find is the staging table's.
            rows[name] = table.alias(name)
    for rules in RUN_ORDER:
        for entity in ENTITIES:
            table = staging(entity.name)
            local = rows.get(entity.name, table)
            for per_column, group in groupby(rules, key=lambda rule: rule.per_column):
                together = tuple(group)
                if per_column:
                    for column in entity.all_columns:
                        for rule in together:
                            yield from rule.statements(local if rule in ROW_LOCAL else table, column)
                else:
                    for rule in together:
                        yield from rule.statements(local if rule in ROW_LOCAL else table)
    for made in copies.values():
        if made is not None:
            yield DropTable(made[1])
