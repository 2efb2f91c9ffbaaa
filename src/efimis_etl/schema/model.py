"""The Efimis ETL schema 1.0: every entity, column, reference and enumeration, declared once.

Everything else is rendered from this module: the customer's DDL (`Efimis-1.0.sql`), our staging and
production tables, the validation rules' inputs and the schema reference. Change the schema here, and
only here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property

SCHEMA_VERSION = "1.0"
SCHEMA_NAME = "etl"
IMPORT_ID_LENGTH = 100
REFERENCE_LENGTH = 100


class Kind(enum.Enum):
    """The kinds of value a column holds; each maps to one SQL type per dialect (see `schema.tables`)."""

    TEXT = "text"  # NVARCHAR(n)
    LONG_TEXT = "long text"  # NVARCHAR(MAX)
    INTEGER = "integer"  # INT
    BOOLEAN = "boolean"  # BIT
    MONEY = "money"  # DECIMAL(19,4)
    RATE = "rate"  # DECIMAL(9,4), a percentage
    DATE = "date"  # DATE
    REFERENCE = "reference"  # NVARCHAR(100): an ImportId of this import, or prefix_uniqueid
    ENUM = "enum"  # INT holding an enumeration's value


@dataclass(frozen=True)
class EnumValue:
    name: str
    value: int
    description: str


@dataclass(frozen=True)
class Enumeration:
    name: str
    description: str
    values: tuple[EnumValue, ...]
    supported: bool = True

    @cached_property
    def allowed(self) -> frozenset[int]:
        return frozenset(v.value for v in self.values)

    def by_name(self, name: str) -> EnumValue:
        return next(v for v in self.values if v.name == name)


def _enum(name: str, description: str, *values: tuple[str, str], supported: bool = True) -> Enumeration:
    return Enumeration(
        name, description, tuple(EnumValue(n, i, d) for i, (n, d) in enumerate(values)), supported
    )


JOURNAL_TYPE = _enum(
    "JournalType",
    "Which set of books a journal is.",
    ("General", "The office (general) ledger."),
    ("Trust", "The trust account ledger: money held for clients."),
    ("ControlledMonies", "Controlled-monies ledger: client money in a separate, client-named account."),
)
ACCOUNT_TYPE = _enum(
    "AccountType",
    "What kind of account this is (defined by Efimis ETL; not published by the platform).",
    ("General", "An ordinary ledger account."),
    ("Bank", "An office bank account."),
    ("TrustBank", "A trust bank account (Trust journal)."),
    ("ControlledMoniesBank", "A controlled-monies bank account (ControlledMonies journal)."),
    ("CreditCard", "A credit card account."),
)
ACCOUNT_CATEGORY = _enum(
    "AccountCategory",
    "The account's place in the financial statements.",
    ("Asset", "Asset."),
    ("Liability", "Liability."),
    ("Equity", "Equity."),
    ("Revenue", "Revenue."),
    ("Expense", "Expense."),
)
ACCOUNT_ROLE = _enum(
    "AccountRole",
    "Roles an account plays in the platform's postings. Listed for reference: not importable yet.",
    ("Unallocated", "Catch-all."),
    ("UnbankedFunds", "Funds received but not yet banked."),
    ("AccountsReceivable", "Accounts receivable."),
    ("DebtorsAdjustment", "Debtors adjustment."),
    ("AccountsPayable", "Accounts payable."),
    ("CreditorsAdjustment", "Creditors adjustment."),
    ("SupplierPrepayments", "Advance payments to suppliers."),
    ("SupplierCredits", "Supplier non-cash credit notes."),
    ("Disbursement", "Disbursements incurred."),
    ("DisbursementRecovered", "Disbursements recovered."),
    ("AnticipatedDisbursement", "Anticipated disbursements."),
    ("AnticipatedDisbursementRecovered", "Anticipated disbursements recovered."),
    ("ClientFunds", "Client advances for future invoices."),
    ("CreditNotes", "Firm-issued non-cash credits."),
    ("TaxCollected", "Tax collected."),
    ("TaxPaid", "Tax paid."),
    ("CmaControl", "Controlled-monies control account; trust journal only."),
    ("StatDepositControl", "Statutory deposit control; only some jurisdictions."),
    supported=False,
)
CONTACT_TYPE = _enum(
    "ContactType",
    "Whether a contact is a person or an organisation.",
    ("Person", "A natural person: FamilyName is required."),
    ("Organisation", "A company, firm or other body: OrganisationName is required."),
)
MATTER_STATUS = _enum(
    "MatterStatus",
    "Where a matter stands.",
    ("Open", "Work is in progress."),
    ("Pending", "Not yet started or on hold."),
    ("Closed", "Finished: ClosedOn should be set."),
)
BILLING_METHOD = _enum(
    "BillingMethod",
    "How a matter is charged.",
    ("Hourly", "Time-based: work items at their rates."),
    ("FixedFee", "A fixed fee: FixedFee holds the amount."),
    ("NoCharge", "Not charged (pro bono or internal)."),
)
MATTER_CONTACT_ROLE = _enum(
    "MatterContactRole",
    "The part a contact plays in a matter.",
    ("OtherSide", "The other party."),
    ("OtherSideSolicitor", "The other party's solicitor."),
    ("Referrer", "Who referred the matter."),
    ("Agent", "An agent acting for the firm."),
    ("Witness", "A witness."),
    ("Other", "Any other role."),
)
BILLING_STATUS = _enum(
    "BillingStatus",
    "Whether a work item or disbursement has been billed.",
    ("Unbilled", "Not yet on an invoice."),
    ("Billed", "On an invoice: InvoiceId is set."),
    ("WrittenOff", "Will never be billed."),
)
INVOICE_STATUS = _enum(
    "InvoiceStatus",
    "Where an invoice stands.",
    ("Draft", "Not yet issued."),
    ("Issued", "Issued and unpaid."),
    ("PartPaid", "Partly paid."),
    ("Paid", "Fully paid."),
    ("Void", "Cancelled."),
)
RECEIPT_METHOD = _enum(
    "ReceiptMethod",
    "How money was received.",
    ("BankTransfer", "Electronic funds transfer."),
    ("Cheque", "Cheque."),
    ("Card", "Credit or debit card."),
    ("Cash", "Cash."),
    ("DirectDebit", "Direct debit."),
)
TRUST_TRANSACTION_TYPE = _enum(
    "TrustTransactionType",
    "The kind of trust ledger movement; Amount is always positive, the type gives the direction.",
    ("Deposit", "Money received into trust for the matter (increases the balance)."),
    ("Withdrawal", "Money paid out of trust for the matter (decreases the balance)."),
    ("TransferIn", "Transfer from another matter's ledger (increases the balance)."),
    ("TransferOut", "Transfer to another matter's ledger (decreases the balance)."),
    ("InvoicePayment", "Payment of an invoice from trust (decreases the balance)."),
)

ENUMERATIONS: tuple[Enumeration, ...] = (
    JOURNAL_TYPE,
    ACCOUNT_TYPE,
    ACCOUNT_CATEGORY,
    ACCOUNT_ROLE,
    CONTACT_TYPE,
    MATTER_STATUS,
    BILLING_METHOD,
    MATTER_CONTACT_ROLE,
    BILLING_STATUS,
    INVOICE_STATUS,
    RECEIPT_METHOD,
    TRUST_TRANSACTION_TYPE,
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool
    description: str
    length: int | None = None  # TEXT only
    target: str | None = None  # REFERENCE only: the entity referred to
    enumeration: Enumeration | None = None  # ENUM only

    @property
    def max_length(self) -> int | None:
        if self.kind is Kind.TEXT:
            return self.length
        if self.kind is Kind.REFERENCE:
            return REFERENCE_LENGTH
        return None


def text(name: str, length: int, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.TEXT, required, description, length=length)


def long_text(name: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.LONG_TEXT, required, description)


def integer(name: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.INTEGER, required, description)


def boolean(name: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.BOOLEAN, required, description)


def money(name: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.MONEY, required, description)


def rate(name: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.RATE, required, description)


def date(name: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.DATE, required, description)


def ref(name: str, target: str, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.REFERENCE, required, description, target=target)


def choice(name: str, enumeration: Enumeration, description: str, *, required: bool = False) -> Column:
    return Column(name, Kind.ENUM, required, description, enumeration=enumeration)


def currency(name: str = "Currency") -> Column:
    return text(name, 3, "ISO 4217 currency code such as AUD or GBP; the tenant's base currency if empty.")


@dataclass(frozen=True)
class Entity:
    name: str
    description: str
    columns: tuple[Column, ...]
    importable: bool = True  # False only for SchemaVersion, which has no ImportId
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.all_columns})

    @property
    def prefix(self) -> str:
        """The lowercase prefix of this entity's platform references, as in `matter_<32 hex digits>`."""
        return self.name.lower()

    @property
    def all_columns(self) -> tuple[Column, ...]:
        if not self.importable:
            return self.columns
        import_id = text(
            "ImportId",
            IMPORT_ID_LENGTH,
            "Identifies the row within this entity: the source system's id, or one you generate. "
            "Importing the same ImportId again updates the object.",
            required=True,
        )
        return (import_id, *self.columns)

    @property
    def references(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind is Kind.REFERENCE)

    def column(self, name: str) -> Column:
        return self._by_name[name]


