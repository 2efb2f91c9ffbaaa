"""PostgreSQL tenant stores, driven directly: the cross-server paths, atomicity, memory and retention.

The end-to-end tests run the whole service on PostgreSQL too (the `settings` fixture); these tests cover
what they cannot: staging and production in two different databases (the cross-server validation and
promotion paths), a promotion failing midway, an interrupted cross-server copy, memory while loading a
large firm, and retention.
"""

from __future__ import annotations

import gc
import hashlib
import sqlite3
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import fresh_database
from efimis_etl.demo import row_counts, write_demo_source
from efimis_etl.promotion.promote import id_map, promote
from efimis_etl.schema.model import ENTITIES, parse_platform_reference
from efimis_etl.schema.tables import render_ddl
from efimis_etl.settings import ReadPolicy, Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import load_from_source
from efimis_etl.stores import SqliteStores, TableResult, TenantStores
from efimis_etl.stores import postgres_naming as naming
from efimis_etl.stores.postgres import PostgresStores
from efimis_etl.stores.postgres_naming import side_schema, staging_schema, tenant_schema
from efimis_etl.validation.run import FindingFilter, findings_page, iter_findings, validate

TENANT = "acme-legal"


@pytest.fixture
def new_database() -> Iterator[Callable[[], str]]:
    """Creates empty databases on demand (each one a "server" of its own); drops them afterwards."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_database("efimis_pgstores"))


def _pg(staging_url: str, production_url: str, tmp_path: Path, **settings: Any) -> PostgresStores:
    return PostgresStores(
        Settings(
            data_dir=tmp_path / "var", staging_url=staging_url, production_url=production_url, **settings
        )
    )


@pytest.fixture
def backends(new_database: Callable[[], str], tmp_path: Path) -> dict[str, TenantStores]:
    """The same stores three ways: embedded SQLite, PostgreSQL in one database, and PostgreSQL with
    staging and production on different "servers" (two databases)."""
    same = new_database()
    return {
        "sqlite": SqliteStores.from_settings(Settings(data_dir=tmp_path / "sqlite")),
        "same": _pg(same, same, tmp_path),
        "cross": _pg(new_database(), new_database(), tmp_path),
    }


def _import(stores: TenantStores, source: Path, request_id: str, *, batch_size: int = 37) -> dict[str, Any]:
    """Load `source` into a new staging store and validate it, as the import job does."""
    loader = stores.create_staging(request_id)
    try:
        load_from_source(
            parse_connection_string(f"sqlite:///{source}"),
            loader,
            policy=ReadPolicy(batch_size=batch_size),
            on_plan=lambda _plan: None,
            on_progress=lambda _table, _rows: None,
        )
    finally:
        stores.close_staging(loader)
    return validate(stores, request_id, TENANT, first=1000)


def _normalized(stores: TenantStores) -> dict[str, list[tuple[Any, ...]]]:
    """Production rows with the random platform ids taken out: PlatformId dropped, and each platform
    reference written as the ImportId of the object it names."""
    rows = stores.production_rows(TENANT)
    import_ids = {(e.prefix, row[1]): row[0] for e in ENTITIES for row in rows[e.name]}
    for e in ENTITIES:
        assert all(len(row[1]) == 32 and int(row[1], 16) >= 0 for row in rows[e.name])

    def value(v: Any) -> Any:
        parsed = parse_platform_reference(v) if isinstance(v, str) else None
        return f"{parsed[0]}:{import_ids[parsed]}" if parsed in import_ids else v

    return {name: [(row[0], *(value(v) for v in row[2:])) for row in table] for name, table in rows.items()}


def _checksums(stores: TenantStores) -> dict[str, tuple[int, str]]:
    return {
        name: (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        for name, rows in _normalized(stores).items()
    }


def _findings(stores: TenantStores, request_id: str) -> list[dict[str, Any]]:
    return list(iter_findings(stores, request_id, FindingFilter()))


def _revise(source: Path) -> None:
    """A second version of the firm: one item changed, one new, one contact renamed."""
    with sqlite3.connect(source) as connection:
        item = connection.execute('SELECT ImportId FROM "WorkItem" ORDER BY ImportId LIMIT 1').fetchone()[0]
        connection.execute('UPDATE "WorkItem" SET Description = ? WHERE ImportId = ?', ("Revised", item))
        connection.execute(
            'INSERT INTO "WorkItem" SELECT ?, MatterId, StaffId, WorkDate, ?, Minutes, Rate, Amount, TaxCodeId, '
            'IsBillable, 0, NULL FROM "WorkItem" WHERE ImportId = ?',
            ("WI-NEW-1", "A new item", item),
        )
        connection.execute("UPDATE Contact SET GivenName = 'Renamed' WHERE rowid = 1")


def test_cross_server_paths_give_exactly_what_sqlite_and_same_server_give(
    backends: dict[str, TenantStores], tmp_path: Path
) -> None:
    source = tmp_path / "firm.db"
    write_demo_source(source, scale=2, seed=11)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex

    summaries = {name: _import(stores, source, first) for name, stores in backends.items()}
    assert summaries["sqlite"] == summaries["same"] == summaries["cross"]
    assert summaries["sqlite"]["errors"] == 0
    results = {name: promote(stores, first, TENANT) for name, stores in backends.items()}
    expected = row_counts(source)
    assert results["sqlite"] == results["same"] == results["cross"]
    assert results["cross"] == [TableResult(name, n, n, 0) for name, n in expected.items()]
    checksums = {name: _checksums(stores) for name, stores in backends.items()}
    assert checksums["sqlite"] == checksums["same"] == checksums["cross"]
    assert {name: n for name, (n, _) in checksums["cross"].items()} == expected

    # Promoting again changes nothing; a revised import updates in place on every backend alike.
    again = {name: promote(stores, first, TENANT) for name, stores in backends.items()}
    assert all(r == [TableResult(n, c, 0, 0) for n, c in expected.items()] for r in again.values())
    ids_before = backends["cross"].production_rows(TENANT)
    _revise(source)
    for stores in backends.values():
        assert _import(stores, source, second)["errors"] == 0
    results = {name: promote(stores, second, TENANT) for name, stores in backends.items()}
    assert results["sqlite"] == results["same"] == results["cross"]
    changed = {r.entity: (r.inserted, r.updated) for r in results["cross"] if r.inserted or r.updated}
    assert changed == {"Contact": (0, 1), "WorkItem": (1, 1)}
    checksums = {name: _checksums(stores) for name, stores in backends.items()}
    assert checksums["sqlite"] == checksums["same"] == checksums["cross"]
    ids_after = backends["cross"].production_rows(TENANT)
    kept = {(t, r[0]): r[1] for t, rows in ids_before.items() for r in rows}
    assert {(t, r[0]): r[1] for t, rows in ids_after.items() for r in rows if (t, r[0]) in kept} == kept

    # The id map: the same entities and ImportIds in the same order, each with its production reference.
    maps = {name: id_map(stores, second, TENANT, offset=0, limit=100_000) for name, stores in backends.items()}
    keys = {name: [(i["entity"], i["importId"]) for i in items] for name, (_, items) in maps.items()}
    assert keys["sqlite"] == keys["same"] == keys["cross"]
    assert maps["cross"][0] == sum(expected.values()) + 1
    production = backends["cross"].production_rows(TENANT)
    references = {(e.name, r[0]): f"{e.prefix}_{r[1]}" for e in ENTITIES for r in production[e.name]}
    assert all(references[(i["entity"], i["importId"])] == i["reference"] for i in maps["cross"][1])
    page = id_map(backends["cross"], second, TENANT, offset=5, limit=3)
    assert page == (maps["cross"][0], maps["cross"][1][5:8])


def test_findings_are_identical_on_every_backend_including_rules_that_read_production(
    backends: dict[str, TenantStores], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.db"
    write_demo_source(bad, with_errors=True)
    request_id = uuid.uuid4().hex
    summaries = {name: _import(stores, bad, request_id) for name, stores in backends.items()}
    assert summaries["sqlite"] == summaries["same"] == summaries["cross"]
    findings = {name: _findings(stores, request_id) for name, stores in backends.items()}
    assert findings["sqlite"] == findings["same"] == findings["cross"]
    assert len(findings["cross"]) == 29
    for name, stores in backends.items():
        total, page = findings_page(stores, request_id, FindingFilter(rule="type"), offset=1, limit=1)
        assert (total, page) == (3, [f for f in findings["sqlite"] if f["rule"] == "type"][1:2]), name

    # A later import referring to promoted objects: invoice-matter and trust-account follow the
    # references into production (on the cross-server backend, into temporary copies of it).
    clean, later, promoted = tmp_path / "clean.db", tmp_path / "later.db", uuid.uuid4().hex
    write_demo_source(clean)
    with sqlite3.connect(clean) as connection:
        invoice, invoice_matter = connection.execute(
            "SELECT ImportId, MatterId FROM Invoice LIMIT 1"
        ).fetchone()
        other_matter = connection.execute(
            "SELECT ImportId FROM Matter WHERE ImportId <> ? LIMIT 1", (invoice_matter,)
        ).fetchone()[0]
    with sqlite3.connect(later) as connection:
        connection.executescript(render_ddl("sqlite"))
    later_id = uuid.uuid4().hex
    found = {}
    for name, stores in backends.items():
        assert _import(stores, clean, promoted)["errors"] == 0
        promote(stores, promoted, TENANT)
        refs = {
            (i["entity"], i["importId"]): i["reference"]
            for i in id_map(stores, promoted, TENANT, offset=0, limit=100_000)[1]
        }
        with sqlite3.connect(later) as connection:
            connection.execute("DELETE FROM WorkItem")
            connection.execute("DELETE FROM TrustTransaction")
            connection.execute(
                "INSERT INTO WorkItem VALUES (?, ?, ?, '2024-01-02', 'Call', 6, '300.0000', '30.0000', NULL, 1, 1, ?)",
                (
                    "WI-L1",
                    refs[("Matter", other_matter)],
                    refs[("Staff", "ST-001")],
                    refs[("Invoice", invoice)],
                ),
            )
            connection.execute(
                "INSERT INTO TrustTransaction VALUES "
                "(?, ?, ?, '2024-01-02', 0, '500.0000', NULL, 'DEP', 'Deposit', NULL)",
                ("TT-L1", other_matter, refs[("Account", "ACC-1000")]),
            )
        _import(stores, later, later_id)
        found[name] = [
            (f["rule"], f["table"], f["importId"], f["column"]) for f in _findings(stores, later_id)
        ]
    assert found["sqlite"] == found["same"] == found["cross"]
    assert found["cross"] == [
        ("invoice-matter", "WorkItem", "WI-L1", "InvoiceId"),
        ("trust-account", "TrustTransaction", "TT-L1", "AccountId"),
    ]


def _break_on_promotion(url: str, tenant: str) -> None:
    """A CHECK constraint that the last entity's values (written in the promotion's last step) violate."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            f'ALTER TABLE "{tenant_schema(tenant)}"."JournalEntryLine" ADD CONSTRAINT no_equity '
            "CHECK (\"Description\" IS DISTINCT FROM 'Equity') NOT VALID"
        )


