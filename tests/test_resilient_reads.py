"""Reads that never lose, duplicate or hang: resumed after cut connections, stalls bounded, staging
reconciled with the source (through Microsoft's driver and the test SQL Server where it matters)."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

import tds_fixtures
from conftest import DemoSource, Serve
from efimis_devtools.tds_server import Faults
from efimis_etl.demo import row_counts
from efimis_etl.errors import SourceError
from efimis_etl.schema.model import Entity
from efimis_etl.settings import ReadPolicy
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import Prefetched, load_from_source
from efimis_etl.stores import Loader, SqliteStores

sql_server = tds_fixtures.sql_server


def test_connections_cut_several_times_in_one_table_still_give_exact_figures(
    serve: Serve, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    # Every connection may send 60 WorkItem rows, then the server drops it: with 50-row batches the
    # reader loses the connection mid-batch again and again, and must continue after the last loaded batch.
    server = sql_server(
        demo.path,
        faults=Faults(close_after_rows=60, rows_counted_per="connection", when_sql_contains="[WorkItem]"),
    )
    with serve(read_retries=10, retry_backoff_seconds=0.05) as service:
        request_id = service.import_(server.ado_connection_string(encrypt=False))
        status = service.wait(request_id, timeout=120)
        assert status["state"] == "Validated", status["failure"]
        counts = row_counts(demo.path)
        tables = {t["table"]: t for t in status["tables"]}
        assert {name: t["rowsLoaded"] for name, t in tables.items()} == counts
        work = tables["WorkItem"]["reconciliation"]
        assert work["verified"] and work["source"]["rows"] == work["loaded"]["rows"] == counts["WorkItem"]
        # SQL Server sums DECIMALs exactly, so its own totals are compared with what staging holds.
        assert work["source"]["sums"] == work["loaded"]["sums"] and work["source"]["sums"]["Amount"]
        with sqlite3.connect(demo.path) as source:
            ids = sorted(r[0] for r in source.execute("SELECT ImportId FROM WorkItem"))
        assert service.wait_promoted(request_id)["state"] == "Promoted"
        assert sorted(r[0] for r in service.production_rows()["WorkItem"]) == ids  # no gaps, no duplicates
    cut = [b for b in server.batches() if "[WorkItem]" in b and "TOP" in b]
    assert len(cut) >= 6  # several reconnections within the one table


def test_a_stalled_batch_is_cancelled_within_the_limit_then_fails_when_retries_run_out(
    serve: Serve, demo: DemoSource, sql_server: tds_fixtures.StartServer
) -> None:
    # Only the batches of WorkItem stall (counting and the other tables answer at once).
    server = sql_server(demo.path, faults=Faults(stall_seconds=30, when_sql_contains="TOP 50 etl.[WorkItem]"))
    with serve(stall_seconds=1, read_retries=1, retry_backoff_seconds=0.1) as service:
        started = time.monotonic()
        request_id = service.import_(server.ado_connection_string(encrypt=False))
        status = service.wait(request_id, timeout=60)
        elapsed = time.monotonic() - started
        assert status["state"] == "Failed"
        assert status["failure"]["code"] == "source-read-failed"
        reason = status["failure"]["reason"]
        assert "etl.WorkItem" in reason and "after 1 reconnection" in reason and "Command Timeout" in reason
        assert elapsed < 20, f"a 1 s stall limit took {elapsed:.1f} s to act on"  # two 1 s stalls and a pause
        assert not service.staging_exists(request_id)


class _LosingStore:
    """A real staging store that loses the last row of one table's first batch, as a fault or a bug would."""

    def __init__(self, store: Loader, table: str) -> None:
        self.store, self.table, self.lost = store, table, False
        self.store_limit = store.store_limit

    def checks(self, entity: Entity) -> list[Any]:
        return self.store.checks(entity)

    def load(self, entity: Entity, data: Any, findings: Any) -> None:
        if entity.name == self.table and data is not None and data.num_rows and not self.lost:
            data, self.lost = data.slice(0, data.num_rows - 1), True
        self.store.load(entity, data, findings)

    def reading(self) -> AbstractContextManager[Connection]:
        return self.store.reading()

    def import_id_digest(self, conn: Connection, entity: Entity) -> int:
        return self.store.import_id_digest(conn, entity)


def test_a_row_lost_from_staging_is_caught_by_reconciliation(tmp_path: Path, demo: DemoSource) -> None:
    stores = SqliteStores(tmp_path / "staging", tmp_path / "production")
    request_id = uuid.uuid4().hex
    store = stores.create_staging(request_id)
    reconciled: dict[str, dict[str, Any]] = {}
    with pytest.raises(SourceError) as failure:
        load_from_source(
            parse_connection_string(demo.url),
            _LosingStore(store, "Invoice"),
            policy=ReadPolicy(batch_size=50),
            on_plan=lambda plan: None,
            on_progress=lambda table, rows: None,
            on_reconciled=lambda table, figures: reconciled.update({table: figures}),
        )
    assert failure.value.code == "reconciliation-failed"
    message = str(failure.value)
    assert message.startswith("etl.Invoice did not arrive whole")
    assert f"the source has {row_counts(demo.path)['Invoice']} rows" in message
    assert "the ImportIds in staging are not the ones read" in message and "sum of Total" in message
    assert reconciled["Invoice"]["verified"] is False
    assert all(figures["verified"] for name, figures in reconciled.items() if name != "Invoice")
    stores.close_staging(store)
    stores.discard_staging(request_id)
    assert not stores.staging_exists(request_id)


