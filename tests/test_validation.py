"""Validation a consultant can act on: every rule fires on its planted row, and nothing fires on clean data."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import DemoSource, Service
from efimis_etl.demo import write_demo_source
from efimis_etl.schema.tables import render_ddl
from efimis_etl.validation.catalogue import RULES


def _all_findings(service: Service, request_id: str, **filters: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = service.client.get(
            f"/etl/import/{request_id}/findings", params={**filters, "offset": len(items), "limit": 7}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        if len(items) >= body["total"]:
            assert len(items) == body["total"]
            return items


def _keys(findings: list[dict[str, Any]]) -> set[tuple[str, str, str | None, str | None]]:
    return {(f["rule"], f["table"], f["importId"], f["column"]) for f in findings}


def test_every_rule_is_planted_somewhere(tmp_path: Path) -> None:
    rules = {p.rule for p in write_demo_source(tmp_path / "firm.db", with_errors=True)}
    # unique-import-id needs a source without a primary key (test_import_e2e plants it); the schema rules
    # need other DDL (test_compatible_column_variants_and_extra_columns_are_warnings); sum-range exists on
    # the embedded store only, whose findings the demo must not set apart from PostgreSQL's (test_exact_sums).
    assert rules | {"unique-import-id", "schema-variant", "extra-column", "sum-range"} == set(RULES)


def test_each_planted_problem_is_found_with_its_code_row_and_column(
    service: Service, demo_with_errors: DemoSource
) -> None:
    request_id = service.import_(demo_with_errors.url)
    status = service.wait(request_id)
    assert status["state"] == "ValidationFailed"
    findings = _all_findings(service, request_id)
    assert _keys(findings) == {(p.rule, p.table, p.import_id, p.column) for p in demo_with_errors.planted}
    assert len(findings) == len(demo_with_errors.planted)  # each problem reported once
    for finding in findings:
        rule = RULES[finding["rule"]]
        assert finding["severity"] == rule.severity
        assert finding["message"].endswith(rule.fix)
    by_rule = {r["rule"]: r["count"] for r in status["validation"]["byRule"]}
    assert sum(by_rule.values()) == len(findings)
    assert status["validation"]["warnings"] == sum(1 for f in findings if f["severity"] == "warning") == 3

    # Values are shown exactly, money included.
    shown = {(f["rule"], f["importId"]): f for f in findings}
    assert shown[("rate-range", "TX-FRE")]["value"] == "150.0000"
    journal = next(f for f in findings if f["rule"] == "journal-unbalanced")
    assert "debits 25000.0000, credits 24000.0000" in journal["message"]


def test_findings_can_be_filtered_paged_and_downloaded(
    service: Service, demo_with_errors: DemoSource
) -> None:
    request_id = service.import_(demo_with_errors.url)
    service.wait(request_id)
    everything = _all_findings(service, request_id)
    assert {f["rule"] for f in _all_findings(service, request_id, rule="type")} == {"type"}
    assert len(_all_findings(service, request_id, rule="type")) == 3
    assert all(f["table"] == "WorkItem" for f in _all_findings(service, request_id, table="WorkItem"))
    warnings = _all_findings(service, request_id, severity="warning")
    assert {f["rule"] for f in warnings} == {"email-format", "country-code", "work-item-amount"}
    bad = service.client.get(f"/etl/import/{request_id}/findings", params={"severity": "fatal"})
    assert bad.status_code == 422

    download = service.client.get(f"/etl/import/{request_id}/findings.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["message"] for r in rows] == [f["message"] for f in everything]
    assert list(rows[0]) == ["rule", "severity", "table", "importId", "column", "value", "message"]
    filtered = service.client.get(f"/etl/import/{request_id}/findings.csv", params={"rule": "enum"})
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 1


def test_findings_of_unknown_or_failed_imports(service: Service, tmp_path: Path) -> None:
    assert service.client.get("/etl/import/" + "f" * 32 + "/findings").status_code == 404
    assert service.client.get("/etl/import/" + "f" * 32 + "/findings.csv").status_code == 404
    failed = service.import_(f"sqlite:///{tmp_path / 'missing.db'}")
    assert service.wait(failed)["state"] == "Failed"
    response = service.client.get(f"/etl/import/{failed}/findings")
    assert response.status_code == 409 and "failed before validation" in response.json()["error"]["message"]


def test_clean_demo_data_has_no_errors_and_no_warnings_at_scale(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    write_demo_source(path, scale=5, seed=7)
    request_id = service.import_(f"sqlite:///{path}")
    status = service.wait(request_id)
    assert status["state"] == "Validated"
    assert (status["validation"]["errors"], status["validation"]["warnings"]) == (0, 0)


def test_warnings_alone_do_not_block_promotion(service: Service, demo: DemoSource) -> None:
    with sqlite3.connect(demo.path) as source:
        source.execute("UPDATE Staff SET Email = 'reception at firm' WHERE ImportId = 'ST-001'")
    request_id = service.import_(demo.url)
    status = service.wait(request_id)
    assert status["state"] == "Validated"
    assert (status["validation"]["errors"], status["validation"]["warnings"]) == (0, 1)
    assert service.wait_promoted(request_id)["state"] == "Promoted"


def test_cross_table_rules_follow_references_into_production(
    service: Service, demo: DemoSource, tmp_path: Path
) -> None:
    first = service.import_(demo.url)
    assert service.wait(first)["state"] == "Validated"
    assert service.wait_promoted(first)["state"] == "Promoted"
    refs = {
        (i["entity"], i["importId"]): i["reference"]
        for i in service.client.get(f"/etl/import/{first}/id-map", params={"limit": 10_000}).json()["items"]
    }
    with sqlite3.connect(demo.path) as source:
        invoice, invoice_matter = source.execute("SELECT ImportId, MatterId FROM Invoice LIMIT 1").fetchone()
        other_matter = source.execute(
            "SELECT ImportId FROM Matter WHERE ImportId <> ?", (invoice_matter,)
        ).fetchone()[0]

    later = tmp_path / "later.db"
    with sqlite3.connect(later) as connection:
        connection.executescript(render_ddl("sqlite"))
        # Billed on an invoice promoted earlier, which belongs to another matter.
        connection.execute(
            "INSERT INTO WorkItem VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "WI-L1",
                refs[("Matter", other_matter)],
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
        # A trust deposit into the office bank account promoted earlier (journal J-GEN).
        connection.execute(
            "INSERT INTO TrustTransaction VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "TT-L1",
                refs[("Matter", other_matter)],
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
    request_id = service.import_(f"sqlite:///{later}")
    status = service.wait(request_id)
    assert status["state"] == "ValidationFailed"
    assert _keys(_all_findings(service, request_id)) == {
        ("invoice-matter", "WorkItem", "WI-L1", "InvoiceId"),
        ("trust-account", "TrustTransaction", "TT-L1", "AccountId"),
    }


def test_preflight_reports_the_same_findings_as_the_import(
    service: Service, demo_with_errors: DemoSource, tmp_path: Path
) -> None:
    request_id = service.import_(demo_with_errors.url)
    service.wait(request_id)
    imported = _all_findings(service, request_id)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "efimis_etl.cli",
            "validate",
            demo_with_errors.url,
            "--json",
            "--csv",
            str(tmp_path / "f.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "EFIMIS_DATA_DIR": str(service.settings.data_dir)},
    )
    assert result.returncode == 1, result.stderr
    preflight = [json.loads(line) for line in result.stdout.splitlines()]
    assert preflight == imported
    assert len(list(csv.DictReader((tmp_path / "f.csv").open(encoding="utf-8")))) == len(imported)
    # The pre-flight imported nothing: the service knows of the one import only.
    submitted = [
        e for e in service.client.get("/etl/audit").json()["items"] if e["action"] == "import-submitted"
    ]
    assert [e["requestId"] for e in submitted] == [request_id]


def test_preflight_of_clean_data_exits_0_and_of_unreadable_source_exits_2(
    demo: DemoSource, tmp_path: Path
) -> None:
    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "efimis_etl.cli", "validate", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/bin:/bin", "EFIMIS_DATA_DIR": str(tmp_path / "var"), "COLUMNS": "200"},
        )

    clean = run(demo.url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Validation: 0 errors, 0 warnings" in clean.stdout
    assert not (tmp_path / "var").exists()  # a pre-flight writes nothing of the service's
    missing = run(f"sqlite:///{tmp_path / 'nope.db'}")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_findings_and_id_map_of_an_import_past_retention_are_gone(service: Service, demo: DemoSource) -> None:
    request_id = service.import_(demo.url)
    assert service.wait(request_id)["state"] == "Validated"
    assert service.wait_promoted(request_id)["state"] == "Promoted"
    service.app.state.service.stores.discard_staging(request_id)  # what the retention job does
    for path in ("findings", "findings.csv", "id-map"):
        response = service.client.get(f"/etl/import/{request_id}/{path}")
        assert response.status_code == 410, (path, response.text)
        assert "retention" in response.json()["error"]["message"]
    assert service.status(request_id)["state"] == "Promoted"  # the status itself stays


def test_compatible_column_variants_and_extra_columns_are_warnings(service: Service, tmp_path: Path) -> None:
    ddl = render_ddl("sqlite")
    ddl = ddl.replace('"City" VARCHAR(100)', '"City" VARCHAR(300)').replace(
        '"Minutes" INTEGER', '"Minutes" BIGINT'
    )
    ddl = ddl.replace(
        '"MatterNumber" VARCHAR(30) NOT NULL,', '"MatterNumber" VARCHAR(30) NOT NULL, "LegacyCode" TEXT,'
    )
    assert ddl.count("VARCHAR(300)") == 1 and "BIGINT" in ddl and "LegacyCode" in ddl
    path = tmp_path / "variants.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(ddl)
        connection.execute(
            "INSERT INTO Contact (ImportId, Type, FamilyName, City) VALUES ('C1', 0, 'Long', ?)", ("x" * 150,)
        )
    request_id = service.import_(f"sqlite:///{path}")
    status = service.wait(request_id)
    assert status["state"] == "ValidationFailed"  # the 150-character city does not fit the schema's 100
    findings = _all_findings(service, request_id)
    assert {
        (f["rule"], f["table"], f["column"], f["value"] if f["rule"] != "max-length" else None)
        for f in findings
    } == {
        ("schema-variant", "Contact", "City", "VARCHAR(300)"),
        ("schema-variant", "WorkItem", "Minutes", "BIGINT"),
        ("extra-column", "Matter", "legacycode", "TEXT"),
        ("max-length", "Contact", "City", None),
    }
    assert {f["rule"]: f["severity"] for f in findings} == {
        "schema-variant": "warning",
        "extra-column": "warning",
        "max-length": "error",
    }