def _promotion_log(url: str, tenant: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            f'SELECT "RequestId", "PromotedAt", "Summary" FROM "{tenant_schema(tenant)}"."_Promotion" ORDER BY 1'
        ).fetchall()


@pytest.mark.parametrize("servers", ["same", "cross"])
def test_a_promotion_failing_midway_leaves_production_exactly_as_it_was(
    servers: str, new_database: Callable[[], str], tmp_path: Path
) -> None:
    staging_url = new_database()
    production_url = staging_url if servers == "same" else new_database()
    stores = _pg(staging_url, production_url, tmp_path)
    source = tmp_path / "firm.db"
    write_demo_source(source)
    with sqlite3.connect(source) as connection:  # the first version has no line described "Equity"
        connection.execute(
            "UPDATE JournalEntryLine SET Description = 'Owner equity' WHERE Description = 'Equity'"
        )
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    assert _import(stores, source, first)["errors"] == 0
    promote(stores, first, TENANT)
    before, log_before = stores.production_rows(TENANT), _promotion_log(production_url, TENANT)

    write_demo_source(revised := tmp_path / "revised.db")  # lines described "Equity" again, and more
    _revise(revised)
    assert _import(stores, revised, second)["errors"] == 0
    _break_on_promotion(production_url, TENANT)
    with pytest.raises(Exception, match="no_equity"):
        promote(stores, second, TENANT)
    assert stores.production_rows(TENANT) == before
    assert _promotion_log(production_url, TENANT) == log_before

    # Once the cause is gone, promoting again finishes it.
    with psycopg.connect(production_url, autocommit=True) as connection:
        connection.execute(
            f'ALTER TABLE "{tenant_schema(TENANT)}"."JournalEntryLine" DROP CONSTRAINT no_equity'
        )
    results = {r.entity: (r.inserted, r.updated) for r in promote(stores, second, TENANT)}
    assert results["WorkItem"] == (1, 1) and results["JournalEntryLine"][1] > 0


