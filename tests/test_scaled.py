"""Scaled out: PostgreSQL platform database, procrastinate queue, real `efimis-etl worker` processes.

The API runs in the test process and only enqueues; workers are separate processes started (and killed
with SIGKILL) by the tests, as an operator would run them on other machines.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from conftest import DEMO_SECRET, DemoSource, Service, _serve, fresh_database, token
from efimis_etl.demo import row_counts, write_demo_source
from efimis_etl.identity import EmbeddedIssuer
from efimis_etl.migrations import head
from efimis_etl.settings import Settings

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
        )
        env = {
            **os.environ,
            "EFIMIS_DATA_DIR": str(settings.data_dir),
            "EFIMIS_BATCH_SIZE": "500",
            "EFIMIS_PLATFORM_DATABASE_URL": platform_url,
            "EFIMIS_STAGING_URL": platform_url,
            "EFIMIS_PRODUCTION_URL": platform_url,
            "EFIMIS_SECRET_KEY": settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
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
def api(cluster: Cluster, tmp_path: Path) -> Iterator[Service]:
    with _serve(tmp_path, settings=cluster.settings, worker=False) as service:
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


def test_two_workers_process_four_imports_of_two_tenants(
    cluster: Cluster, api: Service, tmp_path: Path
) -> None:
    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=2)
    sources = []
    for i in range(4):
        path = tmp_path / f"firm{i}.db"
        write_demo_source(path, scale=2, seed=i)
        sources.append(path)
    acme = _tenant_client(api, "acme")
    ids = []
    for i, path in enumerate(sources):
        client = api.client if i % 2 == 0 else acme
        response = client.post("/etl/import", json={"connectionString": f"sqlite:///{path}"})
        assert response.status_code == 202
        ids.append((client, response.json()["requestId"]))

    def wait(client: httpx.Client, request_id: str, states: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = client.get(f"/etl/import-status/{request_id}").json()
            if status["state"] in states:
                return dict(status)
            time.sleep(0.1)
        raise AssertionError(f"{request_id}: {status['state']}")

    for client, request_id in ids:
        assert wait(client, request_id, {"Validated", "ValidationFailed", "Failed"})["state"] == "Validated"
        assert client.post("/etl/promote-to-production", json={"requestId": request_id}).status_code == 202
    for client, request_id in ids:
        assert wait(client, request_id, {"Promoted", "PromotionFailed"})["state"] == "Promoted"
    # Each tenant's production holds exactly the union of its two firms (same ImportIds update in place).
    for tenant, mine in (("default", sources[0::2]), ("acme", sources[1::2])):
        counts = {t: len(r) for t, r in api.app.state.service.stores.production_rows(tenant).items()}
        import sqlite3

        expected: dict[str, int] = {}
        for table in counts:
            keys: set[str] = set()
            for path in mine:
                with sqlite3.connect(path) as source:
                    keys |= {k for (k,) in source.execute(f'SELECT ImportId FROM "{table}"')}
            expected[table] = len(keys)
        assert counts == expected, tenant
    # Both workers did some of the work.
    workers = cluster.platform(
        "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE task_name = 'efimis.import'"
    )
    assert workers[0][0] >= 1
    acme.close()


def test_a_worker_killed_mid_promotion_leaves_production_exactly_right(
    cluster: Cluster, api: Service, tmp_path: Path
) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from synthetic import write_synthetic_firm

    source = tmp_path / "big.db"
    write_synthetic_firm(source, 150_000)
    first = cluster.start_worker()
    request_id = api.import_(f"sqlite:///{source}")
    assert api.wait(request_id, timeout=300)["state"] == "Validated"
    assert api.promote(request_id).status_code == 202
    deadline = time.monotonic() + 60
    while not cluster.platform("SELECT promotion_started_at FROM import_request WHERE id = %s", request_id)[
        0
    ][0]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # inside the promotion's transaction
    cluster.kill(first)
    assert api.status(request_id)["state"] == "Promoting"
    assert not any(api.production_rows().values()), "a killed promotion must leave production as it was"

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
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from synthetic import write_synthetic_firm

    source = tmp_path / "big.db"
    write_synthetic_firm(source, 100_000)
    first = cluster.start_worker()
    request_id = api.import_(f"sqlite:///{source}")
    deadline = time.monotonic() + 60
    while not any(t["rowsLoaded"] for t in api.status(request_id)["tables"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cluster.kill(first)
    cluster.start_worker()
    status = api.wait(request_id, timeout=300)
    assert status["state"] == "Validated", status["failure"]
    assert {t["table"]: t["rowsLoaded"] for t in status["tables"]} == row_counts(source)
    assert cluster.platform("SELECT attempts FROM import_request WHERE id = %s", request_id) == [(2,)]


def test_one_promotion_per_tenant_at_a_time(cluster: Cluster, api: Service, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from synthetic import write_synthetic_firm

    cluster.start_worker(concurrency=3)
    cluster.start_worker(concurrency=3)
    ids = []
    for i in range(3):
        path = tmp_path / f"firm{i}.db"
        write_synthetic_firm(path, 30_000)
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
