"""End to end over HTTP on the embedded default: import → validate → promote, and every failure path."""

from __future__ import annotations

import hashlib
import re
import socket
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from conftest import DemoSource, Serve, Service
from efimis_etl.demo import row_counts, write_demo_source
from efimis_etl.schema.tables import render_ddl
from support import copy_to_postgresql, hold_table, until

PASSWORD = "S3cret-Pa55;word"


def _production_rows(service: Service) -> dict[str, list[tuple[Any, ...]]]:
    return service.production_rows()


def _platform_ids(service: Service) -> dict[tuple[str, str], str]:
    return {(table, row[0]): row[1] for table, rows in _production_rows(service).items() for row in rows}


def test_clean_demo_is_validated_and_promoted_with_exact_counts(service: Service, demo: DemoSource) -> None:
    expected = row_counts(demo.path)
    request_id = service.import_(demo.url)
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)

    status = service.wait(request_id)
    assert status["state"] == "Validated", status["failure"]
    assert status["validation"] == {"errors": 0, "warnings": 0, "byRule": [], "findings": []}
    assert {t["table"]: (t["rowsExpected"], t["rowsRead"], t["rowsLoaded"]) for t in status["tables"]} == {
        name: (n, n, n) for name, n in expected.items()
    }
    assert status["progress"] == {
        "rowsExpected": sum(expected.values()),
        "rowsLoaded": sum(expected.values()),
        "percent": 100.0,
    }
    assert status["importStartedAt"] and status["importFinishedAt"] and status["failure"] is None

    promoted = service.wait_promoted(request_id)
    assert promoted["state"] == "Promoted", promoted["failure"]
    assert {t["table"]: (t["rows"], t["inserted"]) for t in promoted["promotion"]["tables"]} == {
        name: (n, n) for name, n in expected.items()
    }
    production = _production_rows(service)
    assert {name: len(rows) for name, rows in production.items()} == expected
    assert all(re.fullmatch(r"[0-9a-f]{32}", row[1]) for rows in production.values() for row in rows)

    # References are rewritten to the platform reference of the object they name.
    matters = {row[0]: row[1] for row in production["Matter"]}
    with sqlite3.connect(demo.path) as source:
        item, matter = source.execute('SELECT ImportId, MatterId FROM "WorkItem" LIMIT 1').fetchone()
    work_item = next(row for row in production["WorkItem"] if row[0] == item)
    assert work_item[3] == f"matter_{matters[matter]}"

    id_map = service.client.get(f"/etl/import/{request_id}/id-map", params={"limit": 10_000}).json()
    assert id_map["total"] == sum(expected.values()) == len(id_map["items"])
    assert {"entity": "Matter", "importId": matter, "reference": f"matter_{matters[matter]}"} in id_map[
        "items"
    ]


def test_promoting_twice_changes_nothing(service: Service, demo: DemoSource) -> None:
    request_id = service.import_(demo.url)
    assert service.wait(request_id)["state"] == "Validated"
    assert service.wait_promoted(request_id)["state"] == "Promoted"
    before = _production_rows(service)

    again = service.wait_promoted(request_id)
    assert again["state"] == "Promoted"
    assert all(
        t["inserted"] == t["updated"] == 0 and t["unchanged"] == t["rows"]
        for t in again["promotion"]["tables"]
    )
    assert _production_rows(service) == before


def test_reimport_updates_in_place_and_keeps_platform_ids(service: Service, demo: DemoSource) -> None:
    first = service.import_(demo.url)
    assert service.wait(first)["state"] == "Validated"
    assert service.wait_promoted(first)["state"] == "Promoted"
    ids_before = _platform_ids(service)

    with sqlite3.connect(demo.path) as source:
        item = source.execute('SELECT * FROM "WorkItem" ORDER BY ImportId LIMIT 1').fetchone()
        source.execute(
            'UPDATE "WorkItem" SET Description = ? WHERE ImportId = ?', ("Revised narrative", item[0])
        )
        source.execute(
            'INSERT INTO "WorkItem" SELECT ?, MatterId, StaffId, WorkDate, ?, Minutes, Rate, Amount, TaxCodeId, '
            'IsBillable, 0, NULL FROM "WorkItem" WHERE ImportId = ?',
            ("WI-NEW-1", "A new item", item[0]),
        )
    second = service.import_(demo.url)
    assert service.wait(second)["state"] == "Validated"
    promoted = service.wait_promoted(second)
    by_table = {t["table"]: t for t in promoted["promotion"]["tables"]}
    assert (by_table["WorkItem"]["inserted"], by_table["WorkItem"]["updated"]) == (1, 1)
    assert all(t["inserted"] == t["updated"] == 0 for name, t in by_table.items() if name != "WorkItem")

    ids_after = _platform_ids(service)
    assert {k: v for k, v in ids_after.items() if k in ids_before} == ids_before
    assert set(ids_after) - set(ids_before) == {("WorkItem", "WI-NEW-1")}
    rows = {row[0]: row for row in _production_rows(service)["WorkItem"]}
    assert rows[item[0]][6] == "Revised narrative"


