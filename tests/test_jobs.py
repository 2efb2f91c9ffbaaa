"""Jobs on the embedded default: each runs in a child process of the service, never in the API process.

A source that stalls cannot slow the API down, an import can be cancelled while its source stalls, and a
child that dies (here: SIGKILL) ends its job with a reason while the service keeps serving.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tds_fixtures
from conftest import DEMO_SECRET, DemoSource, Serve, Service
from efimis_devtools.tds_server import Faults
from efimis_etl.demo import row_counts, write_demo_source
from efimis_etl.settings import Settings

sql_server = tds_fixtures.sql_server

# With 50-row batches every batch of WorkItem after the first asks for 51 rows (keyset pagination starts
# at the last ImportId read): stalling those stalls the import mid-table, 50 rows in.
MID_WORK_ITEMS = "TOP 51 etl.[WorkItem]"


def _until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll an observable condition until it holds; fail naming it after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)
    return value


def _stalled_mid_table(service: Service, server: Any, request_id: str) -> dict[str, Any]:
    """Wait until the import has loaded WorkItem's first batch and the server holds the next one."""

    def stalled() -> dict[str, Any] | None:
        status = service.status(request_id)
        loaded = {t["table"]: t["rowsLoaded"] for t in status["tables"]}
        held = any(MID_WORK_ITEMS in batch for batch in server.batches())
        return status if held and loaded.get("WorkItem") == 50 else None

    status: dict[str, Any] = _until(stalled, "the import to stall in the middle of WorkItem")
    return status