def test_an_import_whose_figures_were_not_verified_cannot_be_promoted(serve: Serve, demo: DemoSource) -> None:
    with serve() as service:
        request_id = service.import_(demo.url)
        assert service.wait(request_id)["state"] == "Validated"
        platform = service.app.state.service.platform
        matter = next(t for t in platform.tables(request_id) if t["name"] == "Matter")
        platform.reconciled(request_id, "Matter", {**matter["reconciliation"], "verified": False})
        refused = service.promote(request_id)
        assert refused.status_code == 409 and "not all verified" in refused.json()["error"]["message"]


def test_a_file_that_is_not_a_database_fails_at_once(tmp_path: Path, serve: Serve) -> None:
    # Five reconnections 30 s apart would take minutes: a permanent failure must not wait for any.
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("These are meeting notes, not a SQLite database.\n" * 200)
    with serve(read_retries=5, retry_backoff_seconds=30) as service:
        request_id = service.import_(f"sqlite:///{not_a_database}")
        status = service.wait(request_id, timeout=20)
    assert status["state"] == "Failed"
    assert status["failure"] == {
        "code": "source-read-failed",
        "reason": "Reading the source failed: file is not a database (while reading the source)",
    }


def test_an_unknown_database_fails_at_once(serve: Serve) -> None:
    with serve(read_retries=5, retry_backoff_seconds=30) as service:
        missing = f"efimis_missing_{uuid.uuid4().hex[:8]}"
        request_id = service.import_(f"postgresql://root@127.0.0.1:5432/{missing}")
        status = service.wait(request_id, timeout=20)
    assert status["state"] == "Failed"
    assert status["failure"]["code"] == "database-not-found", status["failure"]
    assert f'database "{missing}" does not exist' in status["failure"]["reason"]


def test_a_login_refused_on_reconnecting_fails_at_once(
    tmp_path: Path, demo: DemoSource, sql_server: tds_fixtures.StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The connection drops mid-WorkItem (transient: one reconnection is right); the server then refuses
    # logins (permanent: the import must end there, not after the four reconnections left).
    cut = Faults(close_after_rows=60, rows_counted_per="connection", when_sql_contains="[WorkItem]")
    server = sql_server(demo.path, faults=cut)

    def progress(table: str, _rows: int) -> None:
        if table == "WorkItem":  # the first batch arrived; the next one is cut at row 60
            server.set_faults(dataclasses.replace(cut, refuse_logins=True))

    stores = SqliteStores(tmp_path / "staging", tmp_path / "production")
    store = stores.create_staging(uuid.uuid4().hex)
    caplog.set_level("WARNING", logger="efimis_etl.staging.load")
    try:
        with pytest.raises(SourceError) as failure:
            load_from_source(
                parse_connection_string(server.ado_connection_string(encrypt=False)),
                store,
                policy=ReadPolicy(batch_size=50, retries=5, backoff_seconds=0.05),
                on_plan=lambda plan: None,
                on_progress=progress,
            )
    finally:
        stores.close_staging(store)
    assert failure.value.code == "login-failed"
    assert str(failure.value).endswith("(reconnecting to read etl.WorkItem)")
    # One reconnection after the cut, and no second try after the refusal.
    warnings = [r.getMessage() for r in caplog.records if r.name == "efimis_etl.staging.load"]
    assert len(warnings) == 1 and "reconnecting in" in warnings[0], warnings


def test_the_reader_runs_one_batch_ahead_and_stops_when_loading_fails() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def batches() -> Iterator[int]:
        try:
            for n in range(100):
                produced.append(n)
                yield n
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="staging refused batch 3"), Prefetched(batches()) as items:
        for n in items:
            if n == 3:
                raise RuntimeError("staging refused batch 3")
    assert closed.is_set()  # the reader's generator (and so its query) was closed
    assert not [t for t in threading.enumerate() if t.name == "efimis-prefetch"]
    assert len(produced) <= 4 + 2  # batches 0-3 taken; at most one waiting in the queue and one in hand


def test_a_failure_reading_reaches_the_loader_after_the_batches_before_it() -> None:
    def batches() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("link lost")

    loaded: list[int] = []
    with pytest.raises(ConnectionError), Prefetched(batches()) as items:
        for n in items:
            loaded.append(n)
    assert loaded == [1, 2]
