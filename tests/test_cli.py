"""The efimis-etl command, run as a user runs it: a real process talking to the real service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import tds_fixtures
from conftest import DEMO_SECRET, DemoSource, Serve, Service
from efimis_devtools.tds_server import Faults
from efimis_etl.demo import row_counts
from efimis_etl.schema.tables import render_ddl

CLI = [sys.executable, "-m", "efimis_etl.cli"]
sql_server = tds_fixtures.sql_server


def run(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EFIMIS_POLL_SECONDS": "0.05",
        "COLUMNS": "160",
        "EFIMIS_CLIENT_ID": "demo",
        "EFIMIS_CLIENT_SECRET": DEMO_SECRET,
    }
    if url:
        env["EFIMIS_URL"] = url
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_schema_sql_prints_the_ddl_of_each_dialect() -> None:
    for dialect in ("tsql", "postgresql", "sqlite"):
        result = run("schema", "sql", "--dialect", dialect)
        assert result.returncode == 0, result.stderr
        assert result.stdout == render_ddl(dialect)  # type: ignore[arg-type]
    wrong = run("schema", "sql", "--dialect", "oracle")
    assert wrong.returncode == 2 and "choose tsql, postgresql or sqlite" in wrong.stderr


def test_demo_data_writes_a_source_and_lists_planted_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    result = run("demo-data", str(path), "--scale", "2", "--with-errors")
    assert result.returncode == 0, result.stderr
    assert row_counts(path)["Matter"] > 0
    assert "Planted 29 problems" in result.stdout and "reference-unresolved" in result.stdout
    again = run("demo-data", str(path))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_import_wait_then_promote_wait(service: Service, demo: DemoSource) -> None:
    imported = run("import", demo.url, "--wait", url=service.url)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "Import request queued successfully." in imported.stdout
    assert "Validation: 0 errors, 0 warnings" in imported.stdout
    assert "WorkItem" in imported.stdout  # a progress bar per table
    request_id = imported.stdout.split("requestId: ")[1].split()[0]

    status = run("status", request_id, url=service.url)
    assert status.returncode == 0 and "Validated" in status.stdout

    promoted = run("promote", request_id, "--wait", url=service.url)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "Promotion to production started." in promoted.stdout and "Promoted" in promoted.stdout
    assert service.status(request_id)["state"] == "Promoted"


def test_preview_then_promote_at_its_revision_then_revert(service: Service, demo: DemoSource) -> None:
    imported = run("import", demo.url, "--wait", url=service.url)
    request_id = imported.stdout.split("requestId: ")[1].split()[0]
    preview = run("preview", request_id, url=service.url)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "against production revision 0" in preview.stdout and "WorkItem" in preview.stdout
    assert "--production-revision 0" in preview.stdout
    promoted = run("promote", request_id, "--production-revision", "0", "--wait", url=service.url)
    assert promoted.returncode == 0 and "Promoted" in promoted.stdout, promoted.stdout + promoted.stderr
    stale = run("promote", request_id, "--production-revision", "0", url=service.url)
    assert stale.returncode == 1 and "409" in stale.stderr and request_id in stale.stderr
    reverted = run("revert", request_id, "--yes", url=service.url)
    assert reverted.returncode == 0 and "Reverted" in reverted.stdout, reverted.stdout + reverted.stderr
    assert all(not rows for rows in service.production_rows().values())


def test_import_of_bad_data_exits_1_with_the_findings(service: Service, demo_with_errors: DemoSource) -> None:
    result = run("import", demo_with_errors.url, "--wait", url=service.url)
    assert result.returncode == 1
    assert "Validation: 26 errors, 3 warnings" in result.stdout
    assert "31/02/2024" in result.stdout


def test_cli_reports_http_errors_and_an_unreachable_service(service: Service) -> None:
    missing = run("status", "0" * 32, url=service.url)
    assert missing.returncode == 1 and "404" in missing.stderr and "No import request" in missing.stderr
    bad = run("import", "Server=h;Database=d;Bogus=1;User ID=u;Password=hunter22", url=service.url)
    assert bad.returncode == 1 and "Bogus" in bad.stderr and "hunter22" not in bad.stderr + bad.stdout
    down = run("status", "x", url="http://127.0.0.1:9")
    assert down.returncode == 2 and "Cannot reach the service" in down.stderr


def test_cancel_wait_returns_once_the_job_has_stopped(
    serve: Serve, tmp_path: Path, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    # The source stalls for a minute in the middle of WorkItem: only stopping the job's process ends it.
    server = sql_server(demo.path, faults=Faults(stall_seconds=60, when_sql_contains="TOP 51 etl.[WorkItem]"))
    with serve() as service:
        request_id = service.import_(server.ado_connection_string(encrypt=False))
        deadline = time.monotonic() + 60
        while service.status(request_id)["state"] != "Importing":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cancelled = run("cancel", request_id, "--wait", url=service.url)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert f"{request_id} Cancelled: its job is stopping." in cancelled.stdout
        assert "its job has stopped; its staging data is deleted." in cancelled.stdout
        assert service.status(request_id)["importFinishedAt"] and not service.staging_exists(request_id)
        again = run("cancel", request_id, url=service.url)
        assert again.returncode == 1 and "409" in again.stderr and "is Cancelled" in again.stderr
        status = run("status", request_id, url=service.url)
        assert status.returncode == 1 and "Cancelled" in status.stdout


def test_imports_lists_the_firms_imports_as_a_table_or_json(
    service: Service, demo: DemoSource, demo_with_errors: DemoSource
) -> None:
    validated = service.import_(demo.url)
    service.wait(validated)
    refused = service.import_(demo_with_errors.url)
    service.wait(refused)

    table = run("imports", url=service.url)
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    newest = next(i for i, line in enumerate(lines) if refused in line)
    older = next(i for i, line in enumerate(lines) if validated in line)
    assert newest < older
    assert "ValidationFailed" in lines[newest] and "│ 26 " in lines[newest]
    rows = service.status(validated)["progress"]["rowsLoaded"]
    assert "Validated" in lines[older] and f"{rows}/{rows}" in lines[older]
    assert "1–2 of 2" in table.stdout

    only = run("imports", "--state", "Validated", "--json", url=service.url)
    assert only.returncode == 0, only.stderr
    page = json.loads(only.stdout)
    assert page["total"] == 1 and [i["requestId"] for i in page["imports"]] == [validated]
    assert page["imports"][0]["source"] == demo.url

    wrong = run("imports", "--state", "Done", url=service.url)
    assert wrong.returncode == 1 and "422" in wrong.stderr and "'ValidationFailed'" in wrong.stderr