def _checksum(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, tuple[int, str]]:
    return {
        table: (len(values), hashlib.sha256(repr(sorted(values, key=repr)).encode()).hexdigest())
        for table, values in rows.items()
    }


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def test_a_stalled_source_neither_slows_the_api_nor_survives_cancel(
    serve: Serve, tmp_path: Path, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    server = sql_server(demo.path, faults=Faults(stall_seconds=60, when_sql_contains=MID_WORK_ITEMS))
    with serve() as service:
        stalled = service.import_(server.ado_connection_string(encrypt=False))
        running = _stalled_mid_table(service, server, stalled)
        assert running["state"] == "Importing" and running["workerPid"] > 0
        assert running["workerPid"] != os.getpid()

        other = service.import_(demo.url)  # the second worker runs it while the first one is stuck
        assert service.wait(other)["state"] == "Validated"
        latencies = []
        for _ in range(50):
            started = time.perf_counter()
            response = service.client.get(f"/etl/import-status/{other}")
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.json()["state"] == "Validated"
        p99 = _p99(latencies)
        print(
            f"\nstatus under a stalled source: p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms over {len(latencies)} calls"
        )
        assert p99 < 0.5
        assert service.status(stalled)["state"] == "Importing"  # still stuck in the driver

        started = time.monotonic()
        response = service.client.post(f"/etl/import/{stalled}/cancel")
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "Cancelled" and response.json()["requestId"] == stalled
        stopped = _until(
            lambda: (s := service.status(stalled))["importFinishedAt"] and s["workerPid"] is None and s,
            "the cancelled import's job to stop",
            timeout=30,
        )
        elapsed = time.monotonic() - started
        print(f"cancel of a stalled import: Cancelled and stopped after {elapsed:.2f} s")
        assert elapsed < 5
        assert stopped["state"] == "Cancelled" and stopped["failure"] is None
        assert not service.staging_exists(stalled)
        assert _gone(running["workerPid"])
        events = service.client.get("/etl/audit").json()["items"]
        assert ("demo", "import-cancelled", "cancelled", "Importing") in [
            (e["actor"], e["action"], e["outcome"], e["detail"]) for e in events if e["requestId"] == stalled
        ]
        # Cancelled is final: cancelling again, or promoting, is refused naming the state.
        again = service.client.post(f"/etl/import/{stalled}/cancel")
        assert again.status_code == 409 and "is Cancelled" in again.json()["error"]["message"]
        assert service.promote(stalled).status_code == 409


def test_a_child_killed_mid_import_fails_it_and_the_service_keeps_serving(
    serve: Serve, tmp_path: Path, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    server = sql_server(demo.path, faults=Faults(stall_seconds=60, when_sql_contains=MID_WORK_ITEMS))
    with serve() as service:
        promoted = service.import_(demo.url)
        assert service.wait(promoted)["state"] == "Validated"
        assert service.wait_promoted(promoted)["state"] == "Promoted"
        before = _checksum(service.production_rows())

        doomed = service.import_(server.ado_connection_string(encrypt=False))
        pid = _stalled_mid_table(service, server, doomed)["workerPid"]
        os.kill(pid, signal.SIGKILL)
        status = service.wait(doomed, timeout=30)
        assert status["state"] == "Failed" and status["workerPid"] is None
        assert status["failure"]["code"] == "worker-died"
        assert (
            "worker process running this import was killed by signal 9 (SIGKILL"
            in status["failure"]["reason"]
        )
        assert not service.staging_exists(doomed)
        assert _checksum(service.production_rows()) == before
        # The service goes on: it answers, and the freed worker runs the next import.
        assert service.client.get("/health").json()["status"] == "ok"
        assert service.wait(service.import_(demo.url))["state"] == "Validated"


def _mid_transaction(path: Path) -> bool:
    """Whether a write transaction on the SQLite store is under way and has written pages: the write lock
    is held and the write-ahead log is not empty (a committed transaction would have released the lock;
    the promotion's brief table check before it writes nothing)."""
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return False
    with sqlite3.connect(path, timeout=0, isolation_level=None) as probe:
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            assert "locked" in str(error), error
            return True
        probe.execute("ROLLBACK")
        return False


def test_a_child_killed_mid_promotion_leaves_production_unchanged(
    serve: Serve, tmp_path: Path, demo: DemoSource
) -> None:
    big = tmp_path / "big.db"
    write_demo_source(big, scale=150, seed=7)
    settings = Settings(data_dir=tmp_path / "var", batch_size=5000, demo_client_secret=DEMO_SECRET)
    with serve(settings=settings) as service:
        first = service.import_(demo.url)
        assert service.wait(first)["state"] == "Validated"
        assert service.wait_promoted(first)["state"] == "Promoted"
        before = _checksum(service.production_rows())
        production = service.settings.data_dir / "production" / "default.sqlite"

        request_id = service.import_(f"sqlite:///{big}")
        assert service.wait(request_id, timeout=300)["state"] == "Validated"
        wal = production.with_name(production.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # so pages there are the promotion's
        assert service.promote(request_id).status_code == 202
        pid = _until(lambda: service.status(request_id)["workerPid"], "the promotion's worker process")
        _until(lambda: _mid_transaction(production), "the promotion's transaction", timeout=120)
        os.kill(pid, signal.SIGKILL)
        status = service.wait(request_id, timeout=30)
        assert status["state"] == "PromotionFailed", status
        assert "worker process running this promotion was killed by signal 9" in status["failure"]["reason"]
        assert _checksum(service.production_rows()) == before
        assert service.client.get("/health").json()["status"] == "ok"

        # Promoting again finishes it: every row of the big firm is there, no duplicates.
        assert service.wait_promoted(request_id)["state"] == "Promoted"
        counts = {t: len(r) for t, r in service.production_rows().items()}
        assert all(counts[t] >= n for t, n in row_counts(big).items())


def test_cancel_of_a_queued_import_and_what_cannot_be_cancelled(
    serve: Serve, tmp_path: Path, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    server = sql_server(demo.path, faults=Faults(stall_seconds=60, when_sql_contains=MID_WORK_ITEMS))
    with serve(workers=1) as service:
        validated = service.import_(demo.url)
        assert service.wait(validated)["state"] == "Validated"
        stalled = service.import_(server.ado_connection_string(encrypt=False))
        _stalled_mid_table(service, server, stalled)  # the only worker is busy from now on

        queued = service.import_(demo.url)
        assert service.status(queued)["state"] == "Queued"
        response = service.client.post(f"/etl/import/{queued}/cancel")
        assert response.status_code == 202 and response.json()["state"] == "Cancelled"
        status = _until(lambda: (s := service.status(queued))["importFinishedAt"] and s, "the cancellation")
        assert status["state"] == "Cancelled" and status["importStartedAt"] is None  # it never ran

        # A promotion waiting for the busy worker is Promoting already: one transaction, not cancellable.
        assert service.promote(validated).status_code == 202
        refused = service.client.post(f"/etl/import/{validated}/cancel")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "invalid-state"
        message = refused.json()["error"]["message"]
        assert "is Promoting" in message and "one transaction" in message

        assert service.client.post(f"/etl/import/{stalled}/cancel").status_code == 202
        assert service.wait(validated)["state"] == "Promoted"  # the freed worker runs the promotion
        finished = service.client.post(f"/etl/import/{validated}/cancel")
        assert finished.status_code == 409 and "is Promoted" in finished.json()["error"]["message"]
        assert service.client.post(f"/etl/import/{'0' * 32}/cancel").status_code == 404
        outcomes = [
            (e["action"], e["outcome"], e["detail"])
            for e in service.client.get("/etl/audit").json()["items"]
            if e["action"] == "import-cancelled"
        ]
        assert sorted(outcomes) == sorted(
            [
                ("import-cancelled", "cancelled", "Queued"),
                ("import-cancelled", "refused", "Promoting"),
                ("import-cancelled", "cancelled", "Importing"),
                ("import-cancelled", "refused", "Promoted"),
            ]
        )


def test_one_promotion_per_tenant_at_a_time_while_imports_run_in_parallel(
    serve: Serve, tmp_path: Path, demo: DemoSource
) -> None:
    sources = []
    for seed in (1, 2, 3):
        path = tmp_path / f"firm{seed}.db"
        write_demo_source(path, scale=20, seed=seed)
        sources.append(path)
    with serve(workers=3) as service:
        ids = [service.import_(f"sqlite:///{path}") for path in sources]
        for request_id in ids:
            assert service.wait(request_id)["state"] == "Validated"
        for request_id in ids:  # all at once, with three workers free
            assert service.promote(request_id).status_code == 202
        for request_id in ids:
            assert service.wait(request_id)["state"] == "Promoted"
        platform = service.app.state.service.platform
        spans = sorted(
            (r["promotion_started_at"], r["promotion_finished_at"])
            for r in (platform.get(request_id, "default") for request_id in ids)
        )
        assert all(finished <= started for (_, finished), (started, _) in itertools.pairwise(spans)), spans
        imports = sorted(
            (r["import_started_at"], r["import_finished_at"])
            for r in (platform.get(request_id, "default") for request_id in ids)
        )
        assert imports[1][0] < imports[0][1], f"the imports ran one after another: {imports}"


def test_stopping_the_service_ends_its_running_and_waiting_jobs(
    serve: Serve, tmp_path: Path, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    from efimis_etl.jobs.state import Platform

    server = sql_server(demo.path, faults=Faults(stall_seconds=60, when_sql_contains=MID_WORK_ITEMS))
    with serve(workers=1) as service:
        running = service.import_(server.ado_connection_string(encrypt=False))
        pid = _stalled_mid_table(service, server, running)["workerPid"]
        waiting = service.import_(demo.url)
        staging = service.settings.data_dir / "staging"
        assert service.staging_exists(running)
    platform = Platform(service.settings.platform_url)
    for request_id in (running, waiting):
        request = platform.get(request_id, "default")
        assert (
            request is not None and request["state"] == "Failed" and request["failure_code"] == "interrupted"
        )
        assert "The service stopped" in request["failure_reason"]
    assert _gone(pid)
    assert not [p for p in staging.iterdir() if running in p.name]


def test_a_cancellation_left_unfinished_by_a_dead_service_is_finished_on_start(tmp_path: Path) -> None:
    from efimis_etl.jobs.state import Platform, State
    from efimis_etl.service import Caller
    from efimis_etl.service import Service as Use
    from efimis_etl.stores import make_stores

    settings = Settings(data_dir=tmp_path / "var")
    settings.data_dir.mkdir(parents=True)
    platform = Platform(settings.platform_url)
    platform.migrate()
    request_id = platform.create("default", "sqlite:///somewhere.db")
    assert platform.transition(request_id, [State.QUEUED], State.IMPORTING)
    make_stores(settings).close_staging(make_stores(settings).create_staging(request_id))
    assert platform.transition(request_id, [State.IMPORTING], State.CANCELLED)
    service = Use.embedded(settings)
    try:
        status = service.status(Caller("default", "test"), request_id)
        assert status["state"] == "Cancelled" and status["import_finished_at"] is not None
        assert not service.stores.staging_exists(request_id)
    finally:
        service.queue.stop()
