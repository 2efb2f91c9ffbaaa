"""Format, row, cross-table and accounting rules, as set-based SQL on the staging store (SQLite).

Each rule is one `INSERT INTO _Finding … SELECT …`. Staging tables are unqualified; the tenant's
production store is attached as `production`. Money in both stores is an integer count of 1/10,000ths,
so sums and comparisons here are exact. A reference can name its target three ways — an ImportId of this
import, the ImportId of an object promoted earlier, or a platform reference `prefix_<id>` — so rules that
follow a reference first reduce it to the target's ImportId (`_key`) and then look the target up in
staging, then production (`_lookup`).
"""

from __future__ import annotations

from functools import cache

from efimis_etl.schema.model import (
    BILLING_STATUS,
    CONTACT_TYPE,
    ENTITIES,
    ENTITY_BY_NAME,
    JOURNAL_TYPE,
    TRUST_TRANSACTION_TYPE,
    Kind,
    platform_reference_glob,
)
from efimis_etl.validation.catalogue import RULES

SCALE = 10_000  # money is stored as integer ten-thousandths
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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _money(expression: str) -> str:
    """Exact decimal text of a money value stored as ten-thousandths."""
    return (
        f"(CASE WHEN {expression} < 0 THEN '-' ELSE '' END || (abs({expression}) / {SCALE}) || '.' || "
        f"substr('0000' || (abs({expression}) % {SCALE}), -4))"
    )


def _insert(rule: str, table: str, column: str | None, select: str) -> str:
    """`select` yields (ImportId, Value, Detail) for each violation."""
    severity = RULES[rule].severity
    return (
        'INSERT INTO "_Finding" (Rule, Severity, TableName, ImportId, ColumnName, Value, Detail) '
        f"SELECT {_quote(rule)}, {_quote(severity)}, {_quote(table)}, v.ImportId, "
        f"{_quote(column) if column else 'NULL'}, v.Value, v.Detail FROM ({select}) AS v"
    )


def _key(value: str, target: str) -> str:
    """The target's ImportId for a reference value, however the reference was written."""
    entity = ENTITY_BY_NAME[target]
    return (
        f"(CASE WHEN {value} GLOB '{platform_reference_glob(entity.prefix)}' THEN "
        f'(SELECT k.ImportId FROM production."{target}" k WHERE k.PlatformId = substr({value}, -32)) '
        f"ELSE {value} END)"
    )


def _lookup(target: str, column: str, key: str) -> str:
    """A column of the target row: this import's row if there is one, else the promoted one."""
    return (
        f'COALESCE((SELECT s.{column} FROM "{target}" s WHERE s.ImportId = {key} LIMIT 1), '
        f'(SELECT p.{column} FROM production."{target}" p WHERE p.ImportId = {key}))'
    )


def _field_formats() -> list[str]:
    out: list[str] = []
    for entity in ENTITIES:
        table = f'"{entity.name}"'
        for column in entity.columns:
            name = column.name
            if column.kind is Kind.DATE:
                out.append(
                    _insert(
                        "date-range",
                        entity.name,
                        name,
                        f"SELECT ImportId, {name} AS Value, 'outside {EARLIEST} … {LATEST}' AS Detail "
                        f"FROM {table} WHERE {name} < '{EARLIEST}' OR {name} > '{LATEST}'",
                    )
                )
            if name == "Email":
                out.append(
                    _insert(
                        "email-format",
                        entity.name,
                        name,
                        f"SELECT ImportId, {name} AS Value, 'not an e-mail address' AS Detail FROM {table} "
                        f"WHERE {name} IS NOT NULL AND trim({name}) <> '' AND NOT ({name} GLOB '?*@?*.?*' "
                        f"AND {name} NOT GLOB '*[ ,;<>()]*' AND {name} NOT GLOB '*@*@*')",
                    )
                )
            if name == "Currency":
                out.append(
                    _insert(
                        "currency-code",
                        entity.name,
                        name,
                        f"SELECT ImportId, {name} AS Value, 'not an ISO 4217 code' AS Detail FROM {table} "
                        f"WHERE {name} IS NOT NULL AND trim({name}) <> '' AND {name} NOT GLOB '[A-Z][A-Z][A-Z]' "
                        f"AND length({name}) <= {column.length}",  # longer ones are max-length findings
                    )
                )
            if name == "Country":
                out.append(
                    _insert(
                        "country-code",
                        entity.name,
                        name,
                        f"SELECT ImportId, {name} AS Value, 'not an ISO 3166 two-letter code' AS Detail "
                        f"FROM {table} WHERE {name} IS NOT NULL AND trim({name}) <> '' "
                        f"AND {name} NOT GLOB '[A-Z][A-Z]' AND length({name}) <= {column.length}",
                    )
                )
        money = {c.name for c in entity.columns if c.kind in (Kind.MONEY, Kind.RATE)}
        for name in NON_NEGATIVE.get(entity.name, ()):
            shown = _money(name) if name in money else name
            out.append(
                _insert(
                    "amount-sign",
                    entity.name,
                    name,
                    f"SELECT ImportId, {shown} AS Value, 'must not be negative' AS Detail "
                    f"FROM {table} WHERE {name} < 0",
                )
            )
        for name in POSITIVE.get(entity.name, ()):
            out.append(
                _insert(
                    "amount-sign",
                    entity.name,
                    name,
                    f"SELECT ImportId, {_money(name)} AS Value, 'must be greater than zero' AS Detail "
                    f"FROM {table} WHERE {name} <= 0",
                )
            )
    out.append(
        _insert(
            "rate-range",
            "TaxCode",
            "Rate",
            f"SELECT ImportId, {_money('Rate')} AS Value, 'must be between 0 and 100' AS Detail FROM \"TaxCode\" "
            f"WHERE Rate < 0 OR Rate > {100 * SCALE}",
        )
    )
    return out


