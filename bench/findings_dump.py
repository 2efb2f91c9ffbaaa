"""Dump every finding of a set of scenarios, on every backend, and print their md5s: a change to how the
rules run must leave these unchanged (same rules, order, messages and values).

    .venv/bin/python bench/findings_dump.py OUT_DIR [--only SCENARIO ...] [--backends sqlite pg pg2]

Scenarios: the demo firm with its planted errors (at two scales), the clean demo, the demo mutated at
random (a seeded corruption of many values of every kind, for broad coverage), the tests' planted cases
(references into production, exact sums at SQLite's limit, the golden fixture, shared ImportIds, schema
variants). Backends: the embedded SQLite stores; PostgreSQL with staging and production in one database;
PostgreSQL with them in two databases (production copied into temporary tables for validation).
Each finding is written as it is read (`iter_findings`, in Id order), every column, one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from efimis_etl.demo import write_demo_source
from efimis_etl.promotion.promote import promote
from efimis_etl.schema.model import ENTITIES, Kind
from efimis_etl.schema.tables import PRODUCTION, render_ddl
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.stores.base import FINDING
from efimis_etl.validation.run import FindingFilter, iter_findings, validate
from support import copy_to_postgresql, stage

PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"


@contextmanager
def database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://root@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------------------ scenarios
# Each gets a scratch directory and the stores, and returns the request ids to dump (in order).

Scenario = Callable[[Path, TenantStores], list[str]]


def _validated(stores: TenantStores, url: str, tenant: str = "default") -> str:
    request_id = stage(stores, url)
    validate(stores, request_id, tenant, first=10)
    return request_id


def demo_errors(root: Path, stores: TenantStores) -> list[str]:
    write_demo_source(root / "firm.db", with_errors=True)
    return [_validated(stores, f"sqlite:///{root / 'firm.db'}")]


def demo_errors_scale3(root: Path, stores: TenantStores) -> list[str]:
    write_demo_source(root / "firm.db", scale=3, with_errors=True, seed=7)
    return [_validated(stores, f"sqlite:///{root / 'firm.db'}")]


def demo_clean(root: Path, stores: TenantStores) -> list[str]:
    write_demo_source(root / "firm.db", scale=2)
    return [_validated(stores, f"sqlite:///{root / 'firm.db'}")]


def _mutate(path: Path, seed: int) -> None:
    """Corrupt about one value in twelve of the source, of every column, in ways each rule looks for."""
    rng = random.Random(seed)
    texts = [
        "",
        "   ",
        None,
        "x" * 260,
        "not an email",
        "a@b.c",
        "A@B@C.D",
        "aud",
        "AUD",
        "GB",
        "gbr",
        "matter_" + "0" * 32,
        "invoice_" + "f" * 32,
        "staff_" + "a" * 32,
        "NOPE-1",
        "Ünïcödé ✓",
        "0",
    ]
    numbers = [None, -1, 0, 1, -0.0001, 99999, 7, 3, 150, -150, 2, "abc", 1.5]
    dates = [
        None,
        "1899-12-31",
        "2100-01-01",
        "1900-01-01",
        "2099-12-31",
        "2020-02-29",
        "2024-06-01",
        "31/12/2024",
        5,
    ]
    with sqlite3.connect(path) as connection:
        for entity in ENTITIES:
            ids = [r[0] for r in connection.execute(f'SELECT ImportId FROM "{entity.name}"')]
            others = {
                e.name: [r[0] for r in connection.execute(f'SELECT ImportId FROM "{e.name}"')][:50]
                for e in ENTITIES
            }
            for import_id in ids:
                for column in entity.all_columns:
                    if column.name == "ImportId" or rng.random() > 1 / 12:
                        continue
                    if column.kind is Kind.REFERENCE and rng.random() < 0.5 and column.target:
                        pool = others[column.target] + others[rng.choice(ENTITIES).name]
                        value: Any = rng.choice(pool) if pool else None
                    elif column.kind in (Kind.TEXT, Kind.LONG_TEXT, Kind.REFERENCE):
                        value = rng.choice(texts)
                    elif column.kind is Kind.DATE:
                        value = rng.choice(dates)
                    elif column.kind in (Kind.MONEY, Kind.RATE):
                        value = rng.choice(
                            [
                                "-12.3400",
                                "0",
                                "150.0000",
                                "100.0001",
                                "1.2345",
                                None,
                                "33.3333",
                                "1.23456",
                                "x",
                            ]
                        )
                    else:
                        value = rng.choice(numbers)
                    # NULL in a NOT NULL column of the source: skipped.
                    with contextlib.suppress(sqlite3.IntegrityError):
                        connection.execute(
                            f'UPDATE "{entity.name}" SET "{column.name}" = ? WHERE ImportId = ?',
                            (value, import_id),
                        )


def demo_mutated(root: Path, stores: TenantStores) -> list[str]:
    write_demo_source(root / "firm.db", scale=2, with_errors=True, seed=11)
    _mutate(root / "firm.db", seed=3)
    return [_validated(stores, f"sqlite:///{root / 'firm.db'}")]


def references_into_production(root: Path, stores: TenantStores) -> list[str]:
    """test_cross_table_rules_follow_references_into_production, plus references of every shape."""
    write_demo_source(root / "firm.db")
    first = _validated(stores, f"sqlite:///{root / 'firm.db'}", "acme")
    promote(stores, first, "acme")
    with stores.production_snapshot("acme") as production:
        assert production is not None
        refs = {
            (entity.name, import_id): f"{entity.prefix}_{platform_id}"
            for entity in ENTITIES
            for import_id, platform_id in production.execute(
                select(PRODUCTION.tables[entity.name].c["ImportId", "PlatformId"])
            )
        }
    with sqlite3.connect(root / "firm.db") as source:
        invoice, invoice_matter = source.execute("SELECT ImportId, MatterId FROM Invoice LIMIT 1").fetchone()
        other = source.execute(
            "SELECT ImportId FROM Matter WHERE ImportId <> ?", (invoice_matter,)
        ).fetchone()[0]
    later = root / "later.db"
    with sqlite3.connect(later) as connection:
        connection.executescript(render_ddl("sqlite"))
        work_item = "INSERT INTO WorkItem VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        connection.execute(
            work_item,
            (
                "WI-L1",
                refs[("Matter", other)],
                refs[("Staff", "ST-001")],
                "2024-01-02",
                "Call",
                6,
                "300.0000",
                "30.0000",
                None,
                1,
                1,
                refs[("Invoice", invoice)],
            ),
        )
        connection.execute(  # by ImportId of promoted objects
            work_item,
            ("WI-L2", other, "ST-001", "2024-01-02", "Call", 6, "300.0000", "30.0000", None, 1, 1, invoice),
        )
        connection.execute(  # a platform reference that does not exist, and one of the wrong kind
            work_item,
            (
                "WI-L3",
                "matter_" + "0" * 32,
                refs[("Matter", other)],
                "2024-01-02",
                "Call",
                6,
                "300.0000",
                "30.0000",
                None,
                1,
                1,
                "NOPE",
            ),
        )
        connection.execute(
            "INSERT INTO TrustTransaction VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "TT-L1",
                refs[("Matter", other)],
                refs[("Account", "ACC-1000")],
                "2024-01-02",
                0,
                "500.0000",
                None,
                "DEP",
                "Deposit",
                None,
            ),
        )
        connection.execute(
            "INSERT INTO TrustTransaction VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("TT-L2", other, "ACC-1000", "2024-01-03", 0, "500.0000", None, "DEP", "Deposit", None),
        )
    return [first, _validated(stores, f"sqlite:///{later}", "acme")]


def exact_sums(root: Path, stores: TenantStores) -> list[str]:
    """test_exact_sums' journals: at the limit, a ten-thousandth off it, and beyond it."""
    limit, half, half_up = "922337203685477.5807", "461168601842738.7903", "461168601842738.7904"
    write_demo_source(root / "firm.db")
    done = []
    for debits, credits in (
        ([half, half_up], [limit]),
        ([half, half_up], [half, half]),
        ([limit, limit, "1"], [limit, limit, "1"]),
        ([limit, "0.0001"], [limit]),
    ):
        with database("efimis_dump_src") as url:
            copy_to_postgresql(root / "firm.db", url)
            with psycopg.connect(url) as connection:
                connection.execute('DELETE FROM etl."JournalEntryLine"')
                connection.cursor().executemany(
                    'INSERT INTO etl."JournalEntryLine" ("ImportId", "JournalEntryId", "AccountId", "Debit", '
                    "\"Credit\") VALUES (%s, 'JE-OPEN', 'ACC-1000', %s::numeric, %s::numeric)",
                    [
                        (f"JE-OPEN-{n}", d, c)
                        for n, (d, c) in enumerate(
                            [*((d, "0") for d in debits), *(("0", c) for c in credits)]
                        )
                    ],
                )
            done.append(_validated(stores, url))
    return done


