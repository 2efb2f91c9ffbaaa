"""A synthetic firm of any size, streamed into a SQLite source database (for benchmarks).

Unlike `efimis_etl.demo`, which builds a small, varied firm in memory, this writes N work items and
proportionate matters, clients and invoices in chunks, so a 5,000,000-row firm needs no more memory than
a small one. The data is valid: importing it yields no findings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import render_ddl

CHUNK = 20_000


def _insert(connection: sqlite3.Connection, table: str, rows: Iterator[tuple[Any, ...]]) -> int:
    columns = len(next(e for e in ENTITIES if e.name == table).all_columns)
    sql = f'INSERT INTO "{table}" VALUES ({", ".join("?" * columns)})'
    total = 0
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            connection.executemany(sql, chunk)
            total += len(chunk)
            chunk.clear()
    connection.executemany(sql, chunk)
    return total + len(chunk)


def write_synthetic_firm(path: Path, work_items: int) -> dict[str, int]:
    """Write a firm with `work_items` work items; return the row count of every table."""
    matters = max(work_items // 20, 1)
    clients = max(matters // 2, 1)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.executescript(render_ddl("sqlite"))
    counts: dict[str, int] = {}
    counts["Journal"] = _insert(
        connection, "Journal", iter([("J-GEN", "Office", 0, "AUD"), ("J-TRUST", "Trust", 1, "AUD")])
    )
    counts["TaxCode"] = _insert(connection, "TaxCode", iter([("TX-GST", "GST", "GST 10%", "10.0000", 1)]))
    counts["Account"] = _insert(
        connection,
        "Account",
        iter(
            [
                (
                    "ACC-1000",
                    "Office Bank",
                    None,
                    "J-GEN",
                    None,
                    1,
                    0,
                    "1000",
                    "Bank",
                    "062-000",
                    "1",
                    None,
                    "AUD",
                    "0",
                ),
                (
                    "ACC-T100",
                    "Trust Bank",
                    None,
                    "J-TRUST",
                    None,
                    2,
                    0,
                    "T100",
                    "Bank",
                    "062-000",
                    "2",
                    None,
                    "AUD",
                    "0",
                ),
            ]
        ),
    )
    counts["Staff"] = _insert(
        connection,
        "Staff",
        (
            (f"ST-{i:04d}", f"Fee Earner {i}", f"fe{i}@example.com", f"F{i}", "Lawyer", "300.0000", 1)
            for i in range(50)
        ),
    )
    counts["Contact"] = _insert(
        connection,
        "Contact",
        (
            (
                f"CON-{i:08d}",
                0,
                "Ms",
                "Given",
                f"Family {i}",
                None,
                f"c{i}@example.com",
                "+61 2 9000 0000",
                f"{i} George Street",
                None,
                "Sydney",
                "NSW",
                "2000",
                "AU",
                None,
                None,
            )
            for i in range(clients)
        ),
    )
    counts["Client"] = _insert(
        connection,
        "Client",
        ((f"CL-{i:08d}", f"CON-{i:08d}", f"C{i}", f"Client {i}", 1) for i in range(clients)),
    )
    counts["MatterType"] = _insert(connection, "MatterType", iter([("MT-1", "Litigation", "Litigation")]))
    counts["Matter"] = _insert(
        connection,
        "Matter",
        (
            (
                f"MAT-{m:08d}",
                f"M{m}",
                f"Matter {m}",
                f"CL-{m % clients:08d}",
                "MT-1",
                f"ST-{m % 50:04d}",
                None,
                0,
                "2022-07-01",
                None,
                0,
                None,
                "AUD",
            )
            for m in range(matters)
        ),
    )
    counts["MatterContact"] = counts["Invoice"] = 0
    counts["WorkItem"] = _insert(
        connection,
        "WorkItem",
        (
            (
                f"WI-{w:09d}",
                f"MAT-{w % matters:08d}",
                f"ST-{w % 50:04d}",
                "2023-03-01",
                "Drafting advice",
                30,
                "300.0000",
                "150.0000",
                "TX-GST",
                1,
                0,
                None,
            )
            for w in range(work_items)
        ),
    )
    trust = max(matters // 4, 1)
    counts["TrustTransaction"] = _insert(
        connection,
        "TrustTransaction",
        (
            (
                f"TT-{t:08d}",
                f"MAT-{t:08d}",
                "ACC-T100",
                "2023-01-01",
                0,
                "1000.0000",
                None,
                f"D{t}",
                "Deposit",
                None,
            )
            for t in range(trust)
        ),
    )
    for name in ("Disbursement", "Receipt", "ReceiptAllocation", "JournalEntry", "JournalEntryLine"):
        counts[name] = 0
    connection.commit()
    connection.close()
    return counts