def test_an_interrupted_cross_server_copy_resumes_with_the_first_incomplete_table(
    new_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging_url, production_url = new_database(), new_database()
    stores = _pg(staging_url, production_url, tmp_path)
    source = tmp_path / "firm.db"
    write_demo_source(source)
    request_id = uuid.uuid4().hex
    assert _import(stores, source, request_id)["errors"] == 0

    copied: list[Any] = []
    real_copy = naming.stream_copy

    def failing_copy(*args: Any) -> int:
        if len(copied) == 5:
            raise psycopg.OperationalError("connection to the staging server lost")
        copied.append(args[3])
        return real_copy(*args)

    monkeypatch.setattr("efimis_etl.stores.postgres.stream_copy", failing_copy)
    with pytest.raises(Exception, match="connection to the staging server lost"):
        promote(stores, request_id, TENANT)
    assert not any(stores.production_rows(TENANT).values())
    with psycopg.connect(production_url) as connection:
        done = connection.execute(f'SELECT "TableName" FROM "{side_schema(request_id)}"."_Copied"').fetchall()
    assert {name for (name,) in done} == {e.name for e in ENTITIES[:5]}

    counting: list[Any] = []

    def counted(*args: Any) -> int:
        counting.append(args[3])
        return real_copy(*args)

    monkeypatch.setattr("efimis_etl.stores.postgres.stream_copy", counted)
    results = promote(stores, request_id, TENANT)
    assert len(counting) == len(ENTITIES) - 5  # the five complete tables were not copied again
    assert {r.entity: r.inserted for r in results} == row_counts(source)

    stores.discard_staging(request_id)
    assert not stores.staging_exists(request_id)
    with psycopg.connect(production_url) as connection:
        assert not connection.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (side_schema(request_id),)
        ).fetchall()


