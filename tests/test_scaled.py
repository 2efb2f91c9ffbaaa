"""Scaled out: PostgreSQL platform database, procrastinate queue, real `efimis-etl worker` processes.

The API runs in the test process and only enqueues; workers are separate processes started (and killed
with SIGKILL) by the tests, as an operator would run them on other machines.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from conftest import DEMO_SECRET, DEV_SOURCES_OPT_IN, DemoSource, Serve, Service, fresh_database, token
from efimis_etl.demo import row_counts, write_demo_source
from efimis_etl.identity import EmbeddedIssuer
from efimis_etl.migrations import head
from efimis_etl.settings import Settings
from support import copy_to_postgresql, hold_table, until

CLI = [sys.executable, "-m", "efimis_etl.cli"]


@dataclass
class Cluster:
    settings: Settings
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]]
    logs: Path

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen(
            [*CLI, "worker", "--concurrency", str(concurrency)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)

    def platform(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.platform_database_url or "") as connection:
            cursor = connection.execute(sql, args)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with fresh_database("efimis_scaled") as platform_url:
        settings = Settings(
            data_dir=tmp_path / "var",
            batch_size=500,
            demo_client_secret=DEMO_SECRET,
            platform_database_url=platform_url,
            staging_url=platform_url,
            production_url=platform_url,
            secret_key=Fernet.generate_key().decode(),
            **DEV_SOURCES_OPT_IN,
        )
        env = {
            **os.environ,
            "EFIMIS_DATA_DIR": str(settings.data_dir),
            "EFIMIS_BATCH_SIZE": "500",
            "EFIMIS_PLATFORM_DATABASE_URL": platform_url,
            "EFIMIS_STAGING_URL": platform_url,
            "EFIMIS_PRODUCTION_URL": platform_url,
            "EFIMIS_SECRET_KEY": settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
            # The tests' sources are SQLite files and a loopback PostgreSQL: the operator's opt-in.
            "EFIMIS_ALLOW_DEV_SOURCES": "true",
            "EFIMIS_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        }
        migrated = subprocess.run(
            [*CLI, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert (
            f"revision none → {head()}" in migrated.stdout and "Job queue tables: created." in migrated.stdout
        )
        running = Cluster(settings, env, [], tmp_path)
        try:
            yield running
        finally:
            for worker in running.workers:
                if worker.poll() is None:
                    worker.terminate()
                    try:
                        worker.wait(15)
                    except subprocess.TimeoutExpired:
                        worker.kill()


@pytest.fixture
def api(cluster: Cluster, serve: Serve) -> Iterator[Service]:
    with serve(settings=cluster.settings, worker=False) as service:
        yield service


def _checksum(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, tuple[int, str]]:
    return {
        table: (len(values), hashlib.sha256(repr(sorted(values, key=repr)).encode()).hexdigest())
        for table, values in rows.items()
    }


def test_import_and_promotion_run_on_worker_processes(
    cluster: Cluster, api: Service, demo: DemoSource
) -> None:
    cluster.start_worker()
    request_id = api.import_(demo.url)
    assert api.wait(request_id)["state"] == "Validated"
    assert api.wait_promoted(request_id)["state"] == "Promoted"
    assert {t: len(r) for t, r in api.production_rows().items()} == row_counts(demo.path)
    # The connection string waited encrypted, and is gone once the import ended.
    assert cluster.platform("SELECT count(*) FROM import_secret") == [(0,)]
    assert {
        s
        for (s,) in cluster.platform("SELECT status FROM procrastinate_jobs WHERE task_name LIKE 'efimis.%%'")
    } <= {"succeeded", "todo", "doing"}


def test_the_queued_secret_is_encrypted_at_rest(cluster: Cluster, api: Service, demo: DemoSource) -> None:
    secret = "Unguessable-Pa55word"
    database = (cluster.settings.platform_database_url or "").rsplit("/", 1)[1]
    # No worker yet: the imports wait in the queue with their connection strings encrypted.
    plain = api.import_(demo.url)
    with_password = api.import_(f"postgresql://root:{secret}@127.0.0.1:5432/{database}")
    stored = cluster.platform("SELECT request_id, ciphertext FROM import_secret")
    assert {r for r, _ in stored} == {plain, with_password}
    assert all(secret.encode() not in bytes(c) and b"sqlite" not in bytes(c) for _, c in stored)
    cluster.start_worker()
    assert api.wait(plain)["state"] == "Validated"
    assert api.wait(with_password)["state"] == "Failed"  # that database has no etl tables
    assert cluster.platform("SELECT count(*) FROM import_secret") == [(0,)]


def _tenant_client(api: Service, tenant: str) -> httpx.Client:
    issuer = EmbeddedIssuer(api.settings, api.app.state.service.platform.engine)
    issuer.register(f"{tenant}-client", f"{tenant}-secret-1", tenant)
    client = httpx.Client(base_url=api.url, timeout=30)
    client.headers["Authorization"] = f"Bearer {token(client, f'{tenant}-client', f'{tenant}-secret-1')}"
    return client


def _import_workers(cluster: Cluster) -> dict[str, int | None]:
    """The procrastinate worker that took each import job, by request id."""
    return dict(
        cluster.platform(
            "SELECT args->>'request_id', worker_id FROM procrastinate_jobs WHERE task_name = 'efimis.import'"
        )
    )


def test_two_workers_process_four_imports_of_two_tenants(
    cluster: Cluster, api: Service, tmp_path: Path
) -> None:
    sources = []
    for i in range(4):
        path = tmp_path / f"firm{i}.db"
        write_demo_source(path, scale=2, seed=i)
        sources.append(path)
    acme = _tenant_client(api, "acme")
    clients = [api.client, acme, api.client, acme]  # firms 0 and 2 are the default tenant's, 1 and 3 acme's

    def submit(i: int, connection_string: str) -> str:
        response = clients[i].post("/etl/import", json={"connectionString": connection_string})
        assert response.status_code == 202, response.text
        return str(response.json()["requestId"])

    def wait(i: int, states: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = clients[i].get(f"/etl/import-status/{ids[i]}").json()
            if status["state"] in states:
                return dict(status)
            time.sleep(0.1)
        raise AssertionError(f"{ids[i]}: {status['state']}")

    ids: list[str] = []
    # Firms 0 and 1 are read from PostgreSQL copies whose WorkItem table the test keeps locked: the first
    # worker (two jobs at a time) is busy with both when the second starts, so the second must take 2 and 3.
    with ExitStack() as databases:
        with ExitStack() as locks:
            held = []
            for i in (0, 1):
                url = databases.enter_context(fresh_database("efimis_source"))
                copy_to_postgresql(sources[i], url)
                held.append(locks.enter_context(hold_table(url, "WorkItem")))
                ids.append(submit(i, url))
            cluster.start_worker(concurrency=2)
            until(lambda: all(h.waiting() for h in held), "the first worker to read both locked sources")
            first = _import_workers(cluster)
            assert first[ids[0]] is not None and first[ids[0]] == first[ids[1]], first
            cluster.start_worker(concurrency=2)
            ids += [submit(i, f"sqlite:///{sources[i]}") for i in (2, 3)]
            for i in (2, 3):
                status = wait(i, {"Validated", "ValidationFailed", "Failed"})
                assert status["state"] == "Validated", status["failure"]
            assert [wait(i, {"Importing"})["state"] for i in (0, 1)] == ["Importing"] * 2  # still held
        for i in range(4):  # the locks released, firms 0 and 1 are read too
            status = wait(i, {"Validated", "ValidationFailed", "Failed"})
            assert status["state"] == "Validated", status["failure"]
    for i in range(4):
        response = clients[i].post("/etl/promote-to-production", json={"requestId": ids[i]})
        assert response.status_code == 202, response.text
    for i in range(4):
        assert wait(i, {"Promoted", "PromotionFailed"})["state"] == "Promoted"
    # Each tenant's production holds exactly the union of its two firms (same ImportIds update in place).
    for tenant, mine in (("default", sources[0::2]), ("acme", sources[1::2])):
        counts = {t: len(r) for t, r in api.app.state.service.stores.production_rows(tenant).items()}
        expected: dict[str, int] = {}
        for table in counts:
            keys: set[str] = set()
            for path in mine:
                with sqlite3.connect(path) as source:
                    keys |= {k for (k,) in source.execute(f'SELECT ImportId FROM "{table}"')}
            expected[table] = len(keys)
        assert counts == expected, tenant
    # Both workers did some of the work: the first firms 0 and 1, the second firms 2 and 3.
    workers = _import_workers(cluster)
    assert workers[ids[0]] == workers[ids[1]] != workers[ids[2]] == workers[ids[3]], workers
    assert cluster.platform(
        "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE task_name = 'efimis.import'"
    ) == [(2,)]
    acme.close()


def _promotion_writing(cluster: Cluster) -> list[tuple[Any, ...]]:
    """The backends inside a promotion's transaction: holding an advisory lock (promotions of a tenant
    queue behind one) and a write lock on a table of a tenant's production schema."""
    return cluster.platform(
        "SELECT DISTINCT w.pid FROM pg_locks w "
        "JOIN pg_class c ON c.oid = w.relation JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_locks a ON a.pid = w.pid AND a.locktype = 'advisory' AND a.granted "
        "WHERE w.locktype = 'relation' AND w.mode = 'RowExclusiveLock' AND w.granted "
        "AND w.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND n.nspname LIKE 'tenant\\_%%'"
    )