def _row_rules() -> list[str]:
    tolerance = SCALE // 100 * 60  # one cent, on both sides multiplied by 60
    return [
        _insert(
            "work-item-amount",
            "WorkItem",
            "Amount",
            f"SELECT ImportId, {_money('Amount')} AS Value, "
            f"'Minutes × Rate / 60 = ' || {_money('(Minutes * Rate / 60)')} AS Detail "
            f'FROM "WorkItem" WHERE abs(Amount * 60 - Minutes * Rate) > {tolerance}',
        ),
        _insert(
            "contact-name",
            "Contact",
            "FamilyName",
            "SELECT ImportId, NULL AS Value, 'a person (Type 0) needs a FamilyName' AS Detail "
            f"FROM \"Contact\" WHERE Type = {PERSON} AND (FamilyName IS NULL OR trim(FamilyName) = '')",
        ),
        _insert(
            "contact-name",
            "Contact",
            "OrganisationName",
            "SELECT ImportId, NULL AS Value, 'an organisation (Type 1) needs an OrganisationName' AS Detail "
            f'FROM "Contact" WHERE Type = {ORGANISATION} '
            "AND (OrganisationName IS NULL OR trim(OrganisationName) = '')",
        ),
        *(
            _insert(
                "billing-status",
                table,
                "InvoiceId",
                f"SELECT ImportId, InvoiceId AS Value, CASE WHEN Status = {BILLED} "
                f"THEN 'Status is Billed but InvoiceId is empty' "
                f"ELSE 'InvoiceId is set but Status is not Billed' END AS Detail FROM \"{table}\" "
                f"WHERE (Status = {BILLED}) <> (InvoiceId IS NOT NULL AND trim(InvoiceId) <> '')",
            )
            for table in ("WorkItem", "Disbursement")
        ),
    ]


def _cross_table_rules() -> list[str]:
    out = []
    for table in ("WorkItem", "Disbursement"):
        invoice = _key("i.InvoiceId", "Invoice")
        invoice_matter = _key(_lookup("Invoice", "MatterId", invoice), "Matter")
        out.append(
            _insert(
                "invoice-matter",
                table,
                "InvoiceId",
                "SELECT ImportId, Value, 'the invoice is on matter ' || InvoiceMatter || ', this item on ' "
                f"|| ItemMatter AS Detail FROM (SELECT i.ImportId, i.InvoiceId AS Value, {invoice_matter} "
                f'AS InvoiceMatter, {_key("i.MatterId", "Matter")} AS ItemMatter FROM "{table}" i '
                "WHERE i.InvoiceId IS NOT NULL) WHERE InvoiceMatter <> ItemMatter",
            )
        )
    return out


