"""Every validation rule: its stable code, severity, what it finds and what the user should do.

Codes never change once published (consultants script against them); a rule that is retired keeps its
code unused. Errors block promotion; warnings are reported and do not.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    title: str
    fix: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        # Field level
        Rule("required", ERROR, "A required column is empty.", "Fill in the column."),
        Rule(
            "type",
            ERROR,
            "A value is not of the column's type.",
            "Store a value of the column's type, as the schema reference documents it.",
        ),
        Rule(
            "precision",
            ERROR,
            "A decimal has more than 4 decimal places or is too large for DECIMAL(19,4).",
            "Round to 4 decimal places; check the value's magnitude.",
        ),
        Rule("max-length", ERROR, "A text is longer than the column allows.", "Shorten the text."),
        Rule("enum", ERROR, "A value is not one of the enumeration's values.", "Use a documented value."),
        Rule(
            "date-range",
            ERROR,
            "A date lies outside 1900-01-01 … 2099-12-31, usually a placeholder or a typing error.",
            "Correct the date; leave an optional date empty rather than use a placeholder.",
        ),
        Rule(
            "email-format",
            WARNING,
            "An e-mail address is not of the form name@domain.tld.",
            "Correct the address or leave it empty.",
        ),
        Rule(
            "currency-code",
            ERROR,
            "A currency is not a three-letter ISO 4217 code in capitals, such as AUD or GBP.",
            "Use the ISO code, or leave it empty for the tenant's base currency.",
        ),
        Rule(
            "country-code",
            WARNING,
            "A country is not a two-letter ISO 3166 code in capitals, such as AU or GB.",
            "Use the ISO code.",
        ),
        Rule(
            "amount-sign",
            ERROR,
            "An amount or quantity has the wrong sign (negative, or zero where it must be positive).",
            "Amounts are positive; the row's type (withdrawal, credit, …) gives the direction.",
        ),
        Rule(
            "rate-range",
            ERROR,
            "A tax rate is outside 0 … 100 %.",
            "Give the rate as a percentage: 10 for 10 %.",
        ),
        Rule(
            "unique-import-id",
            ERROR,
            "Two or more rows share an ImportId.",
            "Give every row of the table its own ImportId.",
        ),
        Rule(
            "schema-variant",
            WARNING,
            "A source column has a compatible type other than the schema's (MONEY for DECIMAL(19,4), a "
            "longer NVARCHAR, BIGINT for INT, …).",
            "Nothing to do if intended: values that do not fit the schema's type are reported one by one.",
        ),
        Rule(
            "extra-column",
            WARNING,
            "A source table has a column the schema does not define; it is not imported.",
            "Remove the column, or move its data into a schema column.",
        ),
        # Row level
        Rule(
            "date-order",
            ERROR,
            "Dates are out of order (closed before opened, due before issued).",
            "Correct either date.",
        ),
        Rule(
            "work-item-amount",
            WARNING,
            "A work item's Amount differs from Minutes × Rate / 60 by more than a cent (a write-down?).",
            "Check Minutes, Rate and Amount; a deliberate write-up or write-down can stay.",
        ),
        Rule(
            "contact-name",
            ERROR,
            "A person has no FamilyName, or an organisation no OrganisationName.",
            "Fill in the name the contact's Type requires.",
        ),
        Rule(
            "billing-status",
            ERROR,
            "A billed item has no InvoiceId, or an item with an InvoiceId is not Billed.",
            "Set Status to Billed (1) exactly when InvoiceId is set.",
        ),
        # Cross-table
        Rule(
            "reference-unresolved",
            ERROR,
            "A reference names an ImportId found neither in this import nor among promoted objects.",
            "Correct the ImportId, include the row it refers to, or write the platform reference "
            "(prefix_id) of an object promoted earlier.",
        ),
        Rule(
            "reference-wrong-entity",
            ERROR,
            "A platform reference points at another kind of object.",
            "Use a reference with the target entity's prefix, such as matter_<id> in MatterId.",
        ),
        Rule(
            "reference-missing-in-production",
            ERROR,
            "A platform reference (prefix_id) names no object in the tenant's production data.",
            "Copy the reference from the id map of the import that promoted the object.",
        ),
        Rule(
            "invoice-matter",
            ERROR,
            "A billed work item or disbursement is on an invoice of another matter.",
            "Bill the item on an invoice of its own matter, or correct its MatterId.",
        ),
        # Accounting
        Rule(
            "journal-unbalanced",
            ERROR,
            "A journal entry's debits and credits differ.",
            "Correct the entry's lines so that total debits equal total credits.",
        ),
        Rule(
            "invoice-total",
            ERROR,
            "An invoice's Total is not FeesTotal + DisbursementsTotal + TaxTotal.",
            "Correct the totals.",
        ),
        Rule(
            "invoice-items",
            ERROR,
            "An invoice's FeesTotal or DisbursementsTotal differs from the sum of the items billed on it "
            "in this import.",
            "Correct the totals or the items' amounts and InvoiceIds.",
        ),
        Rule(
            "allocation-exceeds-receipt",
            ERROR,
            "A receipt's allocations add up to more than the receipt.",
            "Reduce the allocations to at most the amount received.",
        ),
        Rule(
            "allocation-exceeds-invoice",
            ERROR,
            "An invoice is paid (receipt allocations and trust payments) beyond its Total.",
            "Reduce the allocations or payments to the invoice's outstanding amount.",
        ),
        Rule(
            "trust-overdrawn",
            ERROR,
            "A matter's trust ledger goes below zero when its transactions are applied in date order.",
            "Trust ledgers may never be overdrawn: correct the dates, amounts or types, or add the "
            "missing deposit.",
        ),
        Rule(
            "trust-account",
            ERROR,
            "A trust transaction uses an account that is not in a Trust journal.",
            "Use a trust bank account (an account of the Trust journal).",
        ),
    )
}