def golden(root: Path, stores: TenantStores) -> list[str]:
    import test_golden

    done = []
    for name, rows in (("limits", test_golden.ROWS), ("ordinary", test_golden._ordinary(test_golden.ROWS))):
        path = test_golden.write_source(root / f"golden-{name}.db", rows)
        done.append(_validated(stores, f"sqlite:///{path}"))
    return done


def shared_ids_and_variants(root: Path, stores: TenantStores) -> list[str]:
    ddl = render_ddl("sqlite")
    shared = root / "shared.db"
    with sqlite3.connect(shared) as connection:
        connection.executescript(
            re.sub(r',\s*PRIMARY KEY \("ImportId"\)', "", ddl).replace(
                '"ImportId" VARCHAR(100) NOT NULL', '"ImportId" VARCHAR(100)'
            )
        )
        connection.executemany(
            'INSERT INTO "Staff" (ImportId, Initials, Name, DefaultRate, IsActive) VALUES (?, ?, ?, ?, ?)',
            [
                ("ST-1", "AB", "A B", "100", 1),
                ("ST-1", "AC", "A C", "100", 1),
                ("ST-1", "AD", "A D", "-1", 1),
                ("ST-2", "AE", "A E", "100", 1),
                ("ST-2", "AF", "A F", "100", 1),
                (None, "AG", "A G", "1", 1),
            ],
        )
    variants = root / "variants.db"
    ddl = ddl.replace('"City" VARCHAR(100)', '"City" VARCHAR(300)').replace(
        '"Minutes" INTEGER', '"Minutes" BIGINT'
    )
    ddl = ddl.replace(
        '"MatterNumber" VARCHAR(30) NOT NULL,', '"MatterNumber" VARCHAR(30) NOT NULL, "LegacyCode" TEXT,'
    )
    with sqlite3.connect(variants) as connection:
        connection.executescript(ddl)
        connection.execute(
            "INSERT INTO Contact (ImportId, Type, FamilyName, City) VALUES ('C1', 0, 'Long', ?)", ("x" * 150,)
        )
    return [_validated(stores, f"sqlite:///{shared}"), _validated(stores, f"sqlite:///{variants}")]


