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
    def __init__(self, scale: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.rows: dict[str, list[dict[str, Any]]] = {e.name: [] for e in ENTITIES}

    def add(self, table: str, **values: Any) -> dict[str, Any]:
        self.rows[table].append(values)
        return values

    def build(self) -> None:
        rng = self.rng
        self.add("Journal", ImportId="J-GEN", Name="Office", Type=0, Currency="AUD")
        self.add("Journal", ImportId="J-TRUST", Name="Trust Account", Type=1, Currency="AUD")
        self.add("Journal", ImportId="J-CMA", Name="Controlled Monies", Type=2, Currency=None)
        self.add(
            "TaxCode", ImportId="TX-GST", Code="GST", Name="GST 10%", Rate=Decimal("10.0000"), IsActive=1
        )
        self.add(
            "TaxCode", ImportId="TX-FRE", Code="FRE", Name="GST free", Rate=Decimal("0.0000"), IsActive=1
        )
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
        staff = []
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
        for i, (name, area) in enumerate(MATTER_KINDS):
            self.add("MatterType", ImportId=f"MT-{i + 1}", Name=name, AreaOfLaw=area)
        suppliers = [
            self.add("Contact", **self._contact(f"SUP-{i + 1}", organisation=name))
            for i, name in enumerate(SUPPLIERS)
        ]
        day0 = date(2021, 7, 1)
        matter_no = 0
        for c in range(12 * self.scale):
            is_org = c % 4 == 3
            contact = self.add(
                "Contact",
                **self._contact(
                    f"CON-{c + 1:05d}", organisation=ORGS[c % len(ORGS)] + f" {c + 1}" if is_org else None
                ),
            )
            name = contact["OrganisationName"] or f"{contact['GivenName']} {contact['FamilyName']}"
            client = self.add(
                "Client",
                ImportId=f"CL-{c + 1:05d}",
                ContactId=contact["ImportId"],
                ClientCode=f"C{c + 1:05d}",
                Name=name,
                IsActive=1,
            )
            for _ in range(rng.randint(1, 3)):
                matter_no += 1
                opened = day0 + timedelta(days=rng.randint(0, 900))
                self._matter(matter_no, client, opened, staff, suppliers)

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
        if n % 2 == 0:
            self.add(
                "MatterContact",
                ImportId=f"MC-{n:05d}",
                MatterId=mid,
                ContactId=rng.choice(suppliers)["ImportId"],
                Role=rng.randint(0, 5),
            )
        items = []
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
        disbursements = []
        for d in range(rng.randint(0, 3)):
            disbursements.append(
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
            )
        trust_balance = Decimal(0)
        if n % 3 == 0:
            trust_balance = _money(rng.choice([1000, 2500, 5000]))
            self.add(
                "TrustTransaction",
                ImportId=f"TT-{n:05d}-D",
                MatterId=mid,
                AccountId="ACC-T100",
                TransactionDate=opened.isoformat(),
                Type=0,
                Amount=trust_balance,
                ContactId=None,
                Reference=f"DEP{n:05d}",
                Description="Money on account",
                InvoiceId=None,
            )
        if n % 2 == 0 and len(items) > 1:
            billed = items[: len(items) // 2]
            issued = opened + timedelta(days=60)
            iid = f"INV-{n:05d}"
            fees = sum((i["Amount"] for i in billed), Decimal(0))
            disb = sum((d["Amount"] for d in disbursements), Decimal(0))
            tax = _money((fees + disb) / 10)
            total = fees + disb + tax
            paid = n % 4 == 0
            self.add(
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
                Total=total,
                Currency="AUD",
            )
            for item in billed:
                item.update(Status=1, InvoiceId=iid)
            for d in disbursements:
                d.update(Status=1, InvoiceId=iid)
            if paid and trust_balance >= total:
                self.add(
                    "TrustTransaction",
                    ImportId=f"TT-{n:05d}-P",
                    MatterId=mid,
                    AccountId="ACC-T100",
                    TransactionDate=(issued + timedelta(days=10)).isoformat(),
                    Type=4,
                    Amount=total,
                    ContactId=None,
                    Reference=f"PAY{n:05d}",
                    Description="Payment of invoice",
                    InvoiceId=iid,
                )
            elif paid:
                self.add(
                    "Receipt",
                    ImportId=f"RC-{n:05d}",
                    ContactId=client["ContactId"],
                    ReceivedOn=(issued + timedelta(days=14)).isoformat(),
                    Amount=total,
                    AccountId="ACC-1000",
                    Method=0,
                    Reference=f"EFT {iid}",
                )
                self.add(
                    "ReceiptAllocation",
                    ImportId=f"RA-{n:05d}",
                    ReceiptId=f"RC-{n:05d}",
                    InvoiceId=iid,
                    Amount=total,
                )
        if n == 1:
            self.add(
                "JournalEntry",
                ImportId="JE-OPEN",
                EntryDate="2021-06-30",
                JournalId="J-GEN",
                Description="Opening balances",
                Reference="OB",
            )
            self.add(
                "JournalEntryLine",
                ImportId="JE-OPEN-1",
                JournalEntryId="JE-OPEN",
                AccountId="ACC-1000",
                MatterId=None,
                Debit=Decimal("25000.0000"),
                Credit=Decimal("0.0000"),
                Description="Office bank",
            )
            self.add(
                "JournalEntryLine",
                ImportId="JE-OPEN-2",
                JournalEntryId="JE-OPEN",
                AccountId="ACC-3000",
                MatterId=None,
                Debit=Decimal("0.0000"),
                Credit=Decimal("25000.0000"),
                Description="Equity",
            )

    def plant_errors(self) -> list[Planted]:
        """Break chosen rows in known ways; each line below is one finding validation must report."""
        planted: list[Planted] = []

        def put(table: str, import_id: str, column: str, value: Any, rule: str) -> None:
            row = next(r for r in self.rows[table] if r["ImportId"] == import_id)
            row[column] = value
            planted.append(Planted(rule, table, import_id, column))

        matters = self.rows["Matter"]
        items = self.rows["WorkItem"]
        put("Matter", matters[0]["ImportId"], "Description", "   ", "required")
        put("Matter", matters[1]["ImportId"], "Status", 7, "enum")
        put("Matter", matters[2]["ImportId"], "ClosedOn", "2019-01-01", "date-order")
        put("WorkItem", items[0]["ImportId"], "WorkDate", "31/02/2024", "type")
        put("WorkItem", items[1]["ImportId"], "Minutes", "ninety", "type")
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
        invoice = self.rows["Invoice"][0]
        put("Invoice", invoice["ImportId"], "DueOn", "2000-01-01", "date-order")

        # Each of the rows below is chosen so that breaking it trips exactly one rule.
        taken = {(p.table, p.import_id) for p in planted}

        def pick(table: str, **where: Any) -> dict[str, Any]:
            row = next(
                r
                for r in self.rows[table]
                if (table, r["ImportId"]) not in taken and all(r.get(k) == v for k, v in where.items())
            )
            taken.add((table, row["ImportId"]))
            return row

        def note(rule: str, table: str, row: dict[str, Any], column: str | None) -> None:
            planted.append(Planted(rule, table, row["ImportId"], column))

        row = pick("Disbursement", Status=0)
        row["IncurredOn"] = "0001-01-01"
        note("date-range", "Disbursement", row, "IncurredOn")
        row = pick("Staff")
        row["Email"] = "partner at example.com"
        note("email-format", "Staff", row, "Email")
        row = pick("Matter")
        row["Currency"] = "aud"
        note("currency-code", "Matter", row, "Currency")
        row = pick("Contact", Type=0)
        row["Country"] = "au"
        note("country-code", "Contact", row, "Country")
        row = pick("Matter", BillingMethod=1)
        row["FixedFee"] = -row["FixedFee"]
        note("amount-sign", "Matter", row, "FixedFee")
        row = pick("TaxCode", ImportId="TX-FRE")
        row["Rate"] = Decimal("150.0000")
        note("rate-range", "TaxCode", row, "Rate")
        row = pick("WorkItem", Status=0)
        row["Amount"] += 50
        note("work-item-amount", "WorkItem", row, "Amount")
        row = pick("Contact", Type=0)
        row["FamilyName"] = None
        note("contact-name", "Contact", row, "FamilyName")
        row = pick("WorkItem", Status=0)
        row["Status"] = 1
        note("billing-status", "WorkItem", row, "InvoiceId")
        row = pick("WorkItem", Status=1)
        row["MatterId"] = next(m["ImportId"] for m in matters if m["ImportId"] != row["MatterId"])
        note("invoice-matter", "WorkItem", row, "InvoiceId")
        row = pick("JournalEntry", ImportId="JE-OPEN")
        next(line for line in self.rows["JournalEntryLine"] if line["ImportId"] == "JE-OPEN-2")["Credit"] -= (
            1000
        )
        note("journal-unbalanced", "JournalEntry", row, None)
        row = pick("Invoice", Status=1)
        row["Total"] += 1
        note("invoice-total", "Invoice", row, "Total")
        row = pick("Invoice", Status=1)
        row["FeesTotal"] += 10
        row["Total"] += 10
        note("invoice-items", "Invoice", row, "FeesTotal")
        row = pick("Receipt")
        row["Amount"] -= 5
        note("allocation-exceeds-receipt", "Receipt", row, "Amount")
        receipt = pick("Receipt")
        receipt["Amount"] += 100
        allocation = next(a for a in self.rows["ReceiptAllocation"] if a["ReceiptId"] == receipt["ImportId"])
        allocation["Amount"] += 100
        note("allocation-exceeds-invoice", "Invoice", {"ImportId": allocation["InvoiceId"]}, "Total")
        row = pick("TrustTransaction", Type=0)
        row["AccountId"] = "ACC-1000"
        note("trust-account", "TrustTransaction", row, "AccountId")
        overdrawn = self.add(
            "TrustTransaction",
            ImportId="TT-OVERDRAWN",
            MatterId=matters[0]["ImportId"],
            AccountId="ACC-T100",
            TransactionDate="2023-05-01",
            Type=1,
            Amount=Decimal("100.0000"),
            ContactId=None,
            Reference="CHQ 1001",
            Description="Payment to a third party without funds in trust",
            InvoiceId=None,
        )
        note("trust-overdrawn", "TrustTransaction", overdrawn, "Amount")
        return planted


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
