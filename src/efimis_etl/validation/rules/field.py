"""Field rules: each value on its own (empty, too long, not a listed value, out of range, badly formed),
plus ImportIds used twice, and the rules the reader applies while it reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal

from sqlalchemy import ColumnElement, exists, func, literal, not_, or_, select

from efimis_etl.schema.model import ENTITY_BY_NAME, Column, Kind
from efimis_etl.stores.base import FINDING
from efimis_etl.stores.sql import (
    is_country_code,
    is_currency_code,
    is_email_address,
    money_constant,
    money_text,
)
from efimis_etl.validation.rule import (
    ERROR,
    WARNING,
    Found,
    Rows,
    column_rule,
    found,
    reader_rule,
    table_rule,
)
from efimis_etl.validation.tables import as_text, blank, excerpt, filled, number

EARLIEST, LATEST = date(1900, 1, 1), date(2099, 12, 31)
TEXT_KINDS = (Kind.TEXT, Kind.LONG_TEXT, Kind.REFERENCE)
MONEY_KINDS = (Kind.MONEY, Kind.RATE)

# The columns with a sign to check, and whether zero is allowed (never negative) or not (always positive).
SIGNED: dict[str, dict[str, bool]] = {
    "Staff": {"DefaultRate": True},
    "Matter": {"FixedFee": True},
    "WorkItem": {"Minutes": True, "Rate": True, "Amount": True},
    "Disbursement": {"Amount": True},
    "Invoice": {"FeesTotal": True, "DisbursementsTotal": True, "TaxTotal": True, "Total": True},
    "JournalEntryLine": {"Debit": True, "Credit": True},
    "Receipt": {"Amount": False},
    "ReceiptAllocation": {"Amount": False},
    "TrustTransaction": {"Amount": False},
}


def _not_already_reported(table: Rows, column: str) -> ColumnElement[bool]:
    """A value the reader rejected is NULL in staging: report its `type` finding, not also `required`."""
    return not_(
        exists().where(
            FINDING.c.TableName == table.name,
            FINDING.c.ColumnName == column,
            FINDING.c.ImportId == table.c.ImportId,
        )
    )


@column_rule("required", ERROR)
def required(table: Rows, column: Column) -> Iterator[Found]:
    """A required column is empty.

    Fill in the column.
    """
    if column.required:
        value = table.c[column.name]
        empty = blank(value) if column.kind in TEXT_KINDS else value.is_(None)
        detail = f"{column.name} is required"
        yield found(table, column.name, None, detail, empty, _not_already_reported(table, column.name))


@reader_rule("type", ERROR)
def type_() -> None:
    """A value is not of the column's type.

    Store a value of the column's type, as the schema reference documents it.
    """


@reader_rule("precision", ERROR)
def precision() -> None:
    """A decimal has more than 4 decimal places or is too large for DECIMAL(19,4).

    Round to 4 decimal places; check the value's magnitude.
    """


@column_rule("max-length", ERROR)
def max_length(table: Rows, column: Column) -> Iterator[Found]:
    """A text is longer than the column allows.

    Shorten the text.
    """
    if column.max_length is not None:
        value = table.c[column.name]
        length = func.length(value)
        detail = (
            literal(f"at most {column.max_length} characters allowed; this has ")
            + as_text(length)
            + literal(" characters")
        )
        yield found(table, column.name, excerpt(value), detail, length > column.max_length)


@column_rule("enum", ERROR)
def enum(table: Rows, column: Column) -> Iterator[Found]:
    """A value is not one of the enumeration's values.

    Use a documented value.
    """
    if column.enumeration is not None:
        value = table.c[column.name]
        names = ", ".join(f"{v.value} ({v.name})" for v in column.enumeration.values)
        detail = f"{column.enumeration.name} values are {names}"
        allowed = sorted(column.enumeration.allowed)
        yield found(table, column.name, excerpt(value), detail, value.is_not(None), value.not_in(allowed))


@column_rule("date-range", ERROR)
def date_range(table: Rows, column: Column) -> Iterator[Found]:
    """A date lies outside 1900-01-01 … 2099-12-31, usually a placeholder or a typing error.

    Correct the date; leave an optional date empty rather than use a placeholder.
    """
    if column.kind is Kind.DATE:
        value = table.c[column.name]
        detail = f"outside {EARLIEST} … {LATEST}"
        yield found(table, column.name, as_text(value), detail, or_(value < EARLIEST, value > LATEST))


@column_rule("email-format", WARNING)
def email_format(table: Rows, column: Column) -> Iterator[Found]:
    """An e-mail address is not of the form name@domain.tld.

    Correct the address or leave it empty.
    """
    if column.name == "Email":
        value = table.c[column.name]
        malformed = not_(is_email_address(value))
        yield found(table, column.name, value, "not an e-mail address", filled(value), malformed)


def _iso_code(
    table: Rows,
    column: Column,
    name: str,
    shaped: Callable[[ColumnElement[str]], ColumnElement[bool]],
    detail: str,
) -> Iterator[Found]:
    """The values of column `name` that are not ISO codes (`shaped` says which are)."""
    if column.name == name:
        assert column.length is not None
        value = table.c[column.name]
        # A longer value is a max-length finding already.
        fits = func.length(value) <= column.length
        yield found(table, column.name, value, detail, filled(value), not_(shaped(value)), fits)


@column_rule("currency-code", ERROR)
def currency_code(table: Rows, column: Column) -> Iterator[Found]:
    """A currency is not a three-letter ISO 4217 code in capitals, such as AUD or GBP.

    Use the ISO code, or leave it empty for the tenant's base currency.
    """
    return _iso_code(table, column, "Currency", is_currency_code, "not an ISO 4217 code")


@column_rule("country-code", WARNING)
def country_code(table: Rows, column: Column) -> Iterator[Found]:
    """A country is not a two-letter ISO 3166 code in capitals, such as AU or GB.

    Use the ISO code.
    """
    return _iso_code(table, column, "Country", is_country_code, "not an ISO 3166 two-letter code")


@table_rule("amount-sign", ERROR, on=SIGNED)
def amount_sign(table: Rows) -> Iterator[Found]:
    """An amount or quantity has the wrong sign (negative, or zero where it must be positive).

    Amounts are positive; the row's type (withdrawal, credit, …) gives the direction.
    """
    entity = ENTITY_BY_NAME[table.name]
    for name, zero_allowed in SIGNED[table.name].items():
        value = table.c[name]
        shown = money_text(value) if entity.column(name).kind in MONEY_KINDS else as_text(value)
        if zero_allowed:
            yield found(table, name, shown, "must not be negative", value < number(0))
        else:
            yield found(table, name, shown, "must be greater than zero", value <= number(0))


@table_rule("rate-range", ERROR, on=("TaxCode",))
def rate_range(table: Rows) -> Iterator[Found]:
    """A tax rate is outside 0 … 100 %.

    Give the rate as a percentage: 10 for 10 %.
    """
    rate = table.c.Rate
    outside = or_(rate < number(0), rate > money_constant(Decimal(100)))
    yield found(table, "Rate", money_text(rate), "must be between 0 and 100", outside)


@table_rule("unique-import-id", ERROR)
def unique_import_id(table: Rows) -> Iterator[Found]:
    """Two or more rows share an ImportId.

    Give every row of the table its own ImportId.
    """
    import_id, rows = table.c.ImportId, func.count()
    detail = literal("ImportId used by ") + as_text(rows) + literal(" rows")
    shared = select(import_id, excerpt(import_id), detail).where(import_id.is_not(None))
    yield Found("ImportId", shared.group_by(import_id).having(rows > 1))


@reader_rule("schema-variant", WARNING)
def schema_variant() -> None:
    """A source column has a compatible type other than the schema's (MONEY for DECIMAL(19,4), a longer
    NVARCHAR, BIGINT for INT, …).

    Nothing to do if intended: values that do not fit the schema's type are reported one by one.
    """


@reader_rule("extra-column", WARNING)
def extra_column() -> None:
    """A source table has a column the schema does not define; it is not imported.

    Remove the column, or move its data into a schema column.
    """
