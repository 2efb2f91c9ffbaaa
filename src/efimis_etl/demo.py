"""A realistic sample firm, written as a source database (SQLite) that follows the schema.

`write_demo_source(path, scale=1)` creates an Australian firm with clients, matters, time, disbursements,
invoices, receipts, a trust ledger and opening balances, all consistent. With `with_errors=True` it also
plants a known set of problems and returns them, one `Planted` per finding validation must report.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import render_ddl

CENT = Decimal("0.01")
# A firm's text that looks like HTML, planted as a bad value (a finding shows it): never to run as markup.
MARKUP = "<img src=x onerror=alert(1)>"

GIVEN = [
    "Olivia",
    "Jack",
    "Zoë",
    "Liam",
    "Ava",
    "Noah",
    "Mia",
    "William",
    "Chloé",
    "Dmitri",
    "Mei",
    "Aroha",
    "Søren",
]
FAMILY = [
    "Smith",
    "Nguyen",
    "O'Brien",
    "Williams",
    "Brown",
    "Kowalski",
    "Müller",
    "Papadopoulos",
    "Li",
    "Иванов",
    "佐藤",
]
ORGS = [
    "Harbour Bridge Holdings Pty Ltd",
    "Kookaburra Constructions",
    "Southern Cross Logistics",
    "Acme & Sons",
]
SUPPLIERS = ["Court Services Victoria", "InfoTrack", "Landata", "Express Couriers", "Barrister Chambers"]
NARRATIVES = [
    "Attendance on client by telephone",
    "Drafting letter to the other side",
    "Perusal of contract of sale; noting issues for advice",
    "Preparing affidavit material — first draft",
    "Conference with counsel re: strategy",
    "Reviewing disclosure documents",
]
MATTER_KINDS = [
    ("Conveyancing", "Property"),
    ("Family Law", "Family"),
    ("Commercial Litigation", "Litigation"),
    ("Wills & Estates", "Estates"),
    ("Employment", "Employment"),
    ("Criminal Defence", "Criminal"),
]


@dataclass(frozen=True)
class Planted:
    rule: str
    table: str
    import_id: str
    column: str | None


def _money(value: Decimal | int | float) -> Decimal:
    return Decimal(value).quantize(CENT)


class _Firm:
    """The sample firm's rows, table by table, generated from one seeded random sequence.

    The methods draw from `rng` in a fixed order: reordering the draws changes every row after them.
    """

    def __init__(self, scale: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.rows: dict[str, list[dict[str, Any]]] = {e.name: [] for e in ENTITIES}

    def add(self, table: str, **values: Any) -> dict[str, Any]:
        self.rows[table].append(values)
        return values

    def build(self) -> None:
        self._journals_and_tax_codes()
        self._accounts()
        self._opening_balances()
        staff = self._staff()
        for i, (name, area) in enumerate(MATTER_KINDS):
            self.add("MatterType", ImportId=f"MT-{i + 1}", Name=name, AreaOfLaw=area)
        suppliers = [
            self.add("Contact", **self._contact(f"SUP-{i + 1}", organisation=name))
            for i, name in enumerate(SUPPLIERS)
        ]
        self._clients(staff, suppliers)

    def _journals_and_tax_codes(self) -> None:
        self.add("Journal", ImportId="J-GEN", Name="Office", Type=0, Currency="AUD")
        self.add("Journal", ImportId="J-TRUST", Name="Trust Account", Type=1, Currency="AUD")
        self.add("Journal", ImportId="J-CMA", Name="Controlled Monies", Type=2, Currency=None)
        self.add(
            "TaxCode", ImportId="TX-GST", Code="GST", Name="GST 10%", Rate=Decimal("10.0000"), IsActive=1
        )
        self.add(
            "TaxCode", ImportId="TX-FRE", Code="FRE", Name="GST free", Rate=Decimal("0.0000"), IsActive=1
        )

    def _accounts(self) -> None:
        accounts = [
            ("ACC-1000", "Office Bank", "J-GEN", None, 1, 0, "1000", "Westpac", "032-000", "123456"),
            ("ACC-1100", "Accounts Receivable", "J-GEN", None, 0, 0, "1100", None, None, None),
            ("ACC-2000", "GST Collected", "J-GEN", None, 0, 1, "2000", None, None, None),
            ("ACC-3000", "Retained Earnings", "J-GEN", None, 0, 2, "3000", None, None, None),
            ("ACC-4000", "Professional Fees", "J-GEN", None, 0, 3, "4000", None, None, None),
            ("ACC-5000", "Operating Expenses", "J-GEN", None, 0, 4, "5000", None, None, None),
            ("ACC-5100", "Search Fees", "J-GEN", "ACC-5000", 0, 4, "5100", None, None, None),
            ("ACC-T100", "Trust Bank", "J-TRUST", None, 2, 0, "T100", "NAB", "083-004", "987654"),
            ("ACC-T200", "Trust Liability", "J-TRUST", None, 0, 1, "T200", None, None, None),
        ]
        for import_id, name, journal, parent, kind, category, code, bank, bsb, number in accounts:
            self.add(
                "Account",
                ImportId=import_id,
                Name=name,
                Description=None,
                JournalId=journal,
                ParentAccountId=parent,
                Type=kind,
                AccountCategory=category,
                AccountCode=code,
                BankName=bank,
                BankBSB=bsb,
                BankAccountNumber=number,
                TaxCodeId="TX-GST" if category == 3 else None,
                Currency="AUD",
                Balance=Decimal("0.0000"),
            )

    def _opening_balances(self) -> None:
        self.add(
            "JournalEntry",
            ImportId="JE-OPEN",
            EntryDate="2021-06-30",
            JournalId="J-GEN",
            Description="Opening balances",
            Reference="OB",
        )
        lines = [
            ("JE-OPEN-1", "ACC-1000", "25000.0000", "0.0000", "Office bank"),
            ("JE-OPEN-2", "ACC-3000", "0.0000", "25000.0000", "Equity"),
        ]
        for import_id, account, debit, credit, description in lines:
            self.add(
                "JournalEntryLine",
                ImportId=import_id,
                JournalEntryId="JE-OPEN",
                AccountId=account,
                MatterId=None,
                Debit=Decimal(debit),
                Credit=Decimal(credit),
                Description=description,
            )

    def _staff(self) -> list[dict[str, Any]]:
        rng = self.rng
        staff: list[dict[str, Any]] = []
        for i in range(4 + self.scale):
            given, family = GIVEN[i % len(GIVEN)], FAMILY[(i * 3) % len(FAMILY)]
            rate = Decimal(rng.choice([280, 350, 420, 550, 650]))
            staff.append(
                self.add(
                    "Staff",
                    ImportId=f"ST-{i + 1:03d}",
                    Name=f"{given} {family}",
                    Email=f"staff{i + 1}@example.com.au",
                    Initials=(given[0] + family[0]).upper(),
                    Position=rng.choice(["Partner", "Senior Associate", "Lawyer"]),
                    DefaultRate=rate,
                    IsActive=1 if i < 3 + self.scale else 0,
                )
            )
        return staff

    def _clients(self, staff: list[dict[str, Any]], suppliers: list[dict[str, Any]]) -> None:
        """Twelve clients per unit of scale, each with one to three matters."""
        day0 = date(2021, 7, 1)
        matter_no = 0
        for c in range(12 * self.scale):
            client = self._client(c)
            for _ in range(self.rng.randint(1, 3)):
                matter_no += 1
                opened = day0 + timedelta(days=self.rng.randint(0, 900))
                self._matter(matter_no, client, opened, staff, suppliers)

    def _client(self, c: int) -> dict[str, Any]:
        is_org = c % 4 == 3
        contact = self.add(
            "Contact",
            **self._contact(
                f"CON-{c + 1:05d}", organisation=ORGS[c % len(ORGS)] + f" {c + 1}" if is_org else None
            ),
        )
        name = contact["OrganisationName"] or f"{contact['GivenName']} {contact['FamilyName']}"
        return self.add(
            "Client",
            ImportId=f"CL-{c + 1:05d}",
            ContactId=contact["ImportId"],
            ClientCode=f"C{c + 1:05d}",
            Name=name,
            IsActive=1,
        )

    def _contact(self, import_id: str, *, organisation: str | None = None) -> dict[str, Any]:
        rng = self.rng
        person = organisation is None
        return {
            "ImportId": import_id,
            "Type": 0 if person else 1,
            "Title": rng.choice(["Ms", "Mr", "Dr", None]) if person else None,
            "GivenName": rng.choice(GIVEN) if person else None,
            "FamilyName": rng.choice(FAMILY) if person else None,
            "OrganisationName": organisation,
            "Email": f"{import_id.lower()}@example.net",
            "Phone": f"+61 3 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "AddressLine1": f"{rng.randint(1, 400)} Collins Street",
            "AddressLine2": None,
            "City": "Melbourne",
            "State": "VIC",
            "PostCode": "3000",
            "Country": "AU",
            "TaxNumber": f"{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
            if not person
            else None,
            "Notes": None,
        }

    def _matter(
        self,
        n: int,
        client: dict[str, Any],
        opened: date,
        staff: list[dict[str, Any]],
        suppliers: list[dict[str, Any]],
    ) -> None:
        """Matter number `n`: its work, disbursements, money in trust, and an invoice and its payment."""
        mid = self._matter_row(n, client, opened, staff)
        if n % 2 == 0:
            self.add(
                "MatterContact",
                ImportId=f"MC-{n:05d}",
                MatterId=mid,
                ContactId=self.rng.choice(suppliers)["ImportId"],
                Role=self.rng.randint(0, 5),
            )
        items = self._work_items(n, mid, opened, staff)
        disbursements = self._disbursements(n, mid, opened, suppliers)
        trust_balance = self._trust_deposit(n, mid, opened) if n % 3 == 0 else Decimal(0)
        if n % 2 == 0 and len(items) > 1:
            paid = n % 4 == 0
            invoice = self._invoice(n, mid, client, opened, items[: len(items) // 2], disbursements, paid)
            if paid and trust_balance >= invoice["Total"]:
                self._pay_from_trust(n, invoice)
            elif paid:
                self._receipt(n, client, invoice)

    def _matter_row(self, n: int, client: dict[str, Any], opened: date, staff: list[dict[str, Any]]) -> str:
        rng = self.rng
        mid = f"MAT-{n:05d}"
        closed = opened + timedelta(days=rng.randint(30, 400)) if n % 5 == 0 else None
        fixed = n % 7 == 0
        responsible = rng.choice(staff)
        self.add(
            "Matter",
            ImportId=mid,
            MatterNumber=f"{opened.year}/{n:05d}",
            Description=f"{client['Name']} — matter {n}",
            ClientId=client["ImportId"],
            MatterTypeId=f"MT-{n % len(MATTER_KINDS) + 1}",
            ResponsibleStaffId=responsible["ImportId"],
            ActingStaffId=rng.choice(staff)["ImportId"],
            Status=2 if closed else 0,
            OpenedOn=opened.isoformat(),
            ClosedOn=closed.isoformat() if closed else None,
            BillingMethod=1 if fixed else 0,
            FixedFee=Decimal("2200.0000") if fixed else None,
            Currency="AUD",
        )
        return mid

    def _work_items(
        self, n: int, mid: str, opened: date, staff: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rng = self.rng
        items: list[dict[str, Any]] = []
        for w in range(rng.randint(4, 12)):
            who = rng.choice(staff)
            minutes = 6 * rng.randint(1, 40)
            rate = who["DefaultRate"]
            items.append(
                self.add(
                    "WorkItem",
                    ImportId=f"WI-{n:05d}-{w:03d}",
                    MatterId=mid,
                    StaffId=who["ImportId"],
                    WorkDate=(opened + timedelta(days=w * 3)).isoformat(),
                    Description=rng.choice(NARRATIVES),
                    Minutes=minutes,
                    Rate=rate,
                    Amount=_money(rate * minutes / 60),
                    TaxCodeId="TX-GST",
                    IsBillable=1,
                    Status=0,
                    InvoiceId=None,
                )
            )
        return items

    def _disbursements(
        self, n: int, mid: str, opened: date, suppliers: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rng = self.rng
        return [
            self.add(
                "Disbursement",
                ImportId=f"DB-{n:05d}-{d}",
                MatterId=mid,
                IncurredOn=(opened + timedelta(days=d * 5 + 1)).isoformat(),
                Description="Search fee",
                Amount=_money(rng.randint(1500, 45000) / 100),
                TaxCodeId="TX-GST",
                SupplierContactId=rng.choice(suppliers)["ImportId"],
                AccountId="ACC-5100",
                Status=0,
                InvoiceId=None,
            )
            for d in range(rng.randint(0, 3))
        ]

    def _trust_deposit(self, n: int, mid: str, opened: date) -> Decimal:
        """Money on account, into trust the day the matter opens; returns the amount."""
        deposit = _money(self.rng.choice([1000, 2500, 5000]))
        self.add(
            "TrustTransaction",
            ImportId=f"TT-{n:05d}-D",
            MatterId=mid,
            AccountId="ACC-T100",
            TransactionDate=opened.isoformat(),
            Type=0,
            Amount=deposit,
            ContactId=None,
            Reference=f"DEP{n:05d}",
            Description="Money on account",
            InvoiceId=None,
        )
        return deposit

    def _invoice(
        self,
        n: int,
        mid: str,
        client: dict[str, Any],
        opened: date,
        billed: list[dict[str, Any]],
        disbursements: list[dict[str, Any]],
        paid: bool,
    ) -> dict[str, Any]:
        """An invoice for the `billed` work and every disbursement, which it marks billed."""
        issued = opened + timedelta(days=60)
        iid = f"INV-{n:05d}"
        fees = sum((i["Amount"] for i in billed), Decimal(0))
        disb = sum((d["Amount"] for d in disbursements), Decimal(0))
        tax = _money((fees + disb) / 10)
        invoice = self.add(
            "Invoice",
            ImportId=iid,
            InvoiceNumber=f"INV{n:06d}",
            MatterId=mid,
            ClientId=client["ImportId"],
            IssuedOn=issued.isoformat(),
            DueOn=(issued + timedelta(days=30)).isoformat(),
            Status=3 if paid else 1,
            FeesTotal=fees,
            DisbursementsTotal=disb,
            TaxTotal=tax,
            Total=fees + disb + tax,
            Currency="AUD",
        )
        for item in billed:
            item.update(Status=1, InvoiceId=iid)
        for d in disbursements:
            d.update(Status=1, InvoiceId=iid)
        return invoice

    def _pay_from_trust(self, n: int, invoice: dict[str, Any]) -> None:
        self.add(
            "TrustTransaction",
            ImportId=f"TT-{n:05d}-P",
            MatterId=invoice["MatterId"],
            AccountId="ACC-T100",
            TransactionDate=(date.fromisoformat(invoice["IssuedOn"]) + timedelta(days=10)).isoformat(),
            Type=4,
            Amount=invoice["Total"],
            ContactId=None,
            Reference=f"PAY{n:05d}",
            Description="Payment of invoice",
            InvoiceId=invoice["ImportId"],
        )

    def _receipt(self, n: int, client: dict[str, Any], invoice: dict[str, Any]) -> None:
        """The client pays the invoice by transfer into the office account."""
        iid = invoice["ImportId"]
        self.add(
            "Receipt",
            ImportId=f"RC-{n:05d}",
            ContactId=client["ContactId"],
            ReceivedOn=(date.fromisoformat(invoice["IssuedOn"]) + timedelta(days=14)).isoformat(),
            Amount=invoice["Total"],
            AccountId="ACC-1000",
            Method=0,
            Reference=f"EFT {iid}",
        )
        self.add(
            "ReceiptAllocation",
            ImportId=f"RA-{n:05d}",
            ReceiptId=f"RC-{n:05d}",
            InvoiceId=iid,
            Amount=invoice["Total"],
        )

    def plant_errors(self) -> list[Planted]:
        """Break chosen rows in known ways; each break is one finding validation must report."""
        return _Sabotage(self).plant()


class _Sabotage:
    """Breaks a firm's rows, noting each break as the finding (rule, table, ImportId, column) it causes."""

    def __init__(self, firm: _Firm) -> None:
        self.firm = firm
        self.rows = firm.rows
        self.planted: list[Planted] = []
        # Rows already broken: each later break picks a row of its own so that it trips exactly one rule.
        self.taken: set[tuple[str, str]] = set()

    def plant(self) -> list[Planted]:
        self._overwrite_early_rows()
        self._field_rules()
        self._row_rules()
        self._cross_table_rules()
        self._accounting_rules()
        return self.planted

    def put(self, table: str, import_id: str, column: str, value: Any, rule: str) -> None:
        row = next(r for r in self.rows[table] if r["ImportId"] == import_id)
        row[column] = value
        self.taken.add((table, import_id))
        self.planted.append(Planted(rule, table, import_id, column))

    def pick(self, table: str, **where: Any) -> dict[str, Any]:
        row = next(
            r
            for r in self.rows[table]
            if (table, r["ImportId"]) not in self.taken and all(r.get(k) == v for k, v in where.items())
        )
        self.taken.add((table, row["ImportId"]))
        return row

    def note(self, rule: str, table: str, row: dict[str, Any], column: str | None) -> None:
        self.planted.append(Planted(rule, table, row["ImportId"], column))

    def _overwrite_early_rows(self) -> None:
        """One bad value in each of the first rows of Matter, WorkItem, Contact, Staff and Invoice."""
        put = self.put
        matters = self.rows["Matter"]
        items = self.rows["WorkItem"]
        put("Matter", matters[0]["ImportId"], "Description", "   ", "required")
        put("Matter", matters[1]["ImportId"], "Status", 7, "enum")
        put("Matter", matters[2]["ImportId"], "ClosedOn", "2019-01-01", "date-order")
        put("WorkItem", items[0]["ImportId"], "WorkDate", "31/02/2024", "type")
        # Markup as a value: a page that shows findings must show it as text (the console's browser test).
        put("WorkItem", items[1]["ImportId"], "Minutes", MARKUP, "type")
        put("WorkItem", items[2]["ImportId"], "Rate", "450.12345", "precision")
        put("WorkItem", items[3]["ImportId"], "MatterId", "MAT-DOES-NOT-EXIST", "reference-unresolved")
        put("WorkItem", items[4]["ImportId"], "StaffId", "matter_" + "ab" * 16, "reference-wrong-entity")
        put(
            "WorkItem",
            items[5]["ImportId"],
            "MatterId",
            "matter_" + "0" * 32,
            "reference-missing-in-production",
        )
        put("Contact", self.rows["Contact"][0]["ImportId"], "Country", "Australia", "max-length")
        put("Staff", self.rows["Staff"][0]["ImportId"], "IsActive", 2, "type")
        put("Invoice", self.rows["Invoice"][0]["ImportId"], "DueOn", "2000-01-01", "date-order")

    def _field_rules(self) -> None:
        row = self.pick("Disbursement", Status=0)
        row["IncurredOn"] = "0001-01-01"
        self.note("date-range", "Disbursement", row, "IncurredOn")
        row = self.pick("Staff")
        row["Email"] = "partner at example.com"
        self.note("email-format", "Staff", row, "Email")
        row = self.pick("Matter")
        row["Currency"] = "aud"
        self.note("currency-code", "Matter", row, "Currency")
        row = self.pick("Contact", Type=0)
        row["Country"] = "au"
        self.note("country-code", "Contact", row, "Country")
        row = self.pick("Matter", BillingMethod=1)
        row["FixedFee"] = -row["FixedFee"]
        self.note("amount-sign", "Matter", row, "FixedFee")
        row = self.pick("TaxCode", ImportId="TX-FRE")
        row["Rate"] = Decimal("150.0000")
        self.note("rate-range", "TaxCode", row, "Rate")

    def _row_rules(self) -> None:
        row = self.pick("WorkItem", Status=0)
        row["Amount"] += 50
        self.note("work-item-amount", "WorkItem", row, "Amount")
        row = self.pick("Contact", Type=0)
        row["FamilyName"] = None
        self.note("contact-name", "Contact", row, "FamilyName")
        row = self.pick("WorkItem", Status=0)
        row["Status"] = 1
        self.note("billing-status", "WorkItem", row, "InvoiceId")

    def _cross_table_rules(self) -> None:
        row = self.pick("WorkItem", Status=1)
        row["MatterId"] = next(m["ImportId"] for m in self.rows["Matter"] if m["ImportId"] != row["MatterId"])
        self.note("invoice-matter", "WorkItem", row, "InvoiceId")

    def _accounting_rules(self) -> None:
        row = self.pick("JournalEntry", ImportId="JE-OPEN")
        next(line for line in self.rows["JournalEntryLine"] if line["ImportId"] == "JE-OPEN-2")["Credit"] -= (
            1000
        )
        self.note("journal-unbalanced", "JournalEntry", row, None)
        row = self.pick("Invoice", Status=1)
        row["Total"] += 1
        self.note("invoice-total", "Invoice", row, "Total")
        row = self.pick("Invoice", Status=1)
        row["FeesTotal"] += 10
        row["Total"] += 10
        self.note("invoice-items", "Invoice", row, "FeesTotal")
        row = self.pick("Receipt")
        row["Amount"] -= 5
        self.note("allocation-exceeds-receipt", "Receipt", row, "Amount")
        receipt = self.pick("Receipt")
        receipt["Amount"] += 100
        allocation = next(a for a in self.rows["ReceiptAllocation"] if a["ReceiptId"] == receipt["ImportId"])
        allocation["Amount"] += 100
        self.note("allocation-exceeds-invoice", "Invoice", {"ImportId": allocation["InvoiceId"]}, "Total")
        self._trust_rules()

    def _trust_rules(self) -> None:
        row = self.pick("TrustTransaction", Type=0)
        row["AccountId"] = "ACC-1000"
        self.note("trust-account", "TrustTransaction", row, "AccountId")
        overdrawn = self.firm.add(
            "TrustTransaction",
            ImportId="TT-OVERDRAWN",
            MatterId=self.rows["Matter"][0]["ImportId"],
            AccountId="ACC-T100",
            TransactionDate="2023-05-01",
            Type=1,
            Amount=Decimal("100.0000"),
            ContactId=None,
            Reference="CHQ 1001",
            Description="Payment to a third party without funds in trust",
            InvoiceId=None,
        )
        self.note("trust-overdrawn", "TrustTransaction", overdrawn, "Amount")