def _empty_source(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.executescript(render_ddl("sqlite"))


def test_a_later_import_adds_work_to_a_matter_promoted_earlier(
    service: Service, demo: DemoSource, tmp_path: Path
) -> None:
    first = service.import_(demo.url)
    assert service.wait(first)["state"] == "Validated"
    assert service.wait_promoted(first)["state"] == "Promoted"
    items = service.client.get(f"/etl/import/{first}/id-map", params={"limit": 10_000}).json()["items"]
    matter = next(i["reference"] for i in items if i["entity"] == "Matter")
    staff = next(i["reference"] for i in items if i["entity"] == "Staff")

    later = tmp_path / "later.db"
    _empty_source(later)
    with sqlite3.connect(later) as connection:
        connection.execute(
            'INSERT INTO "WorkItem" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (
                "WI-LATER-1",
                matter,
                staff,
                "2024-03-01",
                "Advice on settlement",
                30,
                "400.0000",
                "200.0000",
                None,
                1,
                0,
                None,
            ),
        )
    request_id = service.import_(f"sqlite:///{later}")
    status = service.wait(request_id)
    assert status["state"] == "Validated", status["validation"]
    assert service.wait_promoted(request_id)["state"] == "Promoted"
    row = next(r for r in _production_rows(service)["WorkItem"] if r[0] == "WI-LATER-1")
    assert (row[3], row[4]) == (matter, staff)
    assert row[9] == Decimal("200.0000")  # kept exactly


def test_planted_errors_block_promotion(service: Service, demo_with_errors: DemoSource) -> None:
    request_id = service.import_(demo_with_errors.url)
    status = service.wait(request_id)
    assert status["state"] == "ValidationFailed"
    validation = status["validation"]
    assert validation["errors"] + validation["warnings"] == len(demo_with_errors.planted)
    assert len(validation["findings"]) == service.settings.findings_in_status
    invalid_date = next(
        f for f in validation["findings"] if f["rule"] == "type" and f["column"] == "WorkDate"
    )
    assert invalid_date["value"] == "31/02/2024" and "YYYY-MM-DD" in invalid_date["message"]

    refused = service.promote(request_id)
    assert refused.status_code == 409
    assert "ValidationFailed" in refused.json()["error"]["message"]
    _assert_production_empty(service)


def test_unknown_request_is_404_everywhere(service: Service) -> None:
    assert service.client.get("/etl/import-status/" + "0" * 32).status_code == 404
    assert service.client.get("/etl/import/" + "0" * 32 + "/id-map").status_code == 404
    response = service.promote("0" * 32)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not-found"


def test_promote_before_validation_finished_names_the_state(
    service: Service, demo: DemoSource, pg_url: str
) -> None:
    # The source's WorkItem table is locked by the test: the import is reliably still Importing.
    copy_to_postgresql(demo.path, pg_url)
    with hold_table(pg_url, "WorkItem") as held:
        request_id = service.import_(pg_url)
        until(held.waiting, "the import to wait for the locked WorkItem table")
        assert service.status(request_id)["state"] == "Importing"
        early = service.promote(request_id)
        assert early.status_code == 409, early.text
        assert early.json()["error"]["code"] == "invalid-state"
        assert early.json()["error"]["message"].startswith(
            f"Import {request_id} is Importing; only an import"
        )
        assert service.status(request_id)["state"] == "Importing"  # the refusal changed nothing
    assert service.wait(request_id)["state"] == "Validated"
    _assert_production_empty(service)
    assert service.wait_promoted(request_id)["state"] == "Promoted"  # once Validated, the same call is taken


def _assert_production_empty(service: Service) -> None:
    assert not any(_production_rows(service).values())


def _expect_failure(service: Service, connection_string: str, *fragments: str) -> dict[str, Any]:
    request_id = service.import_(connection_string)
    status = service.wait(request_id)
    assert status["state"] == "Failed", status
    for fragment in fragments:
        assert fragment in status["failure"]["reason"], status["failure"]
    assert not service.staging_exists(request_id)
    assert service.client.get("/health").json()["status"] == "ok"
    _assert_production_empty(service)
    return status


def test_missing_table_fails_naming_it(service: Service, demo: DemoSource) -> None:
    with sqlite3.connect(demo.path) as source:
        source.execute('DROP TABLE "TrustTransaction"')
    status = _expect_failure(service, demo.url, "table etl.TrustTransaction is missing", "Efimis-1.0.sql")
    assert status["failure"]["code"] == "schema-mismatch"


