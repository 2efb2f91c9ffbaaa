"""The golden fixture: the edges of every type schema 1.0 uses, from SQL Server to production, value-equal.

A SQLite source built from the customer DDL (`render_ddl("sqlite")`) holds, in rows that together pass
every validation rule, the edge values of each type the schema uses:

* DECIMAL(19,4) money at ±999999999999999.9999, 0.0001, -0.0001, 1234.5678 and 0.0000; DECIMAL(9,4)
  rates at 0.0001 and 100.0000 (the rate-range rule's limit);
* DATE at 1900-01-01 and 2099-12-31 (the date-range rule's limits);
* NVARCHAR(MAX) (WorkItem.Description, Contact.Notes) over 8,000 characters with emoji, CJK and Cyrillic;
* NVARCHAR(n) at exactly n characters (n UTF-16 code units, as SQL Server counts them), including an
  ImportId of exactly 100 characters, one with an apostrophe and an emoji, and references to them;
* INT at 0 and 2147483647, BIT both ways, and NULL in every nullable column (one row or another).

The money limits do not fit the embedded SQLite stores: there each is reported as a `precision` finding
naming the store's limit, and the test also runs with ±9876543.2109 in their place. Dates outside the date-range rule
(0001-01-01, 9999-12-31) must arrive exactly too, and then be reported by that rule, not altered.

It is served by the test SQL Server (TDS, Microsoft's driver), imported through our service over HTTP,
promoted, and every value in staging and in production is compared with the source exactly: Decimal
equality for money (never a float anywhere), str equality for text, date equality for dates.

DATETIME2 and UNIQUEIDENTIFIER are not in schema 1.0. The TDS tests (test_tds_server.py) cover their wire
encoding and the driver's decoding, including its truncation of datetime2(7) to microseconds.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import tds_fixtures
from conftest import Service
from efimis_etl.schema.model import ENTITIES, ENTITY_BY_NAME, Column, Entity, Kind
from efimis_etl.schema.tables import STAGING, render_ddl
from tds_fixtures import StartServer

sql_server = tds_fixtures.sql_server

MAX = Decimal("999999999999999.9999")  # DECIMAL(19,4) at its limits
D = Decimal
FIRST, LAST = dt.date(1900, 1, 1), dt.date(2099, 12, 31)
LONG_TEXT = "Привет, 世界! 😀 Ünïcödé — " * 400  # 9,600 characters (10,000 UTF-16 code units)
LONG_NOTES = "Заметки 📎 附件 " * 700  # 9,100 characters, another text
_FILL = "Zoë佐藤Иванов·ÆØÅ—ß"  # Basic Multilingual Plane only: one UTF-16 code unit each


def exact(n: int, label: str = "") -> str:
    """Exactly n characters (n UTF-16 code units): the label, then filler."""
    return (label + "".join(islice(cycle(_FILL), n)))[:n]


def email(n: int) -> str:
    """A well-formed address of exactly n characters."""
    domain = "@example.test"
    return exact(n - len(domain), "é") + domain


J1 = exact(100, "J-")  # an ImportId, and so a reference, at its limit of 100 characters
W3 = "WI-O'Brien-😀"  # a quote (keyset pagination's literals) and an astral character in an ImportId
# One UTF-16 code unit short of the limit of 30 with the emoji (2 units), i.e. exactly 30 units.
NUMBER_WITH_EMOJI = exact(28, "M-") + "😀"

# Every row of the source, by table; columns not given are NULL. Rows ending in "-min" have every
# nullable column NULL, the others fill as many as their rules allow.
ROWS: dict[str, list[dict[str, Any]]] = {
    "Journal": [
        {"ImportId": J1, "Name": exact(100, "Office "), "Type": 0, "Currency": "AUD"},
        {"ImportId": "J-TRUST-min", "Name": "Trust ☂ 信託", "Type": 1},
    ],
    "TaxCode": [
        {"ImportId": "TX1", "Code": exact(20), "Name": exact(100), "Rate": D("100.0000"), "IsActive": True},
        {"ImportId": "TX2-min", "Code": "Z", "Name": "Zero-ish", "Rate": D("0.0001"), "IsActive": False},
    ],
    "Account": [
        {
            "ImportId": "A1",
            "Name": exact(150, "Name "),
            "Description": exact(500, "Description "),
            "JournalId": J1,
            "ParentAccountId": "A2-min",
            "Type": 1,
            "AccountCategory": 0,
            "AccountCode": exact(30),
            "BankName": exact(100),
            "BankBSB": exact(10),
            "BankAccountNumber": exact(30),
            "TaxCodeId": "TX1",
            "Currency": "AUD",
            "Balance": MAX,
        },
        {"ImportId": "A2-min", "Name": "Minimal", "JournalId": J1, "Type": 0, "AccountCategory": 0},
        {"ImportId": "A3", "Name": "Negative", "JournalId": J1, "Type": 0, "AccountCategory": 1, "Balance": -MAX},
        {"ImportId": "A4", "Name": "Trust bank", "JournalId": "J-TRUST-min", "Type": 2, "AccountCategory": 0,
         "Balance": D("0.0001")},
        {"ImportId": "A5", "Name": "Tiny", "JournalId": J1, "Type": 0, "AccountCategory": 4, "Balance": D("-0.0001")},
        {"ImportId": "A6", "Name": "Four places", "JournalId": J1, "Type": 0, "AccountCategory": 4,
         "Balance": D("1234.5678")},
    ],
    "Staff": [
        {
            "ImportId": "S1",
            "Name": exact(150),
            "Email": email(254),
            "Initials": exact(10),
            "Position": exact(100),
            "DefaultRate": MAX,
            "IsActive": True,
        },
        {"ImportId": "S2-min", "Name": "S", "IsActive": False},
        {"ImportId": "S3", "Name": "Зоя 😀", "DefaultRate": D("0.0001"), "IsActive": True},
    ],
    "Contact": [
        {
            "ImportId": "C1",
            "Type": 0,
            "Title": exact(20),
            "GivenName": exact(100, "Given "),
            "FamilyName": exact(100, "Family "),
            "OrganisationName": exact(200, "Organisation "),
            "Email": email(254),
            "Phone": exact(50),
            "AddressLine1": exact(200, "Line 1 "),
            "AddressLine2": exact(200, "Line 2 "),
            "City": exact(100),
            "State": exact(100),
            "PostCode": exact(20),
            "Country": "AU",
            "TaxNumber": exact(30),
            "Notes": LONG_NOTES,
        },
        # A person needs a FamilyName and an organisation an OrganisationName (rule contact-name): between
        # them, these two leave every nullable column NULL.
        {"ImportId": "C2-min", "Type": 1, "OrganisationName": "Org"},
        {"ImportId": "C3-min", "Type": 0, "FamilyName": "佐藤"},
    ],
    "Client": [
        {"ImportId": "CL1", "ContactId": "C1", "ClientCode": exact(30), "Name": exact(200), "IsActive": True},
        {"ImportId": "CL2-min", "ContactId": "C2-min", "Name": "Client two", "IsActive": False},
    ],
    "MatterType": [
        {"ImportId": "MT1", "Name": exact(100), "AreaOfLaw": exact(100, "Area ")},
        {"ImportId": "MT2-min", "Name": "Other"},
    ],
    "Matter": [
        {
            "ImportId": "M1",
            "MatterNumber": NUMBER_WITH_EMOJI,
            "Description": exact(500),
            "ClientId": "CL1",
            "MatterTypeId": "MT1",
            "ResponsibleStaffId": "S1",
            "ActingStaffId": "S3",
            "Status": 2,
            "OpenedOn": FIRST,
            "ClosedOn": LAST,
            "BillingMethod": 1,
            "FixedFee": MAX,
            "Currency": "AUD",
        },
        {
            "ImportId": "M2-min",
            "MatterNumber": exact(30),
            "Description": "Minimal",
            "ClientId": "CL2-min",
            "ResponsibleStaffId": "S2-min",
            "Status": 0,
            "OpenedOn": LAST,
            "BillingMethod": 0,
        },
    ],
    "MatterContact": [{"ImportId": "MC1", "MatterId": "M1", "ContactId": "C3-min", "Role": 5}],
    "Invoice": [
        {
            "ImportId": "I1",
            "InvoiceNumber": exact(30),
            "MatterId": "M1",
            "ClientId": "CL1",
            "IssuedOn": FIRST,
            "DueOn": LAST,
            "Status": 3,
            "FeesTotal": MAX,
            "DisbursementsTotal": D("0.0000"),
            "TaxTotal": D("0.0000"),
            "Total": MAX,
            "Currency": "AUD",
        },
        {
            "ImportId": "I2-min",
            "InvoiceNumber": "I2",
            "MatterId": "M2-min",
            "ClientId": "CL2-min",
            "IssuedOn": LAST,
            "Status": 1,
            "FeesTotal": D("1234.5678"),
            "DisbursementsTotal": D("0.0001"),
            "TaxTotal": D("123.4568"),
            "Total": D("1358.0247"),
        },
    ],
    "WorkItem": [
        {
            "ImportId": "W1",
            "MatterId": "M1",
            "StaffId": "S1",
            "WorkDate": FIRST,
            "Description": LONG_TEXT,
            "Minutes": 60,
            "Rate": MAX,
            "Amount": MAX,
            "TaxCodeId": "TX1",
            "IsBillable": True,
            "Status": 1,
            "InvoiceId": "I1",
        },
        {
            "ImportId": "W2-min",
            "MatterId": "M2-min",
            "StaffId": "S2-min",
            "WorkDate": LAST,
            "Description": "Ünïcödé 😀",
            "Minutes": 2147483647,
            "Rate": D("0.0000"),
            "Amount": D("0.0000"),
            "IsBillable": False,
            "Status": 0,
        },
        {
            "ImportId": W3,
            "MatterId": "M2-min",
            "StaffId": "S3",
            "WorkDate": dt.date(2000, 2, 29),
            "Description": "x" * 8001,
            "Minutes": 60,
            "Rate": D("1234.5678"),
            "Amount": D("1234.5678"),
            "IsBillable": True,
            "Status": 1,
            "InvoiceId": "I2-min",
        },
        {
            "ImportId": "W4",
            "MatterId": "M1",
            "StaffId": "S3",
            "WorkDate": FIRST,
            "Description": "Nothing charged",
            "Minutes": 0,
            "Rate": D("0.0001"),
            "Amount": D("0.0000"),
            "IsBillable": False,
            "Status": 2,
        },
    ],
    "Disbursement": [
        {
            "ImportId": "D1",
            "MatterId": "M2-min",
            "IncurredOn": FIRST,
            "Description": exact(500),
            "Amount": D("0.0001"),
            "TaxCodeId": "TX2-min",
            "SupplierContactId": "C2-min",
            "AccountId": "A6",
            "Status": 1,
            "InvoiceId": "I2-min",
        },
        {
            "ImportId": "D2-min",
            "MatterId": "M1",
            "IncurredOn": LAST,
            "Description": "Written off",
            "Amount": D("0.0000"),
            "Status": 2,
        },
    ],
    "Receipt": [
        {
            "ImportId": "R1",
            "ContactId": "C1",
            "ReceivedOn": FIRST,
            "Amount": MAX,
            "AccountId": "A1",
            "Method": 0,
            "Reference": exact(100),
        },
        {"ImportId": "R2-min", "ContactId": "C2-min", "ReceivedOn": LAST, "Amount": D("0.0001"),
         "AccountId": "A3", "Method": 4},
    ],
    "ReceiptAllocation": [
        {"ImportId": "RA1", "ReceiptId": "R1", "InvoiceId": "I1", "Amount": MAX},
        {"ImportId": "RA2", "ReceiptId": "R2-min", "InvoiceId": "I2-min", "Amount": D("0.0001")},
    ],
    "TrustTransaction": [
        {
            "ImportId": "T1",
            "MatterId": "M1",
            "AccountId": "A4",
            "TransactionDate": FIRST,
            "Type": 0,
            "Amount": MAX,
            "ContactId": "C1",
            "Reference": exact(100),
            "Description": exact(500),
        },
        {"ImportId": "T2-min", "MatterId": "M1", "AccountId": "A4", "TransactionDate": LAST, "Type": 1,
         "Amount": MAX},
        {"ImportId": "T3", "MatterId": "M2-min", "AccountId": "A4", "TransactionDate": dt.date(2000, 1, 1),
         "Type": 0, "Amount": D("1234.5678"), "ContactId": "C2-min"},
        {"ImportId": "T4", "MatterId": "M2-min", "AccountId": "A4", "TransactionDate": dt.date(2000, 1, 2),
         "Type": 4, "Amount": D("0.0001"), "InvoiceId": "I2-min"},
    ],
    "JournalEntry": [
        {"ImportId": "E1", "EntryDate": FIRST, "JournalId": J1, "Description": exact(500),
         "Reference": exact(100)},
        {"ImportId": "E2-min", "EntryDate": LAST, "JournalId": "J-TRUST-min"},
    ],
    "JournalEntryLine": [
        {"ImportId": "L1", "JournalEntryId": "E1", "AccountId": "A1", "MatterId": "M1", "Debit": MAX,
         "Credit": D("0.0000"), "Description": exact(500)},
        {"ImportId": "L2-min", "JournalEntryId": "E1", "AccountId": "A3", "Debit": D("0.0000"), "Credit": MAX},
        {"ImportId": "L3", "JournalEntryId": "E2-min", "AccountId": "A4", "MatterId": "M2-min",
         "Debit": D("1234.5678"), "Credit": D("0.0000")},
        {"ImportId": "L4", "JournalEntryId": "E2-min", "AccountId": "A6", "Debit": D("0.0000"),
         "Credit": D("1234.5678")},
    ],
}  # fmt: skip


def _stored(value: Any) -> Any:
    """How the source keeps a value: money as exact text, dates as ISO text, BIT as 0/1."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def write_source(path: Path, rows: dict[str, list[dict[str, Any]]]) -> Path:
    """The customer DDL on SQLite, with these rows. SQLite's NUMERIC affinity would keep only 15
    significant digits of a DECIMAL(19,4) text (999999999999999.9999 would become a float), so the
    decimal columns are created without affinity (BLOB), filled with exact text, and then declared
    DECIMAL(p, s) again by rewriting the schema (PRAGMA writable_schema)."""
    ddl = render_ddl("sqlite")
    declared = sorted(set(re.findall(r"DECIMAL\(\d+, \d+\)", ddl)))
    untyped = ddl
    for i, decimal_type in enumerate(declared):
        untyped = untyped.replace(decimal_type, f"BLOB_DECIMAL_{i}")
    with sqlite3.connect(path) as connection:
        connection.executescript(untyped)
        for table, table_rows in rows.items():
            entity = ENTITY_BY_NAME[table]
            names = [c.name for c in entity.all_columns]
            for row in table_rows:
                assert set(row) <= set(names), (table, set(row) - set(names))
                connection.execute(
                    f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})',
                    [_stored(row.get(n)) for n in names],
                )
        connection.execute("PRAGMA writable_schema = ON")
        for i, decimal_type in enumerate(declared):
            connection.execute(
                "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table'",
                (f"BLOB_DECIMAL_{i}", decimal_type),
            )
        connection.execute("PRAGMA writable_schema = OFF")
    with sqlite3.connect(path) as connection:  # a new connection reads the rewritten schema
        types = {r[1]: r[2] for r in connection.execute('PRAGMA table_info("Invoice")')}
        assert types["Total"] == "DECIMAL(19, 4)"
        total = next(r["Total"] for r in rows["Invoice"] if r["ImportId"] == "I1")
        query = 'SELECT typeof("Total"), "Total" FROM "Invoice" WHERE "ImportId" = ?'
        assert connection.execute(query, ("I1",)).fetchone() == ("text", str(total))  # exact, as text
    return path