def write_demo_source(
    path: Path, *, scale: int = 1, with_errors: bool = False, seed: int = 2026
) -> list[Planted]:
    """Write the sample firm to a new SQLite file at `path`; return the planted problems (if any)."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    if path.exists():
        raise FileExistsError(f"{path} already exists; choose a new path or delete it first")
    firm = _Firm(scale, seed)
    firm.build()
    planted = firm.plant_errors() if with_errors else []
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.executescript(render_ddl("sqlite"))
        for entity in ENTITIES:
            columns = [c.name for c in entity.all_columns]
            rows = [[_sqlite_value(r.get(c)) for c in columns] for r in firm.rows[entity.name]]
            connection.executemany(
                f'INSERT INTO "{entity.name}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})',
                rows,
            )
        connection.commit()
    except BaseException:
        connection.close()
        path.unlink(missing_ok=True)
        raise
    connection.close()
    return planted


def _sqlite_value(value: Any) -> Any:
    # sqlite3 has no Decimal adapter; as text it keeps every digit until SQLite's NUMERIC affinity applies.
    return str(value) if isinstance(value, Decimal) else value


def row_counts(firm_path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{firm_path}?mode=ro", uri=True) as connection:
        return {
            e.name: connection.execute(f'SELECT count(*) FROM "{e.name}"').fetchone()[0] for e in ENTITIES
        }
