"""Sums of money are exact on every store, or reported: never an exception, never a wrong answer.

The embedded store keeps money as 64-bit integers of ten-thousandths, so one amount may be at most
±922,337,203,685,477.5807; the sums the accounting rules compare can be larger. Up to that limit they
must be exact on SQLite as on PostgreSQL; beyond it SQLite reports `sum-range` naming the limit, and
PostgreSQL (NUMERIC) still sums exactly. The firm is a PostgreSQL source: a SQLite file would round
19-digit decimals to floats before we ever read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import DemoSource, fresh_database
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.validation.run import FindingFilter, iter_findings
from support import copy_to_postgresql, stage_and_validate

LIMIT = "922337203685477.5807"
HALF, HALF_UP = "461168601842738.7903", "461168601842738.7904"  # together exactly the limit


def _stores(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> TenantStores:
    urls: dict[str, Any] = {}
    if kind == "postgresql":
        url = request.getfixturevalue("pg_url")
        urls = {"staging_url": url, "production_url": url}
    return make_stores(Settings(data_dir=tmp_path / "var", **urls))


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TenantStores]:
    stores = _stores(request.param, request, tmp_path)
    yield stores
    stores.dispose()


@pytest.fixture
def source(demo: DemoSource) -> Iterator[str]:
    """The demo firm as a PostgreSQL source (its URL)."""
    with fresh_database("efimis_sums") as url:
        copy_to_postgresql(demo.path, url)
        yield url


def _execute(source: str, statement: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(source) as connection, connection.cursor() as cursor:
        cursor.executemany(statement, rows)


def _journal(source: str, debits: list[str], credits: list[str]) -> None:
    """The demo firm's opening balances as these lines (amounts as decimal text)."""
    with psycopg.connect(source) as connection:
        connection.execute('DELETE FROM etl."JournalEntryLine"')
    _execute(
        source,
        'INSERT INTO etl."JournalEntryLine" ("ImportId", "JournalEntryId", "AccountId", "Debit", "Credit") '
        "VALUES (%s, 'JE-OPEN', 'ACC-1000', %s::numeric, %s::numeric)",
        [
            (f"JE-OPEN-{n}", d, c)
            for n, (d, c) in enumerate([*((d, "0") for d in debits), *(("0", c) for c in credits)])
        ],
    )


def _findings(stores: TenantStores, request_id: str, *rules: str) -> list[tuple[Any, ...]]:
    return [
        (f["rule"], f["table"], f["column"], f["message"])
        for f in iter_findings(stores, request_id, FindingFilter())
        if f["rule"] in rules
    ]


def test_sums_up_to_the_limit_are_exact(stores: TenantStores, source: str) -> None:
    _journal(source, [HALF, HALF_UP], [LIMIT])
    _, summary = stage_and_validate(stores, source)
    assert summary["errors"] == 0, summary["findings"]


def test_a_ten_thousandth_off_at_the_limit_is_found(stores: TenantStores, source: str) -> None:
    _journal(source, [HALF, HALF_UP], ["922337203685477.5806"])
    request_id, _ = stage_and_validate(stores, source)
    assert _findings(stores, request_id, "journal-unbalanced", "sum-range") == [
        (
            "journal-unbalanced",
            "JournalEntry",
            None,
            f"JournalEntry 'JE-OPEN': debits {LIMIT}, credits 922337203685477.5806. Correct the entry's "
            "lines so that total debits equal total credits.",
        )
    ]


def _beyond_the_limit(source: str) -> None:
    """Journal lines whose debits and credits each add up past the limit (and balance exactly), and a
    trust ledger that passes the limit and comes back."""
    _journal(source, ["600000000000000", "600000000000000.0001"], ["900000000000000", "300000000000000.0001"])
    _execute(
        source,
        'UPDATE etl."TrustTransaction" SET "Amount" = 600000000000000 WHERE "ImportId" = %s',
        [("TT-00003-D",)],
    )
    _execute(
        source,
        'INSERT INTO etl."TrustTransaction" ("ImportId", "MatterId", "AccountId", "TransactionDate", "Type", '
        '"Amount") SELECT %s, "MatterId", "AccountId", %s::date, %s, %s FROM etl."TrustTransaction" '
        "WHERE \"ImportId\" = 'TT-00003-D'",
        [("TT-BIG-2", "2021-12-02", 0, 600000000000000), ("TT-BIG-3", "2021-12-03", 1, 900000000000000)],
    )


RULES = ("journal-unbalanced", "trust-overdrawn", "sum-range", "precision")


def test_sums_beyond_the_limit_are_reported_on_sqlite(
    request: pytest.FixtureRequest, tmp_path: Path, source: str
) -> None:
    stores = _stores("sqlite", request, tmp_path)
    _beyond_the_limit(source)
    request_id, _ = stage_and_validate(stores, source)  # never an exception
    found = _findings(stores, request_id, *RULES)
    assert [(rule, table, column) for rule, table, column, _ in found] == [
        ("sum-range", "TrustTransaction", "Amount"),
        ("sum-range", "JournalEntryLine", "Debit"),
        ("sum-range", "JournalEntryLine", "Credit"),
    ]
    limit = f"the amounts add up to more than ±{LIMIT}, the most the embedded store sums exactly"
    assert all(limit in message and "PostgreSQL stores" in message for *_, message in found)


def test_sums_beyond_the_limit_are_exact_on_postgresql(
    request: pytest.FixtureRequest, tmp_path: Path, source: str
) -> None:
    stores = _stores("postgresql", request, tmp_path)
    _beyond_the_limit(source)
    request_id, _ = stage_and_validate(stores, source)
    assert _findings(stores, request_id, *RULES) == []  # balanced, never overdrawn, nothing out of range
    stores.dispose()