def test_a_worker_killed_mid_promotion_leaves_production_exactly_right(
    cluster: Cluster, api: Service, tmp_path: Path
) -> None:
    source = tmp_path / "big.db"
    write_demo_source(source, scale=500)  # about 95,000 work items, 160,000 rows: a promotion of seconds
    first = cluster.start_worker()
    request_id = api.import_(f"sqlite:///{source}")
    assert api.wait(request_id, timeout=300)["state"] == "Validated"
    before = _checksum(api.production_rows())
    assert api.promote(request_id).status_code == 202
    until(lambda: _promotion_writing(cluster), "the promotion's transaction to write production", timeout=120)
    cluster.kill(first)
    assert api.status(request_id)["state"] == "Promoting"
    assert _checksum(api.production_rows()) == before, "a killed promotion must leave production as it was"

    cluster.start_worker()  # its heartbeats find the dead worker's job stalled and run it again
    status = api.wait(request_id, timeout=180)
    assert status["state"] == "Promoted", status["failure"]
    rows = api.production_rows()
    assert {t: len(r) for t, r in rows.items()} == row_counts(source)
    # A clean single promotion of the same data gives the same production, platform ids aside.
    again = api.wait_promoted(request_id)
    assert all(t["inserted"] == t["updated"] == 0 for t in again["promotion"]["tables"])
    assert _checksum(api.production_rows()) == _checksum(rows)