SCHEMA_VERSION_ENTITY = Entity(
    "SchemaVersion",
    "One row naming the schema version these tables follow, so that the importer can refuse a database "
    f"built from another version. Efimis-{SCHEMA_VERSION}.sql inserts it: Version = '{SCHEMA_VERSION}'.",
    (text("Version", 20, "The schema version, '1.0'.", required=True),),
    importable=False,
)

# Declared in dependency order: every entity comes after the entities it refers to (self-references aside).
ENTITIES: tuple[Entity, ...] = (
    Entity(
        "Journal",
        "A set of books: the office (General) ledger, the Trust ledger, a ControlledMonies ledger.",
        (
            text("Name", 100, "The journal's name.", required=True),
            choice("Type", JOURNAL_TYPE, "Which books these are.", required=True),
            currency(),
        ),
    ),
    Entity(
        "TaxCode",
        "A tax rate applied to fees and disbursements, such as GST 10 % or VAT 20 %.",
        (
            text("Code", 20, "Short code, such as GST or VAT20.", required=True),
            text("Name", 100, "Descriptive name.", required=True),
            rate("Rate", "The rate as a percentage: 10.0000 for 10 %.", required=True),
            boolean("IsActive", "Whether the code may be used on new transactions.", required=True),
        ),
    ),
    Entity(
        "Account",
        "A ledger account. The tenant starts with a default chart of accounts; imported accounts extend it.",
        (
            text("Name", 150, "The account's name.", required=True),
            text("Description", 500, "Longer description."),
            ref("JournalId", "Journal", "The journal (books) this account belongs to.", required=True),
            ref("ParentAccountId", "Account", "The parent account, for a hierarchical chart of accounts."),
            choice("Type", ACCOUNT_TYPE, "What kind of account this is.", required=True),
            choice("AccountCategory", ACCOUNT_CATEGORY, "Asset, liability, ….", required=True),
            text("AccountCode", 30, "The account's code in the chart of accounts."),
            text("BankName", 100, "Bank accounts: the bank's name."),
            text("BankBSB", 10, "Bank accounts (Australia): the BSB."),
            text("BankAccountNumber", 30, "Bank accounts: the account number."),
            ref("TaxCodeId", "TaxCode", "The default tax code for postings to this account."),
            currency(),
            money("Balance", "The opening balance."),
        ),
    ),
    Entity(
        "Staff",
        "A fee earner or other user of the firm.",
        (
            text("Name", 150, "Full name.", required=True),
            text("Email", 254, "E-mail address."),
            text("Initials", 10, "Initials, as shown on time records."),
            text("Position", 100, "Position, such as Partner or Senior Associate."),
            money("DefaultRate", "Default hourly rate."),
            boolean("IsActive", "Whether the person still works at the firm.", required=True),
        ),
    ),
    Entity(
        "Contact",
        "A person or an organisation: clients' contacts, other sides, suppliers, referrers.",
        (
            choice("Type", CONTACT_TYPE, "Person or organisation.", required=True),
            text("Title", 20, "Title, such as Ms or Dr (persons)."),
            text("GivenName", 100, "Given name (persons)."),
            text("FamilyName", 100, "Family name (persons: required)."),
            text("OrganisationName", 200, "Organisation name (organisations: required)."),
            text("Email", 254, "E-mail address."),
            text("Phone", 50, "Telephone number."),
            text("AddressLine1", 200, "Address, first line."),
            text("AddressLine2", 200, "Address, second line."),
            text("City", 100, "City or suburb."),
            text("State", 100, "State, county or region."),
            text("PostCode", 20, "Postcode."),
            text("Country", 2, "ISO 3166 two-letter country code, such as AU or GB."),
            text("TaxNumber", 30, "ABN, VAT number or other tax registration."),
            long_text("Notes", "Free-text notes."),
        ),
    ),
    Entity(
        "Client",
        "A billable party of the firm.",
        (
            ref("ContactId", "Contact", "The contact who is the client.", required=True),
            text("ClientCode", 30, "The firm's code for the client."),
            text("Name", 200, "The client's name as shown on invoices.", required=True),
            boolean("IsActive", "Whether the client is current.", required=True),
        ),
    ),
    Entity(
        "MatterType",
        "A kind of matter, such as Conveyancing or Family Law.",
        (
            text("Name", 100, "The matter type's name.", required=True),
            text("AreaOfLaw", 100, "The area of law."),
        ),
    ),
    Entity(
        "Matter",
        "A legal matter (case, file) run for a client.",
        (
            text("MatterNumber", 30, "The firm's matter number.", required=True),
            text("Description", 500, "What the matter is about.", required=True),
            ref("ClientId", "Client", "The client the matter is for.", required=True),
            ref("MatterTypeId", "MatterType", "The kind of matter."),
            ref("ResponsibleStaffId", "Staff", "The responsible partner or fee earner.", required=True),
            ref("ActingStaffId", "Staff", "The fee earner doing the work."),
            choice("Status", MATTER_STATUS, "Where the matter stands.", required=True),
            date("OpenedOn", "When the matter was opened.", required=True),
            date("ClosedOn", "When the matter was closed; on or after OpenedOn."),
            choice("BillingMethod", BILLING_METHOD, "How the matter is charged.", required=True),
            money("FixedFee", "The fixed fee, for BillingMethod FixedFee."),
            currency(),
        ),
    ),
    Entity(
        "MatterContact",
        "A contact's part in a matter other than as client: other side, referrer, agent, ….",
        (
            ref("MatterId", "Matter", "The matter.", required=True),
            ref("ContactId", "Contact", "The contact.", required=True),
            choice("Role", MATTER_CONTACT_ROLE, "The contact's role.", required=True),
        ),
    ),
    Entity(
        "Invoice",
        "An invoice issued on a matter.",
        (
            text("InvoiceNumber", 30, "The invoice number.", required=True),
            ref("MatterId", "Matter", "The matter invoiced.", required=True),
            ref("ClientId", "Client", "The client invoiced.", required=True),
            date("IssuedOn", "Issue date.", required=True),
            date("DueOn", "Due date; on or after IssuedOn."),
            choice("Status", INVOICE_STATUS, "Where the invoice stands.", required=True),
            money("FeesTotal", "Total of the fees (work items), before tax.", required=True),
            money("DisbursementsTotal", "Total of the disbursements, before tax.", required=True),
            money("TaxTotal", "Total tax.", required=True),
            money("Total", "FeesTotal + DisbursementsTotal + TaxTotal.", required=True),
            currency(),
        ),
    ),
    Entity(
        "WorkItem",
        "Time recorded or a fee charged on a matter.",
        (
            ref("MatterId", "Matter", "The matter worked on.", required=True),
            ref("StaffId", "Staff", "Who did the work.", required=True),
            date("WorkDate", "When the work was done.", required=True),
            long_text("Description", "The narrative shown on the invoice.", required=True),
            integer("Minutes", "Time spent, in minutes.", required=True),
            money("Rate", "Hourly rate.", required=True),
            money("Amount", "The amount charged, before tax: Minutes × Rate / 60.", required=True),
            ref("TaxCodeId", "TaxCode", "The tax code applied."),
            boolean("IsBillable", "Whether the work is chargeable.", required=True),
            choice("Status", BILLING_STATUS, "Unbilled, billed or written off.", required=True),
            ref("InvoiceId", "Invoice", "The invoice it was billed on (Status Billed)."),
        ),
    ),
    Entity(
        "Disbursement",
        "An expense incurred on a matter, recoverable from the client.",
        (
            ref("MatterId", "Matter", "The matter.", required=True),
            date("IncurredOn", "When it was incurred.", required=True),
            text("Description", 500, "What it was for.", required=True),
            money("Amount", "The amount, before tax.", required=True),
            ref("TaxCodeId", "TaxCode", "The tax code applied."),
            ref("SupplierContactId", "Contact", "The supplier paid."),
            ref("AccountId", "Account", "The ledger account charged."),
            choice("Status", BILLING_STATUS, "Unbilled, billed or written off.", required=True),
            ref("InvoiceId", "Invoice", "The invoice it was billed on (Status Billed)."),
        ),
    ),
    Entity(
        "Receipt",
        "Office money received, such as a client paying an invoice.",
        (
            ref("ContactId", "Contact", "Who paid.", required=True),
            date("ReceivedOn", "When the money was received.", required=True),
            money("Amount", "The amount received.", required=True),
            ref("AccountId", "Account", "The office bank account it was paid into.", required=True),
            choice("Method", RECEIPT_METHOD, "How it was paid.", required=True),
            text("Reference", 100, "Payment reference."),
        ),
    ),
    Entity(
        "ReceiptAllocation",
        "The part of a receipt applied to one invoice.",
        (
            ref("ReceiptId", "Receipt", "The receipt.", required=True),
            ref("InvoiceId", "Invoice", "The invoice paid.", required=True),
            money("Amount", "The amount applied to the invoice.", required=True),
        ),
    ),
    Entity(
        "TrustTransaction",
        "A movement on a matter's trust ledger.",
        (
            ref("MatterId", "Matter", "The matter whose trust ledger moves.", required=True),
            ref("AccountId", "Account", "The trust bank account.", required=True),
            date("TransactionDate", "The transaction date.", required=True),
            choice("Type", TRUST_TRANSACTION_TYPE, "Deposit, withdrawal, transfer, ….", required=True),
            money("Amount", "The amount, always positive: Type gives the direction.", required=True),
            ref("ContactId", "Contact", "Who paid in or was paid."),
            text("Reference", 100, "Cheque number, bank reference, receipt number."),
            text("Description", 500, "Narrative."),
            ref("InvoiceId", "Invoice", "The invoice paid (Type InvoicePayment)."),
        ),
    ),
    Entity(
        "JournalEntry",
        "A general-ledger entry, such as opening balances.",
        (
            date("EntryDate", "The entry's date.", required=True),
            ref("JournalId", "Journal", "The journal posted to.", required=True),
            text("Description", 500, "Narrative."),
            text("Reference", 100, "Reference."),
        ),
    ),
    Entity(
        "JournalEntryLine",
        "One debit or credit of a journal entry; an entry's debits and credits balance.",
        (
            ref("JournalEntryId", "JournalEntry", "The entry.", required=True),
            ref("AccountId", "Account", "The account posted to.", required=True),
            ref("MatterId", "Matter", "The matter, for postings that belong to one."),
            money("Debit", "Debit amount (0 when a credit).", required=True),
            money("Credit", "Credit amount (0 when a debit).", required=True),
            text("Description", 500, "Narrative."),
        ),
    ),
)

ENTITY_BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES}
ENTITY_BY_PREFIX: dict[str, Entity] = {e.prefix: e for e in ENTITIES}
ALL_TABLES: tuple[Entity, ...] = (SCHEMA_VERSION_ENTITY, *ENTITIES)

PLATFORM_ID_DIGITS = 32
_PLATFORM_REFERENCE = re.compile(r"^([a-z]+)_([0-9a-f]{32})$")


def parse_platform_reference(value: str) -> tuple[str, str] | None:
    """Split `matter_<32 hex>` into ("matter", "<32 hex>"); None if the value is not of that form."""
    match = _PLATFORM_REFERENCE.match(value)
    return (match.group(1), match.group(2)) if match else None


def platform_reference_glob(prefix: str) -> str:
    """A SQLite GLOB pattern matching exactly the platform references with this prefix."""
    return prefix + "_" + "[0-9a-f]" * PLATFORM_ID_DIGITS