def _accounting_rules() -> list[str]:
    credits = ", ".join(str(v) for v in TRUST_CREDITS)
    trust_account_journal = _key(_lookup("Account", "JournalId", _key("t.AccountId", "Account")), "Journal")
    return [
        _insert(
            "journal-unbalanced",
            "JournalEntry",
            None,
            f"SELECT e.ImportId, NULL AS Value, 'debits ' || {_money('l.Debits')} || ', credits ' || "
            f'{_money("l.Credits")} AS Detail FROM "JournalEntry" e JOIN (SELECT JournalEntryId, '
            'sum(Debit) AS Debits, sum(Credit) AS Credits FROM "JournalEntryLine" GROUP BY JournalEntryId) l '
            "ON l.JournalEntryId = e.ImportId WHERE l.Debits <> l.Credits",
        ),
        _insert(
            "invoice-total",
            "Invoice",
            "Total",
            f"SELECT ImportId, {_money('Total')} AS Value, 'FeesTotal + DisbursementsTotal + TaxTotal = ' || "
            f'{_money("(FeesTotal + DisbursementsTotal + TaxTotal)")} AS Detail FROM "Invoice" '
            "WHERE Total <> FeesTotal + DisbursementsTotal + TaxTotal",
        ),
        *(
            _insert(
                "invoice-items",
                "Invoice",
                column,
                f"SELECT v.ImportId, {_money(f'v.{column}')} AS Value, 'the {items} billed on it add up to ' || "
                f'{_money("s.Total")} AS Detail FROM "Invoice" v JOIN (SELECT InvoiceId, sum(Amount) AS Total '
                f'FROM "{table}" WHERE Status = {BILLED} GROUP BY InvoiceId) s ON s.InvoiceId = v.ImportId '
                f"WHERE s.Total <> v.{column}",
            )
            for column, table, items in (
                ("FeesTotal", "WorkItem", "work items"),
                ("DisbursementsTotal", "Disbursement", "disbursements"),
            )
        ),
        _insert(
            "allocation-exceeds-receipt",
            "Receipt",
            "Amount",
            f"SELECT r.ImportId, {_money('r.Amount')} AS Value, 'allocated ' || {_money('a.Total')} AS Detail "
            'FROM "Receipt" r JOIN (SELECT ReceiptId, sum(Amount) AS Total FROM "ReceiptAllocation" '
            "GROUP BY ReceiptId) a ON a.ReceiptId = r.ImportId WHERE a.Total > r.Amount",
        ),
        _insert(
            "allocation-exceeds-invoice",
            "Invoice",
            "Total",
            f"SELECT v.ImportId, {_money('v.Total')} AS Value, 'paid ' || {_money('p.Paid')} AS Detail "
            'FROM "Invoice" v JOIN (SELECT InvoiceId, sum(Amount) AS Paid FROM ('
            'SELECT InvoiceId, Amount FROM "ReceiptAllocation" UNION ALL '
            f'SELECT InvoiceId, Amount FROM "TrustTransaction" WHERE Type = {INVOICE_PAYMENT}) '
            "GROUP BY InvoiceId) p ON p.InvoiceId = v.ImportId WHERE p.Paid > v.Total",
        ),
        # The first transaction that takes each matter's trust ledger below zero. On a given day money
        # in is applied before money out, so a same-day deposit and payment is never reported.
        _insert(
            "trust-overdrawn",
            "TrustTransaction",
            "Amount",
            f"SELECT ImportId, {_money('Amount')} AS Value, 'the ledger of matter ' || MatterId || "
            f"' would stand at ' || {_money('Balance')} || ' on ' || TransactionDate AS Detail FROM ("
            "SELECT ImportId, MatterId, Amount, TransactionDate, Balance, "
            "row_number() OVER (PARTITION BY MatterId ORDER BY Position) AS Nth FROM ("
            f"SELECT ImportId, MatterId, Amount, TransactionDate, sum(CASE WHEN Type IN ({credits}) "
            "THEN Amount ELSE -Amount END) OVER (PARTITION BY MatterId ORDER BY TransactionDate, "
            f"CASE WHEN Type IN ({credits}) THEN 0 ELSE 1 END, ImportId ROWS UNBOUNDED PRECEDING) AS Balance, "
            f"row_number() OVER (PARTITION BY MatterId ORDER BY TransactionDate, CASE WHEN Type IN ({credits}) "
            'THEN 0 ELSE 1 END, ImportId) AS Position FROM "TrustTransaction" '
            "WHERE MatterId IS NOT NULL AND Amount IS NOT NULL AND Type IS NOT NULL AND TransactionDate IS NOT NULL"
            ") WHERE Balance < 0) WHERE Nth = 1",
        ),
        _insert(
            "trust-account",
            "TrustTransaction",
            "AccountId",
            "SELECT ImportId, Value, 'the account is in journal ' || JournalKey AS Detail FROM ("
            f"SELECT t.ImportId, t.AccountId AS Value, {trust_account_journal} AS JournalKey "
            f'FROM "TrustTransaction" t) WHERE {_lookup("Journal", "Type", "JournalKey")} <> {TRUST_JOURNAL}',
        ),
    ]


@cache
def statements() -> tuple[str, ...]:
    return tuple(_field_formats() + _row_rules() + _cross_table_rules() + _accounting_rules())