def test_a_worker_killed_mid_import_is_retried(cluster: Cluster, api: Service, tmp_path: Path) -> None:
    source = tmp_path / "big.db"
    write_demo_source(source, scale=350)  # about 66,000 work items, 110,000 rows
    first = cluster.start_worker()
    request_id = api.import_(f"sqlite:///{source}")
    until(lambda: any(t["rowsLoaded"] for t in api.status(request_id)["tables"]), "the first rows loaded")
    cluster.kill(first)
    assert api.status(request_id)["state"] == "Importing"  # the kill landed mid-import
    cluster.start_worker()
    status = api.wait(request_id, timeout=300)
    assert status["state"] == "Validated", status["failure"]
    assert {t["table"]: t["rowsLoaded"] for t in status["tables"]} == row_counts(source)
    assert status["attempts"] == 2  # the status shows the retry the README promises
    # ... and which worker started each attempt: the killed one, then the one that finished it.
    assert [(a["attempt"], a["worker"].rsplit(":", 1)[1]) for a in status["attemptWorkers"]] == [
        (1, str(first.pid)),
        (2, str(cluster.workers[-1].pid)),
    ]
    assert cluster.platform("SELECT attempts FROM import_request WHERE id = %s", request_id) == [(2,)]


def test_one_promotion_per_tenant_at_a_time(cluster: Cluster, api: Service, tmp_path: Path) -> None:
    cluster.start_worker(concurrency=3)
    cluster.start_worker(concurrency=3)
    ids = []
    for i in range(3):
        path = tmp_path / f"firm{i}.db"
        write_demo_source(path, scale=100, seed=i)  # about 19,000 work items, 32,000 rows
        ids.append(api.import_(f"sqlite:///{path}"))
    for request_id in ids:
        assert api.wait(request_id, timeout=300)["state"] == "Validated"
    for request_id in ids:  # all at once
        assert api.promote(request_id).status_code == 202
    for request_id in ids:
        assert api.wait(request_id, timeout=300)["state"] == "Promoted"
    spans = sorted(
        cluster.platform(
            "SELECT promotion_started_at, promotion_finished_at FROM import_request WHERE id = ANY(%s)", ids
        )
    )
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert finished <= started, f"promotions of one tenant overlapped: {spans}"


