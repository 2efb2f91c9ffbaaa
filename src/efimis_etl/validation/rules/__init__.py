"""Every validation rule with SQL, by level (field, row, cross-table, accounting), and the order they run in.

The order fixes finding ids, and so "the first findings" an import reports and the order of every listing:
it is kept as it was first written, and a new rule goes at the end. The field rules read the reader's
findings (a value the reader rejected is not also `required`), which are written before any rule runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from sqlalchemy import Insert

from efimis_etl.schema.model import ENTITIES
from efimis_etl.validation.rule import Rule
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


def statements() -> Iterator[Insert]:
    """Every rule's `INSERT INTO _Finding … SELECT …`, in the order they run."""
    for rules in RUN_ORDER:
        for entity in ENTITIES:
            table = staging(entity.name)
            for per_column, group in groupby(rules, key=lambda rule: rule.per_column):
                together = tuple(group)
                if per_column:
                    for column in entity.all_columns:
                        for rule in together:
                            yield from rule.statements(table, column)
                else:
                    for rule in together:
                        yield from rule.statements(table)