SCENARIOS: dict[str, Scenario] = {
    "demo-errors": demo_errors,
    "demo-errors-scale3": demo_errors_scale3,
    "demo-clean": demo_clean,
    "demo-mutated": demo_mutated,
    "references-into-production": references_into_production,
    "exact-sums": exact_sums,
    "golden": golden,
    "shared-ids-and-variants": shared_ids_and_variants,
}


@contextmanager
def backend(kind: str, root: Path) -> Iterator[TenantStores]:
    if kind == "sqlite":
        stores = make_stores(Settings(data_dir=root / "var"))
        yield stores
        stores.dispose()
        return
    with database("efimis_dump") as staging, database("efimis_dump_prod") as production:
        urls = [u.replace("postgresql://", "postgresql+psycopg://", 1) for u in (staging, production)]
        if kind == "pg":
            urls[1] = urls[0]
        stores = make_stores(Settings(data_dir=root / "var", staging_url=urls[0], production_url=urls[1]))
        yield stores
        stores.dispose()


def dump(stores: TenantStores, request_id: str) -> Iterator[str]:
    """Every finding as read (`iter_findings`), and the raw `_Finding` rows, in Id order."""
    for finding in iter_findings(stores, request_id, FindingFilter()):
        yield json.dumps(finding, ensure_ascii=False, sort_keys=True)
    with stores.staging_session(request_id) as conn:
        for row in conn.execute(FINDING.select().order_by(FINDING.c.Id)):
            yield json.dumps(list(row), ensure_ascii=False, default=str)


def _stable(text: str) -> str:
    """Platform ids are random: each is shown as the order in which it first appears."""
    seen: dict[str, str] = {}
    return re.sub(r"[0-9a-f]{32}", lambda m: seen.setdefault(m.group(), f"<id{len(seen)}>"), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--backends", nargs="*", default=["sqlite", "pg", "pg2"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    everything = hashlib.md5()
    for kind in args.backends:
        for name in args.only:
            with (
                tempfile.TemporaryDirectory(prefix="efimis-dump-") as scratch,
                backend(kind, Path(scratch)) as stores,
            ):
                lines = [
                    line
                    for rid in SCENARIOS[name](Path(scratch), stores)
                    for line in [rid and "--", *dump(stores, rid)]
                ]
            text = _stable("\n".join(lines) + "\n")
            (args.out / f"{kind}-{name}.jsonl").write_text(text, encoding="utf-8")
            digest = hashlib.md5(text.encode()).hexdigest()
            everything.update(digest.encode())
            print(
                f"{digest}  {kind:<7}{name:<28}{sum(1 for line in lines if line.startswith('{')):>7} findings"
            )
    print(f"{everything.hexdigest()}  all")


if __name__ == "__main__":
    main()