def test_service_refuses_to_start_scaled_out_without_a_secret_key(cluster: Cluster) -> None:
    env = {k: v for k, v in cluster.env.items() if k != "EFIMIS_SECRET_KEY"}
    for command in (["serve", "--port", "1"], ["worker"]):
        result = subprocess.run(
            [*CLI, *command], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2 and "EFIMIS_SECRET_KEY is required" in result.stderr, result.stderr


def test_service_refuses_a_platform_database_of_unknown_version(cluster: Cluster) -> None:
    cluster.platform("UPDATE alembic_version SET version_num = 'ffff9999'")
    for command in (["serve", "--port", "1"], ["worker"]):
        result = subprocess.run(
            [*CLI, *command], env=cluster.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "revision ffff9999" in result.stderr and "does not know" in result.stderr


def test_worker_prints_what_sources_it_accepts(cluster: Cluster) -> None:
    cluster.start_worker()
    log = cluster.logs / "worker-0.log"
    expected = [
        "Sources: SQL Server at public addresses; non-public networks allowed: 127.0.0.0/8, ::1/128 "
        "(EFIMIS_ALLOWED_NETWORKS)",
        "Development sources: sqlite:///, postgresql:// (EFIMIS_ALLOW_DEV_SOURCES)",
    ]
    deadline = time.monotonic() + 60
    while not all(line in log.read_text().splitlines() for line in expected):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_cancel_reaches_the_procrastinate_job_queued_or_running(
    cluster: Cluster, api: Service, tmp_path: Path
) -> None:
    source = tmp_path / "big.db"
    write_demo_source(source, scale=300)

    def job_status(request_id: str) -> list[tuple[Any, ...]]:
        return cluster.platform(
            "SELECT status FROM procrastinate_jobs WHERE queueing_lock = %s", f"import:{request_id}"
        )

    # No worker yet: the job is cancelled in the queue, its secret deleted, and nothing ever runs it.
    queued = api.import_(f"sqlite:///{source}")
    response = api.client.post(f"/etl/import/{queued}/cancel")
    assert response.status_code == 202 and response.json()["state"] == "Cancelled"
    assert response.json()["importFinishedAt"] is not None
    assert job_status(queued) == [("cancelled",)]
    assert cluster.platform("SELECT count(*) FROM import_secret WHERE request_id = %s", queued) == [(0,)]

    # Running: the worker aborts it between two batches, drops its staging schema, and goes on.
    cluster.start_worker()
    running = api.import_(f"sqlite:///{source}")
    deadline = time.monotonic() + 120
    while not any(t["rowsLoaded"] for t in api.status(running)["tables"]):
        assert time.monotonic() < deadline and api.status(running)["state"] in ("Queued", "Importing")
        time.sleep(0.02)
    started = time.monotonic()
    response = api.client.post(f"/etl/import/{running}/cancel")
    assert response.status_code == 202 and response.json()["state"] == "Cancelled"
    while not (status := api.status(running))["importFinishedAt"]:
        assert time.monotonic() - started < 30, "the worker did not stop the cancelled import"
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    print(f"\nscaled out: cancel of a running import stopped after {elapsed:.2f} s")
    assert elapsed < 5
    assert status["state"] == "Cancelled" and status["failure"] is None
    assert status["progress"]["rowsLoaded"] < status["progress"]["rowsExpected"]  # it stopped mid-way
    assert not api.staging_exists(running)
    deadline = time.monotonic() + 30
    while job_status(running) != [("aborted",)]:  # procrastinate records the job's end just after
        assert time.monotonic() < deadline, job_status(running)
        time.sleep(0.02)
    events = [
        (e["actor"], e["action"], e["outcome"])
        for e in api.client.get("/etl/audit").json()["items"]
        if e["requestId"] == running
    ]
    assert ("demo", "import-cancelled", "cancelled") in events
    assert ("worker", "import-finished", "Cancelled") in events
    assert api.status(queued)["state"] == "Cancelled"  # the worker never ran the cancelled job
    assert api.wait(api.import_(f"sqlite:///{source}"), timeout=300)["state"] == "Validated"