def test_wrong_schema_version_fails(service: Service, demo: DemoSource) -> None:
    with sqlite3.connect(demo.path) as source:
        source.execute("UPDATE SchemaVersion SET Version = '0.9'")
    status = _expect_failure(service, demo.url, "'0.9'", "schema 1.0")
    assert status["failure"]["code"] == "schema-version"


def test_float_money_column_fails_naming_table_column_and_types(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "float.db"
    ddl = render_ddl("sqlite").replace(
        '"Amount" DECIMAL(19, 4) NOT NULL, \n\t"TaxCodeId" VARCHAR(100), \n\t"IsBillable"',
        '"Amount" REAL NOT NULL, \n\t"TaxCodeId" VARCHAR(100), \n\t"IsBillable"',
    )
    assert ddl != render_ddl("sqlite")
    with sqlite3.connect(path) as connection:
        connection.executescript(ddl)
    _expect_failure(
        service, f"sqlite:///{path}", "column etl.WorkItem.Amount is REAL; expected DECIMAL(19, 4)"
    )


def test_missing_source_file_fails_clearly(service: Service, tmp_path: Path) -> None:
    _expect_failure(service, f"sqlite:///{tmp_path / 'nope.db'}", "does not exist")
    assert not (tmp_path / "nope.db").exists()  # opening the source never creates it


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on leaving: nothing listens there


def test_unreachable_sql_server_fails_through_microsofts_driver_without_leaking_the_password(
    service: Service,
) -> None:
    port = _closed_port()
    connection_string = (
        f"Server=tcp:127.0.0.1,{port};Initial Catalog=Firm;User ID=etl;Password={{{PASSWORD}}};"
        "Encrypt=False;Connection Timeout=3"
    )
    status = _expect_failure(service, connection_string, f"127.0.0.1,{port}", "Server")
    assert status["failure"]["code"] == "host-unreachable"
    assert status["source"].startswith("SQL Server 127.0.0.1")
    body = service.client.get(f"/etl/import-status/{status['requestId']}").text
    assert PASSWORD not in body and "S3cret" not in body


def test_malformed_connection_strings_get_422_without_the_password(service: Service) -> None:
    for text in (
        f"Server=tcp:db.example.com,99999;Database=Firm;User ID=etl;Password={PASSWORD}x",
        f"Server=db;Database=Firm;Integrated Security=SSPI;Password={PASSWORD}y",
        f"Server=db;Database=Firm;User ID=etl;Password={PASSWORD}z;Frobnicate=1",
        "mysql://etl:S3cret-Pa55@db/firm",
    ):
        response = service.client.post("/etl/import", json={"connectionString": text})
        assert response.status_code == 422, text
        assert response.json()["error"]["code"] == "invalid-connection-string"
        assert "S3cret" not in response.text
    too_long = service.client.post(
        "/etl/import", json={"connectionString": "Server=x;" + "a" * 9000 + PASSWORD}
    )
    assert too_long.status_code == 422 and "S3cret" not in too_long.text
    extra = service.client.post(
        "/etl/import", json={"connectionString": "sqlite:///x.db", "password": PASSWORD}
    )
    assert extra.status_code == 422 and "S3cret" not in extra.text
    assert service.client.post("/etl/import", content=b"not json").status_code == 422


def test_postgresql_source_imports_like_sqlite(service: Service, demo: DemoSource, pg_url: str) -> None:
    copy_to_postgresql(demo.path, pg_url)
    request_id = service.import_(pg_url)
    status = service.wait(request_id)
    assert status["state"] == "Validated", status
    assert {t["table"]: t["rowsLoaded"] for t in status["tables"]} == row_counts(demo.path)


def _cut_connection_mid_read(service: Service, demo: DemoSource, pg_url: str) -> str:
    """Start an import of a slow PostgreSQL source and terminate its connection while WorkItem is read."""
    import psycopg

    copy_to_postgresql(demo.path, pg_url)
    plain = pg_url.replace("+psycopg", "")
    database = plain.rsplit("/", 1)[1]
    with psycopg.connect(plain, autocommit=True) as admin:
        # A slow table (a view that sleeps per row) keeps the importer reading long enough to cut it off.
        admin.execute('ALTER TABLE etl."WorkItem" RENAME TO "WorkItemData"')
        admin.execute(
            'CREATE VIEW etl."WorkItem" AS SELECT * FROM etl."WorkItemData" WHERE pg_sleep(0.02) IS NOT NULL'
        )
        request_id = service.import_(pg_url)
        deadline = time.monotonic() + 30
        while not any(
            t["table"] == "WorkItem" and t["rowsRead"] > 0 for t in service.status(request_id)["tables"]
        ):
            assert time.monotonic() < deadline and service.status(request_id)["state"] in (
                "Queued",
                "Importing",
            )
            time.sleep(0.02)
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
        assert killed
    return request_id


def test_a_connection_dropped_mid_read_is_resumed_exactly(
    service: Service, demo: DemoSource, pg_url: str
) -> None:
    request_id = _cut_connection_mid_read(service, demo, pg_url)
    status = service.wait(request_id)
    assert status["state"] == "Validated", status["failure"]
    counts = row_counts(demo.path)
    for table in status["tables"]:
        assert table["rowsLoaded"] == counts[table["table"]]
        figures = table["reconciliation"]
        assert figures["verified"] and figures["read"] == figures["loaded"]
        assert figures["source"]["rows"] == counts[table["table"]]
    assert status["tables"][0]["reconciliation"]["source"]["sums"] == {}  # Journal has no money
    work = next(t for t in status["tables"] if t["table"] == "WorkItem")["reconciliation"]
    assert work["source"]["sums"] == work["loaded"]["sums"] and set(work["loaded"]["sums"]) == {
        "Rate",
        "Amount",
    }


def test_a_connection_dropped_with_no_retries_left_fails_cleanly(
    serve: Serve, demo: DemoSource, pg_url: str
) -> None:
    with serve(read_retries=0) as service:
        request_id = _cut_connection_mid_read(service, demo, pg_url)
        status = service.wait(request_id)
        assert status["state"] == "Failed"
        assert status["failure"]["code"] == "source-read-failed"
        assert (
            "Reading the source failed" in status["failure"]["reason"]
            and "etl.WorkItem" in status["failure"]["reason"]
        )
        assert not service.staging_exists(request_id)
        _assert_production_empty(service)
        assert service.client.get("/health").status_code == 200


def test_an_interrupted_import_is_failed_on_restart(tmp_path: Path) -> None:
    from efimis_etl.jobs.state import Platform
    from efimis_etl.service import Caller
    from efimis_etl.service import Service as Use
    from efimis_etl.settings import Settings

    settings = Settings(data_dir=tmp_path / "var")
    settings.data_dir.mkdir(parents=True)
    platform = Platform(settings.platform_url)
    platform.migrate()
    request_id = platform.create("default", "sqlite:///somewhere.db")
    write_demo_source(tmp_path / "unused.db")  # a second file in the tree must not be touched
    before = _files_outside(tmp_path, settings.data_dir)
    assert list(before) == ["unused.db"]
    service = Use.embedded(settings)
    try:
        status = service.status(Caller("default", "test"), request_id)
        assert status["state"] == "Failed" and status["failure_code"] == "interrupted"
    finally:
        service.stop()
    assert _files_outside(tmp_path, settings.data_dir) == before


def _files_outside(tree: Path, data_dir: Path) -> dict[str, tuple[int, str]]:
    """Every file of the tree outside the service's data directory: its modification time and checksum."""
    return {
        str(path.relative_to(tree)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(tree.rglob("*"))
        if path.is_file() and data_dir not in path.parents
    }


def test_rows_sharing_an_import_id_are_all_read_and_reported(service: Service, tmp_path: Path) -> None:
    # A source table without its primary key (a hand-made table or a view) can repeat an ImportId.
    path = tmp_path / "dupes.db"
    ddl = render_ddl("sqlite")
    staff = ddl.index('CREATE TABLE "Staff"')
    end = ddl.index(");", staff)
    ddl = ddl[:staff] + ddl[staff:end].replace(', \n\tPRIMARY KEY ("ImportId")\n', "\n") + ddl[end:]
    with sqlite3.connect(path) as connection:
        connection.executescript(ddl)
        rows = [(f"ST-{i:03d}", f"Person {i}", None, None, None, "100.0000", 1) for i in range(120)]
        rows += [
            ("ST-049", "Twin of 49", None, None, None, "100.0000", 1)
        ] * 2  # straddles the 50-row batches
        rows += [("ST-100", "Twin of 100", None, None, None, "100.0000", 1)]
        connection.executemany('INSERT INTO "Staff" VALUES (?, ?, ?, ?, ?, ?, ?)', rows)
    request_id = service.import_(f"sqlite:///{path}")
    status = service.wait(request_id)
    assert status["state"] == "ValidationFailed", status
    assert {t["table"]: t["rowsLoaded"] for t in status["tables"]}["Staff"] == 123
    findings = {(f["rule"], f["importId"], f["value"]) for f in status["validation"]["findings"]}
    assert findings == {("unique-import-id", "ST-049", "ST-049"), ("unique-import-id", "ST-100", "ST-100")}
    assert "used by 3 rows" in next(
        f["message"] for f in status["validation"]["findings"] if f["importId"] == "ST-049"
    )