def _check_fixture_covers_the_edges() -> None:
    """The fixture itself: every nullable column NULL somewhere, every text column at its limit somewhere."""
    for entity in ENTITIES:
        rows = ROWS[entity.name]
        for column in entity.all_columns:
            values = [row.get(column.name) for row in rows]
            if not column.required:
                assert None in values, f"{entity.name}.{column.name} is never NULL"
            if column.kind is Kind.TEXT and column.length and column.length > 3 and column.name != "ImportId":
                units = [len(v.encode("utf-16-le")) // 2 for v in values if isinstance(v, str)]
                assert column.length in units, f"{entity.name}.{column.name} never at {column.length}"
    assert len(J1) == 100 and ROWS["Account"][0]["JournalId"] == J1  # ImportId and reference at 100
    long_texts = [ROWS["WorkItem"][0]["Description"], ROWS["Contact"][0]["Notes"]]
    for text in long_texts:  # over 8,000 characters, with emoji, CJK and Cyrillic
        assert len(text) > 8000 and re.search("[\U0001f300-\U0001faff]", text)
        assert re.search("[\u4e00-\u9fff]", text) and re.search("[\u0400-\u04ff]", text)


_check_fixture_covers_the_edges()


ORDINARY = Decimal("9876543.2109")


def _ordinary(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The fixture with ±999999999999999.9999 replaced by ±9876543.2109 (still balanced, as before)."""

    def swap(value: Any) -> Any:
        if isinstance(value, Decimal) and abs(value) == MAX:
            return ORDINARY.copy_sign(value)
        return value

    return {
        table: [{k: swap(v) for k, v in row.items()} for row in table_rows]
        for table, table_rows in rows.items()
    }


# The embedded (SQLite) stores keep money as a 64-bit count of ten-thousandths, so DECIMAL(19,4)'s limits
# (999999999999999.9999 is 9999999999999999999 ten-thousandths > 2**63-1) do not fit: the reader reports
# each such value as a `precision` finding naming the store's limit (±922337203685477.5807) and the fix
# (the PostgreSQL stores), rather than altering it or failing. The PostgreSQL stores hold them exactly.


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "limits")


# --------------------------------------------------------------------------------------------------
# Expected values, and what staging and production hold


def _expected(entity: Entity, row: dict[str, Any], platform: dict[tuple[str, str], str] | None) -> tuple:
    """The row as the store must return it: with platform references (production) or ImportIds."""
    out: list[Any] = []
    for column in entity.columns:
        value = row.get(column.name)
        if column.kind is Kind.REFERENCE and value is not None and platform is not None:
            target = ENTITY_BY_NAME[column.target]  # type: ignore[index]
            value = f"{target.prefix}_{platform[(target.name, value)]}"
        out.append(value)
    return tuple(out)


def _staging_rows(service: Service, request_id: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) of every staging row, decoded by the store's own column types."""
    stores = service.app.state.service.stores
    with stores.staging_session(request_id) as connection:
        for entity in ENTITIES:
            for row in connection.execute(select(STAGING.tables[entity.name])):
                yield entity.name, tuple(row)


def _assert_exact(where: str, expected: tuple, found: tuple, columns: tuple[Column, ...]) -> None:
    for column, want, got in zip(columns, expected, found, strict=True):
        label = f"{where}.{column.name}"
        if column.kind in (Kind.MONEY, Kind.RATE):
            assert not isinstance(got, float), f"{label}: a float ({got!r}) in the money path"
            assert got is None or isinstance(got, Decimal), f"{label}: {type(got).__name__}"
            if want is not None:
                assert got == want and got.as_tuple().exponent == -4, f"{label}: {got!r} != {want!r}"
        elif column.kind in (Kind.TEXT, Kind.LONG_TEXT, Kind.REFERENCE):
            assert got == want and (got is None or type(got) is str), f"{label}: {got!r:.80} != {want!r:.80}"
        elif column.kind is Kind.BOOLEAN:
            assert got is None if want is None else (got is want or got == int(want)), f"{label}: {got!r}"
        else:
            assert got == want and type(got) is type(want), f"{label}: {got!r} != {want!r}"


# --------------------------------------------------------------------------------------------------
# The test


def _assert_limits_reported_by_the_embedded_store(
    service: Service, request_id: str, status: dict[str, Any], rows: dict[str, list[dict[str, Any]]]
) -> None:
    assert status["state"] == "ValidationFailed", status["failure"]
    findings = service.client.get(f"/etl/import/{request_id}/findings", params={"limit": 10_000}).json()[
        "items"
    ]
    at_limit = {
        (entity, row["ImportId"], name)
        for entity, entity_rows in rows.items()
        for row in entity_rows
        for name, value in row.items()
        if isinstance(value, Decimal) and abs(value) == MAX
    }
    precision = {(f["table"], f["importId"], f["column"]) for f in findings if f["rule"] == "precision"}
    assert precision == at_limit
    assert all(
        "922337203685477.5807" in f["message"] and "PostgreSQL" in f["message"]
        for f in findings
        if f["rule"] == "precision"
    )
    assert all(t["reconciliation"]["verified"] for t in status["tables"])


@pytest.mark.parametrize("limits", ["limits", "ordinary"], indirect=True)
def test_every_edge_value_arrives_exactly_in_staging_and_production(
    service: Service, tmp_path: Path, sql_server: StartServer, limits: bool
) -> None:
    rows = ROWS if limits else _ordinary(ROWS)
    server = sql_server(write_source(tmp_path / "golden.db", rows), tls=True)
    request_id = service.import_(server.ado_connection_string(encrypt=True, timeout=5))
    status = service.wait(request_id, timeout=120)
    if limits and not service.settings.staging_url:
        _assert_limits_reported_by_the_embedded_store(service, request_id, status, rows)
        return
    assert status["state"] == "Validated", status["failure"] or status["validation"]
    assert status["validation"]["errors"] == 0, status["validation"]
    tables = {t["table"]: t for t in status["tables"]}
    assert {name: t["rowsLoaded"] for name, t in tables.items()} == {name: len(r) for name, r in rows.items()}
    # Reconciliation: the SQL Server's own exact sums (decimal(38,4)) equal what was read and loaded.
    for entity in ENTITIES:
        figures = tables[entity.name]["reconciliation"]
        assert figures["verified"], (entity.name, figures)
        for column in (c for c in entity.columns if c.kind in (Kind.MONEY, Kind.RATE)):
            total = sum(
                (r[column.name] for r in rows[entity.name] if r.get(column.name) is not None), Decimal(0)
            )
            assert figures["source"]["sums"][column.name] == str(total.quantize(Decimal("0.0001")))
            assert figures["loaded"]["sums"][column.name] == figures["source"]["sums"][column.name]

    # Staging: every value as the source holds it, references still ImportIds.
    staged: dict[tuple[str, str], tuple[Any, ...]] = {}
    for table, row in _staging_rows(service, request_id):
        staged[(table, row[0])] = row
    assert len(staged) == sum(len(table_rows) for table_rows in rows.values())
    for entity in ENTITIES:
        for row in rows[entity.name]:
            found = staged[(entity.name, row["ImportId"])]
            expected = _expected(entity, row, None)
            _assert_exact(f"staging {entity.name}[{row['ImportId']}]", expected, found[1:], entity.columns)

    promoted = service.wait_promoted(request_id)
    assert promoted["state"] == "Promoted", promoted["failure"]

    # Production: ImportId, PlatformId, LastRequestId, then the columns; references are platform ids.
    production = service.production_rows()
    platform = {
        (table, row[0]): row[1] for table, promoted_rows in production.items() for row in promoted_rows
    }
    for entity in ENTITIES:
        by_id = {row[0]: row for row in production[entity.name]}
        assert set(by_id) == {row["ImportId"] for row in rows[entity.name]}, entity.name
        for row in rows[entity.name]:
            found = by_id[row["ImportId"]]
            assert found[2] == request_id
            expected = _expected(entity, row, platform)
            _assert_exact(f"production {entity.name}[{row['ImportId']}]", expected, found[3:], entity.columns)

    # The limits, spelled out once more.
    work = {row[0]: row for row in production["WorkItem"]}
    assert work["W1"][3 + 3] == LONG_TEXT and len(work["W1"][3 + 3]) == 9_600  # Description
    assert {row[0]: row[-1] for row in production["Account"]}["A3"] == (-MAX if limits else -ORDINARY)
    assert work[W3][0] == W3


def test_dates_outside_the_rule_arrive_exactly_and_are_reported_not_altered(
    service: Service, tmp_path: Path, sql_server: StartServer
) -> None:
    # Money away from its limits, so that this runs on the SQLite stores too.
    rows = _ordinary(ROWS)
    matter = next(r for r in rows["Matter"] if r["ImportId"] == "M1")
    matter["OpenedOn"], matter["ClosedOn"] = dt.date(1, 1, 1), dt.date(9999, 12, 31)
    source = write_source(tmp_path / "dates.db", rows)
    server = sql_server(source, tls=True)
    request_id = service.import_(server.ado_connection_string(encrypt=True, timeout=5))
    status = service.wait(request_id, timeout=120)
    assert status["state"] == "ValidationFailed", status["failure"]

    staged = {row[0]: row for table, row in _staging_rows(service, request_id) if table == "Matter"}
    names = [c.name for c in ENTITY_BY_NAME["Matter"].all_columns]
    opened, closed = staged["M1"][names.index("OpenedOn")], staged["M1"][names.index("ClosedOn")]
    assert (opened, closed) == (dt.date(1, 1, 1), dt.date(9999, 12, 31))

    findings = service.client.get(f"/etl/import/{request_id}/findings", params={"limit": 100}).json()["items"]
    reported = {(f["rule"], f["table"], f["importId"], f["column"], f["value"]) for f in findings}
    assert reported == {
        ("date-range", "Matter", "M1", "OpenedOn", "0001-01-01"),
        ("date-range", "Matter", "M1", "ClosedOn", "9999-12-31"),
    }
