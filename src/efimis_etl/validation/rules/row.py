"""Row rules: the values of one row that must agree with each other (dates in order, the name a contact's
type requires, billing status and invoice, a work item's amount)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from sqlalchemy import case, func, literal

from efimis_etl.schema.model import BILLING_STATUS, CONTACT_TYPE
from efimis_etl.stores.sql import money_constant, money_text
from efimis_etl.validation.rule import ERROR, WARNING, Found, Rows, found, table_rule
from efimis_etl.validation.tables import as_text, blank, filled, number

BILLED = BILLING_STATUS.by_name("Billed").value
PERSON, ORGANISATION = CONTACT_TYPE.by_name("Person").value, CONTACT_TYPE.by_name("Organisation").value

# (earlier, later) dates of a row.
DATE_ORDER = {"Matter": ("OpenedOn", "ClosedOn"), "Invoice": ("IssuedOn", "DueOn")}
# The name each type of contact needs.
CONTACT_NAMES = (
    ("FamilyName", PERSON, f"a person (Type {PERSON}) needs a FamilyName"),
    ("OrganisationName", ORGANISATION, f"an organisation (Type {ORGANISATION}) needs an OrganisationName"),
)


@table_rule("date-order", ERROR, on=DATE_ORDER)
def date_order(table: Rows) -> Iterator[Found]:
    """Dates are out of order (closed before opened, due before issued).

    Correct either date.
    """
    earlier, later = (table.c[name] for name in DATE_ORDER[table.name])
    yield found(table, later.name, as_text(later), f"{later.name} is before {earlier.name}", later < earlier)


@table_rule("work-item-amount", WARNING, on=("WorkItem",))
def work_item_amount(table: Rows) -> Iterator[Found]:
    """A work item's Amount differs from Minutes × Rate / 60 by more than a cent (a write-down?).

    Check Minutes, Rate and Amount; a deliberate write-up or write-down can stay.
    """
    minutes, rate, amount = table.c.Minutes, table.c.Rate, table.c.Amount
    # The store's own division (of ten-thousandths on SQLite, exact on PostgreSQL): money_text then
    # truncates both alike.
    expected = (minutes * rate).op("/")(number(60))
    detail = literal("Minutes × Rate / 60 = ") + money_text(expected)
    tolerance = money_constant(Decimal("0.01") * 60)  # one cent, on both sides multiplied by 60
    yield found(
        table,
        "Amount",
        money_text(amount),
        detail,
        func.abs(amount * number(60) - minutes * rate) > tolerance,
    )


@table_rule("contact-name", ERROR, on=("Contact",))
def contact_name(table: Rows) -> Iterator[Found]:
    """A person has no FamilyName, or an organisation no OrganisationName.

    Fill in the name the contact's Type requires.
    """
    for name, contact_type, detail in CONTACT_NAMES:
        yield found(table, name, None, detail, table.c.Type == contact_type, blank(table.c[name]))


@table_rule("billing-status", ERROR, on=("WorkItem", "Disbursement"))
def billing_status(table: Rows) -> Iterator[Found]:
    """A billed item has no InvoiceId, or an item with an InvoiceId is not Billed.

    Set Status to Billed (1) exactly when InvoiceId is set.
    """
    billed, invoice = table.c.Status == BILLED, table.c.InvoiceId
    detail = case(
        (billed, "Status is Billed but InvoiceId is empty"), else_="InvoiceId is set but Status is not Billed"
    )
    yield found(table, "InvoiceId", invoice, detail, billed != filled(invoice))