def _peak_while_loading(stores: PostgresStores, source: Path) -> int:
    request_id = uuid.uuid4().hex
    loader = stores.create_staging(request_id)
    gc.collect()
    tracemalloc.start()
    try:
        load_from_source(
            parse_connection_string(f"sqlite:///{source}"),
            loader,
            policy=ReadPolicy(batch_size=1000),
            on_plan=lambda _plan: None,
            on_progress=lambda _table, _rows: None,
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        stores.close_staging(loader)
        stores.discard_staging(request_id)


def test_copy_loading_keeps_memory_flat_however_large_the_firm(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_database()
    stores = _pg(url, url, tmp_path)
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    write_demo_source(small, scale=26)  # about 5,000 work items
    write_demo_source(large, scale=260)  # about 50,000
    small_rows, large_rows = sum(row_counts(small).values()), sum(row_counts(large).values())
    assert large_rows > 9 * small_rows
    small_peak = _peak_while_loading(stores, small)
    large_peak = _peak_while_loading(stores, large)
    # Ten times the rows, about the same peak: batches are written as they are read, never accumulated.
    assert large_peak < 1.5 * small_peak + 1_000_000, (small_peak, large_peak)


def test_retention_drops_only_expired_staging_schemas_and_their_side_copies(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    staging_url, production_url = new_database(), new_database()
    stores = _pg(staging_url, production_url, tmp_path, staging_retention_hours=24)
    source = tmp_path / "firm.db"
    write_demo_source(source)
    old, fresh, promoted_old = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    for request_id in (old, fresh, promoted_old):
        assert _import(stores, source, request_id)["errors"] == 0
    promote(stores, promoted_old, TENANT)  # leaves its side copy on the production server
    production = stores.production_rows(TENANT)
    assert len(production["Matter"]) == row_counts(source)["Matter"]
    now = datetime.now(UTC)
    with psycopg.connect(staging_url, autocommit=True) as connection:
        for request_id, age in ((old, timedelta(hours=25)), (promoted_old, timedelta(days=30))):
            connection.execute(
                f'UPDATE "{staging_schema(request_id)}"."_Meta" SET "CreatedAt" = %s', (now - age,)
            )
        connection.execute(
            f'UPDATE "{staging_schema(fresh)}"."_Meta" SET "CreatedAt" = %s', (now - timedelta(hours=23),)
        )
        # Not a request's schema (the name is no request id), though it looks expired: left alone.
        connection.execute('CREATE SCHEMA "staging_not-ours"')
        connection.execute(
            'CREATE TABLE "staging_not-ours"."_Meta" ("RequestId" text, "CreatedAt" timestamptz)'
        )
        connection.execute(
            'INSERT INTO "staging_not-ours"."_Meta" VALUES (%s, %s)', ("not-ours", now - timedelta(days=30))
        )
    not_ours = _rows(staging_url, 'SELECT * FROM "staging_not-ours"."_Meta"')

    # Promoted again now (in use): its staging schema and its side copy are kept, however old.
    assert stores.drop_expired_staging(now, in_use=lambda request_id: request_id == promoted_old) == [old]
    assert stores.staging_exists(promoted_old)
    assert _sides(production_url) == [(side_schema(promoted_old),)]
    assert stores.drop_expired_staging(now, in_use=_finished) == [promoted_old]
    assert [stores.staging_exists(r) for r in (old, fresh, promoted_old)] == [False, True, False]
    assert _sides(production_url) == []
    assert stores.production_rows(TENANT) == production  # production stays, row for row
    assert _rows(staging_url, 'SELECT * FROM "staging_not-ours"."_Meta"') == not_ours
    assert stores.drop_expired_staging(now, in_use=_finished) == []
    assert stores.drop_expired_staging(now + timedelta(hours=2), in_use=_finished) == [fresh]


def _sides(production_url: str) -> list[tuple[Any, ...]]:
    return _rows(production_url, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'promote%'")


def _finished(_request_id: str) -> bool:
    """`in_use` for stores whose imports have all finished (no import of these tests is running)."""
    return False


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()  # type: ignore[arg-type]


def test_schema_names_are_quoted_unique_and_within_postgresql_limits(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    longest = "a" + "-b" * 31  # 63 characters, hyphens included
    names = {tenant_schema(t) for t in (longest, longest[:-1] + "c", "a-b", "a", "default")}
    assert len(names) == 5 and all(len(n.encode()) <= 63 for n in names)
    assert tenant_schema("a-b") == "tenant_a-b"
    for bad in ("A", "-a", "a_b", 'a"; DROP SCHEMA public; --', "a" * 64):
        with pytest.raises(ValueError):
            tenant_schema(bad)
    with pytest.raises(ValueError):
        staging_schema("0; DROP")

    url = new_database()
    stores = _pg(url, url, tmp_path)
    source = tmp_path / "firm.db"
    write_demo_source(source)
    request_id = uuid.uuid4().hex
    loader = stores.create_staging(request_id)
    with pytest.raises(FileExistsError):
        stores.create_staging(request_id)
    stores.close_staging(loader)
    stores.discard_staging(request_id)
    assert _import(stores, source, request_id)["errors"] == 0
    summary = validate(stores, request_id, longest, first=0)
    assert summary["errors"] == 0
    assert {r.entity: r.inserted for r in promote(stores, request_id, longest)} == row_counts(source)
    assert not any(stores.production_rows(TENANT).values())  # other tenants see nothing of it
    assert not stores.staging_exists("not a request id")
