"""Format, row, cross-table and accounting rules, as set-based SQL on the staging store.

Each rule is one `INSERT INTO _Finding … SELECT …`. Staging tables are unqualified; the tenant's
production tables are qualified by `RuleDialect.production` (on SQLite the production store attached as
`production`; on PostgreSQL the tenant's schema, or `pg_temp` when production lives on another server and
validation works on a temporary copy of what the rules read: `PRODUCTION_LOOKUPS`).

The SQL is rendered for one dialect by a `RuleDialect`, so that SQLite and PostgreSQL report the same
rules, codes, columns, values and details:

- money is an integer count of 1/10,000ths on SQLite and NUMERIC(p,4) on PostgreSQL; sums and comparisons
  are exact on both, and `RuleDialect.money` shows a value as decimal text with exactly four places;
- platform references are matched with GLOB on SQLite and an anchored regular expression on PostgreSQL;
- every identifier is quoted, since PostgreSQL folds unquoted names to lower case;
- each rule inserts its findings ordered by ImportId, value and detail (binary order on both), so finding
  ids, and so "the first findings" and every listing, come out the same on both backends.

A reference can name its target three ways — an ImportId of this import, the ImportId of an object
promoted earlier, or a platform reference `prefix_<id>` — so rules that follow a reference first reduce it
to the target's ImportId (`_key`) and then look the target up in staging, then production (`_lookup`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from sqlalchemy import ColumnElement, UnicodeText, cast, collate, func, or_

from efimis_etl.schema.model import (
    BILLING_STATUS,
    CONTACT_TYPE,
    ENTITIES,
    ENTITY_BY_NAME,
    JOURNAL_TYPE,
    PLATFORM_ID_DIGITS,
    TRUST_TRANSACTION_TYPE,
    Kind,
    platform_reference_glob,
)
from efimis_etl.stores.base import PRODUCTION_LOOKUPS
from efimis_etl.stores.sql import platform_reference_regex
from efimis_etl.validation.catalogue import RULES

SCALE = 10_000  # on SQLite, money is stored as integer ten-thousandths
EARLIEST, LATEST = "1900-01-01", "2099-12-31"
BILLED = BILLING_STATUS.by_name("Billed").value
PERSON, ORGANISATION = CONTACT_TYPE.by_name("Person").value, CONTACT_TYPE.by_name("Organisation").value
TRUST_JOURNAL = JOURNAL_TYPE.by_name("Trust").value
TRUST_CREDITS = tuple(TRUST_TRANSACTION_TYPE.by_name(n).value for n in ("Deposit", "TransferIn"))
INVOICE_PAYMENT = TRUST_TRANSACTION_TYPE.by_name("InvoicePayment").value

# Columns whose values may never be negative, and those that must be strictly positive.
NON_NEGATIVE = {
    "Staff": ("DefaultRate",),
    "Matter": ("FixedFee",),
    "WorkItem": ("Minutes", "Rate", "Amount"),
    "Disbursement": ("Amount",),
    "Invoice": ("FeesTotal", "DisbursementsTotal", "TaxTotal", "Total"),
    "JournalEntryLine": ("Debit", "Credit"),
}
POSITIVE = {
    "Receipt": ("Amount",),
    "ReceiptAllocation": ("Amount",),
    "TrustTransaction": ("Amount",),
}



def _q(name: str) -> str:
    """A quoted identifier (our own names only)."""
    return '"' + name.replace('"', '""') + '"'


def _c(alias: str, name: str) -> str:
    """A qualified, quoted column."""
    return f"{alias}.{_q(name)}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class RuleDialect:
    """How the rules are spelled on one backend, and where they find the tenant's production tables.

    `production_schema` is the schema name (SQLite: the attachment `production`; PostgreSQL: the tenant's
    schema, or `pg_temp`). Staging tables are always unqualified: on PostgreSQL the staging schema is first
    on the search path.
    """

    name: Literal["sqlite", "postgresql"]
    production_schema: str

    @property
    def postgresql(self) -> bool:
        return self.name == "postgresql"

    @property
    def production(self) -> str:
        """The production schema as SQL text."""
        if self.postgresql and self.production_schema != "pg_temp":
            return _q(self.production_schema)
        return self.production_schema

    # Text SQL (business rules).

    def is_reference(self, value: str, prefix: str) -> str:
        """`value` is a platform reference `prefix_<32 hex digits>`."""
        if self.postgresql:
            return f"(({value}) COLLATE \"C\" ~ '{platform_reference_regex(prefix)}')"
        return f"{value} GLOB '{platform_reference_glob(prefix)}'"

    def platform_id(self, value: str) -> str:
        """The last 32 characters of a platform reference: its platform id."""
        if self.postgresql:
            return f"right({value}, {PLATFORM_ID_DIGITS})"
        return f"substr({value}, -{PLATFORM_ID_DIGITS})"

    def matches(self, value: str, *, glob: str, regex: str) -> str:
        """`value` matches a pattern, given as a SQLite GLOB and the equivalent PostgreSQL regex."""
        if self.postgresql:
            return f'({value} COLLATE "C" ~ {_quote(regex)})'
        return f"{value} GLOB {_quote(glob)}"

    def money(self, expression: str) -> str:
        """Exact decimal text (four places) of a money value, truncated toward zero past the fourth."""
        if self.postgresql:
            return f"(trunc(({expression})::numeric, 4)::text)"
        return (
            f"(CASE WHEN {expression} < 0 THEN '-' ELSE '' END || (abs({expression}) / {SCALE}) || '.' || "
            f"substr('0000' || (abs({expression}) % {SCALE}), -4))"
        )

    def amount(self, value: Decimal | int) -> str:
        """A money constant as the store keeps it."""
        if self.postgresql:
            return str(Decimal(value))
        scaled = Decimal(value).scaleb(4)
        assert scaled == scaled.to_integral_value()
        return str(int(scaled))

    def text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def sort(self, expression: str) -> str:
        """An ordering key in binary (code point) order, as SQLite's default collation orders text."""
        return f'({expression} COLLATE "C")' if self.postgresql else expression

    # SQLAlchemy expressions (field and reference rules).

    def is_reference_expr(self, value: ColumnElement[Any], *prefixes: str) -> ColumnElement[bool]:
        """`value` is a platform reference with one of these prefixes (on PostgreSQL one regular
        expression with alternatives: a regex per prefix costs a second per 100,000 rows)."""
        if self.postgresql:
            pattern = platform_reference_regex(*prefixes)
            return collate(value, "C").op("~", is_comparison=True)(pattern)
        return or_(*(value.op("GLOB", is_comparison=True)(platform_reference_glob(p)) for p in prefixes))

    def platform_id_expr(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.postgresql:
            return func.right(value, PLATFORM_ID_DIGITS)
        return func.substr(value, -PLATFORM_ID_DIGITS)

    def text_expr(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(value, UnicodeText()) if self.postgresql else value

    def sort_expr(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return collate(value.self_group(), "C") if self.postgresql else value


SQLITE = RuleDialect("sqlite", "production")


def postgresql(production_schema: str) -> RuleDialect:
    return RuleDialect("postgresql", production_schema)


FINDING_COLUMNS = ", ".join(
    _q(c) for c in ("Rule", "Severity", "TableName", "ImportId", "ColumnName", "Value", "Detail")
)
IMPORT_ID, VALUE, DETAIL = _q("ImportId"), _q("Value"), _q("Detail")


def _insert(d: RuleDialect, rule: str, table: str, column: str | None, select: str) -> str:
    """`select` yields ("ImportId", "Value", "Detail") for each violation; Value and Detail are text."""
    severity = RULES[rule].severity
    order = ", ".join(f"{d.sort(f'v.{c}')} NULLS FIRST" for c in (IMPORT_ID, VALUE, DETAIL))
    return (
        f'INSERT INTO "_Finding" ({FINDING_COLUMNS}) '
        f"SELECT {_quote(rule)}, {_quote(severity)}, {_quote(table)}, v.{IMPORT_ID}, "
        f"{_quote(column) if column else 'NULL'}, v.{VALUE}, v.{DETAIL} FROM ({select}) AS v ORDER BY {order}"
    )


def _key(d: RuleDialect, value: str, target: str) -> str:
    """The target's ImportId for a reference value, however the reference was written."""
    entity = ENTITY_BY_NAME[target]
    return (
        f"(CASE WHEN {d.is_reference(value, entity.prefix)} THEN "
        f"(SELECT k.{IMPORT_ID} FROM {d.production}.{_q(target)} k "
        f'WHERE k."PlatformId" = {d.platform_id(value)}) '
        f"ELSE {value} END)"
    )


def _lookup(d: RuleDialect, target: str, column: str, key: str) -> str:
    """A column of the target row: this import's row if there is one, else the promoted one."""
    assert column in PRODUCTION_LOOKUPS[target], f"add {target}.{column} to PRODUCTION_LOOKUPS"
    return (
        f"COALESCE((SELECT s.{_q(column)} FROM {_q(target)} s WHERE s.{IMPORT_ID} = {key} LIMIT 1), "
        f"(SELECT p.{_q(column)} FROM {d.production}.{_q(target)} p WHERE p.{IMPORT_ID} = {key}))"
    )


def _field_formats(d: RuleDialect) -> list[str]:
    out: list[str] = []
    for entity in ENTITIES:
        table = _q(entity.name)
        for column in entity.columns:
            name = _q(column.name)
            if column.kind is Kind.DATE:
                out.append(
                    _insert(
                        d,
                        "date-range",
                        entity.name,
                        column.name,
                        f"SELECT {IMPORT_ID}, {d.text(name)} AS {VALUE}, "
                        f"'outside {EARLIEST} … {LATEST}' AS {DETAIL} "
                        f"FROM {table} WHERE {name} < '{EARLIEST}' OR {name} > '{LATEST}'",
                    )
                )
            if column.name == "Email":
                email = d.matches(name, glob="?*@?*.?*", regex="^.+@.+[.].+$")
                no_separator = d.matches(name, glob="*[ ,;<>()]*", regex="[ ,;<>()]")
                one_at = d.matches(name, glob="*@*@*", regex="@.*@")
                out.append(
                    _insert(
                        d,
                        "email-format",
                        entity.name,
                        column.name,
                        f"SELECT {IMPORT_ID}, {name} AS {VALUE}, 'not an e-mail address' AS {DETAIL} "
                        f"FROM {table} WHERE {name} IS NOT NULL AND trim({name}) <> '' "
                        f"AND NOT ({email} AND NOT {no_separator} AND NOT {one_at})",
                    )
                )
            if column.name == "Currency":
                code = d.matches(name, glob="[A-Z][A-Z][A-Z]", regex="^[A-Z]{3}$")
                out.append(
                    _insert(
                        d,
                        "currency-code",
                        entity.name,
                        column.name,
                        f"SELECT {IMPORT_ID}, {name} AS {VALUE}, 'not an ISO 4217 code' AS {DETAIL} "
                        f"FROM {table} WHERE {name} IS NOT NULL AND trim({name}) <> '' AND NOT {code} "
                        f"AND length({name}) <= {column.length}",  # longer ones are max-length findings
                    )
                )
            if column.name == "Country":
                code = d.matches(name, glob="[A-Z][A-Z]", regex="^[A-Z]{2}$")
                out.append(
                    _insert(
                        d,
                        "country-code",
                        entity.name,
                        column.name,
                        f"SELECT {IMPORT_ID}, {name} AS {VALUE}, 'not an ISO 3166 two-letter code' "
                        f"AS {DETAIL} FROM {table} WHERE {name} IS NOT NULL AND trim({name}) <> '' "
                        f"AND NOT {code} AND length({name}) <= {column.length}",
                    )
                )
        money = {c.name for c in entity.columns if c.kind in (Kind.MONEY, Kind.RATE)}
        for column_name in NON_NEGATIVE.get(entity.name, ()):
            name = _q(column_name)
            shown = d.money(name) if column_name in money else d.text(name)
            out.append(
                _insert(
                    d,
                    "amount-sign",
                    entity.name,
                    column_name,
                    f"SELECT {IMPORT_ID}, {shown} AS {VALUE}, 'must not be negative' AS {DETAIL} "
                    f"FROM {table} WHERE {name} < 0",
                )
            )
        for column_name in POSITIVE.get(entity.name, ()):
            name = _q(column_name)
            out.append(
                _insert(
                    d,
                    "amount-sign",
                    entity.name,
                    column_name,
                    f"SELECT {IMPORT_ID}, {d.money(name)} AS {VALUE}, 'must be greater than zero' "
                    f"AS {DETAIL} FROM {table} WHERE {name} <= 0",
                )
            )
    out.append(
        _insert(
            d,
            "rate-range",
            "TaxCode",
            "Rate",
            f"SELECT {IMPORT_ID}, {d.money(_q('Rate'))} AS {VALUE}, 'must be between 0 and 100' "
            f'AS {DETAIL} FROM "TaxCode" WHERE "Rate" < 0 OR "Rate" > {d.amount(100)}',
        )
    )
    return out


def _row_rules(d: RuleDialect) -> list[str]:
    tolerance = d.amount(Decimal("0.01") * 60)  # one cent, on both sides multiplied by 60
    expected = '("Minutes" * "Rate" / 60)'
    return [
        _insert(
            d,
            "work-item-amount",
            "WorkItem",
            "Amount",
            f"SELECT {IMPORT_ID}, {d.money(_q('Amount'))} AS {VALUE}, "
            f"'Minutes × Rate / 60 = ' || {d.money(expected)} AS {DETAIL} "
            f'FROM "WorkItem" WHERE abs("Amount" * 60 - "Minutes" * "Rate") > {tolerance}',
        ),
        _insert(
            d,
            "contact-name",
            "Contact",
            "FamilyName",
            f"SELECT {IMPORT_ID}, NULL AS {VALUE}, 'a person (Type 0) needs a FamilyName' AS {DETAIL} "
            f'FROM "Contact" WHERE "Type" = {PERSON} AND ("FamilyName" IS NULL OR trim("FamilyName") = \'\')',
        ),
        _insert(
            d,
            "contact-name",
            "Contact",
            "OrganisationName",
            f"SELECT {IMPORT_ID}, NULL AS {VALUE}, "
            f"'an organisation (Type 1) needs an OrganisationName' AS {DETAIL} "
            f'FROM "Contact" WHERE "Type" = {ORGANISATION} '
            'AND ("OrganisationName" IS NULL OR trim("OrganisationName") = \'\')',
        ),
        *(
            _insert(
                d,
                "billing-status",
                table,
                "InvoiceId",
                f'SELECT {IMPORT_ID}, "InvoiceId" AS {VALUE}, CASE WHEN "Status" = {BILLED} '
                "THEN 'Status is Billed but InvoiceId is empty' "
                f"ELSE 'InvoiceId is set but Status is not Billed' END AS {DETAIL} FROM {_q(table)} "
                f'WHERE ("Status" = {BILLED}) <> ("InvoiceId" IS NOT NULL AND trim("InvoiceId") <> \'\')',
            )
            for table in ("WorkItem", "Disbursement")
        ),
    ]


def _cross_table_rules(d: RuleDialect) -> list[str]:
    out = []
    for table in ("WorkItem", "Disbursement"):
        invoice = _key(d, 'i."InvoiceId"', "Invoice")
        invoice_matter = _key(d, _lookup(d, "Invoice", "MatterId", invoice), "Matter")
        item_matter = _key(d, 'i."MatterId"', "Matter")
        out.append(
            _insert(
                d,
                "invoice-matter",
                table,
                "InvoiceId",
                f"SELECT {IMPORT_ID}, {VALUE}, 'the invoice is on matter ' || \"InvoiceMatter\" || "
                f"', this item on ' || \"ItemMatter\" AS {DETAIL} FROM (SELECT i.{IMPORT_ID}, "
                f'i."InvoiceId" AS {VALUE}, {invoice_matter} AS "InvoiceMatter", '
                f'{item_matter} AS "ItemMatter" '
                f'FROM {_q(table)} i WHERE i."InvoiceId" IS NOT NULL) AS m '
                'WHERE "InvoiceMatter" <> "ItemMatter"',
            )
        )
    return out


def _accounting_rules(d: RuleDialect) -> list[str]:
    credits = ", ".join(str(v) for v in TRUST_CREDITS)
    trust_account_journal = _key(
        d, _lookup(d, "Account", "JournalId", _key(d, 't."AccountId"', "Account")), "Journal"
    )
    totals = '("FeesTotal" + "DisbursementsTotal" + "TaxTotal")'
    is_credit = f'CASE WHEN "Type" IN ({credits}) THEN 0 ELSE 1 END'
    ledger_order = f'"TransactionDate", {is_credit}, {d.sort(IMPORT_ID)}'
    return [
        _insert(
            d,
            "journal-unbalanced",
            "JournalEntry",
            None,
            f"SELECT e.{IMPORT_ID}, NULL AS {VALUE}, 'debits ' || {d.money(_c('l', 'Debits'))} || ', credits ' "
            f'|| {d.money(_c("l", "Credits"))} AS {DETAIL} FROM "JournalEntry" e JOIN (SELECT "JournalEntryId", '
            'sum("Debit") AS "Debits", sum("Credit") AS "Credits" FROM "JournalEntryLine" '
            'GROUP BY "JournalEntryId") l ON l."JournalEntryId" = e."ImportId" WHERE l."Debits" <> l."Credits"',
        ),
        _insert(
            d,
            "invoice-total",
            "Invoice",
            "Total",
            f"SELECT {IMPORT_ID}, {d.money(_q('Total'))} AS {VALUE}, "
            f"'FeesTotal + DisbursementsTotal + TaxTotal = ' || "
            f"{d.money(totals)} AS {DETAIL} "
            'FROM "Invoice" WHERE "Total" <> "FeesTotal" + "DisbursementsTotal" + "TaxTotal"',
        ),
        *(
            _insert(
                d,
                "invoice-items",
                "Invoice",
                column,
                f"SELECT v.{IMPORT_ID}, {d.money(_c('v', column))} AS {VALUE}, "
                f"'the {items} billed on it add up to ' || {d.money(_c('s', 'Total'))} AS {DETAIL} "
                f'FROM "Invoice" v JOIN (SELECT "InvoiceId", sum("Amount") AS "Total" '
                f'FROM {_q(table)} WHERE "Status" = {BILLED} GROUP BY "InvoiceId") s '
                f'ON s."InvoiceId" = v."ImportId" WHERE s."Total" <> v.{_q(column)}',
            )
            for column, table, items in (
                ("FeesTotal", "WorkItem", "work items"),
                ("DisbursementsTotal", "Disbursement", "disbursements"),
            )
        ),
        _insert(
            d,
            "allocation-exceeds-receipt",
            "Receipt",
            "Amount",
            f"SELECT r.{IMPORT_ID}, {d.money(_c('r', 'Amount'))} AS {VALUE}, "
            f"'allocated ' || {d.money(_c('a', 'Total'))} AS {DETAIL} "
            'FROM "Receipt" r JOIN (SELECT "ReceiptId", sum("Amount") AS "Total" FROM "ReceiptAllocation" '
            'GROUP BY "ReceiptId") a ON a."ReceiptId" = r."ImportId" WHERE a."Total" > r."Amount"',
        ),
        _insert(
            d,
            "allocation-exceeds-invoice",
            "Invoice",
            "Total",
            f"SELECT v.{IMPORT_ID}, {d.money(_c('v', 'Total'))} AS {VALUE}, 'paid ' || {d.money(_c('p', 'Paid'))} "
            f'AS {DETAIL} FROM "Invoice" v JOIN (SELECT "InvoiceId", sum("Amount") AS "Paid" FROM ('
            'SELECT "InvoiceId", "Amount" FROM "ReceiptAllocation" UNION ALL '
            f'SELECT "InvoiceId", "Amount" FROM "TrustTransaction" WHERE "Type" = {INVOICE_PAYMENT}) AS u '
            'GROUP BY "InvoiceId") p ON p."InvoiceId" = v."ImportId" WHERE p."Paid" > v."Total"',
        ),
        # The first transaction that takes each matter's trust ledger below zero. On a given day money
        # in is applied before money out, so a same-day deposit and payment is never reported.
        _insert(
            d,
            "trust-overdrawn",
            "TrustTransaction",
            "Amount",
            f"SELECT {IMPORT_ID}, {d.money(_q('Amount'))} AS {VALUE}, 'the ledger of matter ' || "
            f"\"MatterId\" || ' would stand at ' || {d.money(_q('Balance'))} || ' on ' || "
            f"{d.text(_q('TransactionDate'))} AS {DETAIL} FROM ("
            f'SELECT {IMPORT_ID}, "MatterId", "Amount", "TransactionDate", "Balance", '
            'row_number() OVER (PARTITION BY "MatterId" ORDER BY "Position") AS "Nth" FROM ('
            f'SELECT {IMPORT_ID}, "MatterId", "Amount", "TransactionDate", sum(CASE WHEN "Type" IN ({credits}) '
            f'THEN "Amount" ELSE -"Amount" END) OVER (PARTITION BY "MatterId" ORDER BY {ledger_order} '
            'ROWS UNBOUNDED PRECEDING) AS "Balance", '
            f'row_number() OVER (PARTITION BY "MatterId" ORDER BY {ledger_order}) AS "Position" '
            'FROM "TrustTransaction" WHERE "MatterId" IS NOT NULL AND "Amount" IS NOT NULL '
            'AND "Type" IS NOT NULL AND "TransactionDate" IS NOT NULL'
            ') AS ledger WHERE "Balance" < 0) AS overdrawn WHERE "Nth" = 1',
        ),
        _insert(
            d,
            "trust-account",
            "TrustTransaction",
            "AccountId",
            f"SELECT {IMPORT_ID}, {VALUE}, 'the account is in journal ' || \"JournalKey\" AS {DETAIL} FROM ("
            f'SELECT t.{IMPORT_ID}, t."AccountId" AS {VALUE}, {trust_account_journal} AS "JournalKey" '
            f'FROM "TrustTransaction" t) AS a '
            f"WHERE {_lookup(d, 'Journal', 'Type', _q('JournalKey'))} <> {TRUST_JOURNAL}",
        ),
    ]


@cache
def statements(dialect: RuleDialect = SQLITE) -> tuple[str, ...]:
    d = dialect
    return tuple(_field_formats(d) + _row_rules(d) + _cross_table_rules(d) + _accounting_rules(d))
