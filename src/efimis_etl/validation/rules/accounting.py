"""Accounting rules: the sums that must agree (journal entries, invoice totals, allocations) and the trust
ledger, which may never be overdrawn and only uses the Trust journal's accounts."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator

from sqlalchemy import ColumnElement, Subquery, case, func, literal, null, select, union_all

from efimis_etl.schema.model import ENTITY_BY_NAME, JOURNAL_TYPE, TRUST_TRANSACTION_TYPE, Kind
from efimis_etl.stores.sql import (
    SQLITE_MONEY_LIMIT,
    binary_order,
    exact_sum,
    money_text,
    sum_may_be_out_of_range,
    sum_out_of_range,
)
from efimis_etl.validation.rule import ERROR, Found, Rows, found, table_rule
from efimis_etl.validation.rules.row import BILLED
from efimis_etl.validation.tables import as_text, followed, key, lookup, number, staging

TRUST_JOURNAL = JOURNAL_TYPE.by_name("Trust").value
TRUST_CREDITS = tuple(TRUST_TRANSACTION_TYPE.by_name(n).value for n in ("Deposit", "TransferIn"))
INVOICE_PAYMENT = TRUST_TRANSACTION_TYPE.by_name("InvoicePayment").value
# The totals of an invoice that the items billed on it (in this import) must add up to.
ITEMS_BILLED = (
    ("FeesTotal", "WorkItem", "work items"),
    ("DisbursementsTotal", "Disbursement", "disbursements"),
)


def _sum_per_row(
    row_id: ColumnElement[str], amount: ColumnElement[object], *where: ColumnElement[bool]
) -> Subquery:
    """The sum of `amount` per row it belongs to (`row_id`): columns RowId, Total."""
    return (
        select(row_id.label("RowId"), exact_sum(amount).label("Total"))
        .where(*where)
        .group_by(row_id)
        .subquery()
    )


def _against_sum(
    table: Rows,
    column: str,
    sums: Subquery,
    wrong: Callable[[ColumnElement[object], ColumnElement[object]], ColumnElement[bool]],
    says: str,
) -> Found:
    """The rows of `table` for which `wrong(sum, value of column)` holds, a sum from `_sum_per_row`."""
    value = table.c[column]
    rows = (
        select(table.c.ImportId, money_text(value), literal(says) + money_text(sums.c.Total))
        .join_from(table, sums, sums.c.RowId == table.c.ImportId)
        .where(wrong(sums.c.Total, value))
    )
    return Found(column, rows)


@table_rule("journal-unbalanced", ERROR, on=("JournalEntry",))
def journal_unbalanced(table: Rows) -> Iterator[Found]:
    """A journal entry's debits and credits differ.

    Correct the entry's lines so that total debits equal total credits.
    """
    lines = staging("JournalEntryLine")
    sums = (
        select(
            lines.c.JournalEntryId,
            exact_sum(lines.c.Debit).label("Debits"),
            exact_sum(lines.c.Credit).label("Credits"),
        )
        .group_by(lines.c.JournalEntryId)
        .subquery()
    )
    detail = literal("debits ") + money_text(sums.c.Debits) + ", credits " + money_text(sums.c.Credits)
    rows = (
        select(table.c.ImportId, null(), detail)
        .join_from(table, sums, sums.c.JournalEntryId == table.c.ImportId)
        .where(sums.c.Debits != sums.c.Credits)
    )
    yield Found(None, rows)


@table_rule("invoice-total", ERROR, on=("Invoice",))
def invoice_total(table: Rows) -> Iterator[Found]:
    """An invoice's Total is not FeesTotal + DisbursementsTotal + TaxTotal.

    Correct the totals.
    """
    parts = table.c.FeesTotal + table.c.DisbursementsTotal + table.c.TaxTotal
    detail = literal("FeesTotal + DisbursementsTotal + TaxTotal = ") + money_text(parts)
    yield found(table, "Total", money_text(table.c.Total), detail, table.c.Total != parts)


@table_rule("invoice-items", ERROR, on=("Invoice",))
def invoice_items(table: Rows) -> Iterator[Found]:
    """An invoice's FeesTotal or DisbursementsTotal differs from the sum of the items billed on it in this
    import.

    Correct the totals or the items' amounts and InvoiceIds.
    """
    for column, item_table, items in ITEMS_BILLED:
        item = staging(item_table)
        billed = _sum_per_row(item.c.InvoiceId, item.c.Amount, item.c.Status == BILLED)
        yield _against_sum(table, column, billed, operator.ne, f"the {items} billed on it add up to ")


@table_rule("allocation-exceeds-receipt", ERROR, on=("Receipt",))
def allocation_exceeds_receipt(table: Rows) -> Iterator[Found]:
    """A receipt's allocations add up to more than the receipt.

    Reduce the allocations to at most the amount received.
    """
    allocation = staging("ReceiptAllocation")
    allocated = _sum_per_row(allocation.c.ReceiptId, allocation.c.Amount)
    yield _against_sum(table, "Amount", allocated, operator.gt, "allocated ")


@table_rule("allocation-exceeds-invoice", ERROR, on=("Invoice",))
def allocation_exceeds_invoice(table: Rows) -> Iterator[Found]:
    """An invoice is paid (receipt allocations and trust payments) beyond its Total.

    Reduce the allocations or payments to the invoice's outstanding amount.
    """
    allocation, trust = staging("ReceiptAllocation"), staging("TrustTransaction")
    payments = union_all(
        select(allocation.c.InvoiceId, allocation.c.Amount),
        select(trust.c.InvoiceId, trust.c.Amount).where(trust.c.Type == INVOICE_PAYMENT),
    ).subquery()
    paid = _sum_per_row(payments.c.InvoiceId, payments.c.Amount)
    yield _against_sum(table, "Total", paid, operator.gt, "paid ")


@table_rule("trust-overdrawn", ERROR, on=("TrustTransaction",))
def trust_overdrawn(table: Rows) -> Iterator[Found]:
    """A matter's trust ledger goes below zero when its transactions are applied in date order.

    Trust ledgers may never be overdrawn: correct the dates, amounts or types, or add the missing
    deposit.
    """
    # A ledger is reported once, at the transaction that first takes it below zero: the rest follow from it.
    t = table.c
    credit = t.Type.in_(TRUST_CREDITS)
    # On a given day money in is applied before money out, so a same-day deposit and payment is never
    # reported.
    ledger_order = (t.TransactionDate, case((credit, number(0)), else_=number(1)), binary_order(t.ImportId))
    in_ledger_order = {"partition_by": t.MatterId, "order_by": ledger_order}
    ledger = (
        select(
            t.ImportId,
            t.MatterId,
            t.Amount,
            t.TransactionDate,
            exact_sum(case((credit, t.Amount), else_=-t.Amount))
            .over(**in_ledger_order, rows=(None, 0))
            .label("Balance"),
            func.row_number().over(**in_ledger_order).label("Position"),
        )
        .where(
            t.MatterId.is_not(None),
            t.Amount.is_not(None),
            t.Type.is_not(None),
            t.TransactionDate.is_not(None),
        )
        .subquery()
    )
    nth = func.row_number().over(partition_by=ledger.c.MatterId, order_by=ledger.c.Position).label("Nth")
    overdrawn = select(*ledger.c, nth).where(ledger.c.Balance < number(0)).subquery()
    o = overdrawn.c
    detail = (
        literal("the ledger of matter ")
        + o.MatterId
        + " would stand at "
        + money_text(o.Balance)
        + " on "
        + as_text(o.TransactionDate)
    )
    yield Found("Amount", select(o.ImportId, money_text(o.Amount), detail).where(o.Nth == 1))


@table_rule("trust-account", ERROR, on=("TrustTransaction",))
def trust_account(table: Rows) -> Iterator[Found]:
    """A trust transaction uses an account that is not in a Trust journal.

    Use a trust bank account (an account of the Trust journal).
    """
    account = key(table.c.AccountId, "Account")
    uses = followed(table, "AccountId", Journal=key(lookup("Account", "JournalId", account), "Journal"))
    detail = literal("the account is in journal ") + uses.c.Journal
    not_trust = lookup("Journal", "Type", uses.c.Journal) != TRUST_JOURNAL
    yield Found("AccountId", select(uses.c.ImportId, uses.c.AccountId, detail).where(not_trust))


@table_rule("sum-range", ERROR)
def sum_range(table: Rows) -> Iterator[Found]:
    """The amounts of a money column add up to more than the embedded (SQLite) store sums exactly
    (±922,337,203,685,477.5807), so the sums the accounting rules check cannot be trusted.

    Import into the PostgreSQL stores (EFIMIS_STAGING_URL), which sum DECIMAL(19,4) exactly, or look for
    amounts with a misplaced decimal point.
    """
    detail = (
        f"the amounts add up to more than ±{SQLITE_MONEY_LIMIT}, the most the embedded store sums exactly"
    )
    for column in ENTITY_BY_NAME[table.name].columns:
        if column.kind in (Kind.MONEY, Kind.RATE):
            value = table.c[column.name]
            # The cheap test first: the exact one is a Python call per row on SQLite, and on PostgreSQL
            # the cheap one is false, so that the table is not even read.
            over = select(sum_out_of_range(value)).scalar_subquery()
            yield Found(
                column.name,
                select(null(), null(), literal(detail)).where(sum_may_be_out_of_range(value), over),
            )
