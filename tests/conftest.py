"""Shared fixtures: a real service on a loopback port, demo sources, PostgreSQL databases."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr

from efimis_etl.api.app import create_app
from efimis_etl.demo import Planted, write_demo_source
from efimis_etl.jobs.retention import Clock
from efimis_etl.settings import Settings

FINAL = {"Validated", "ValidationFailed", "Failed", "Promoted", "PromotionFailed", "Cancelled"}
PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
DEMO_SECRET = "test-demo-client-secret"
# What an operator sets to let a scaled-out deployment read SQLite files and loopback servers (tests, demos).
DEV_SOURCES_OPT_IN: dict[str, Any] = {
    "allow_dev_sources": True,
    "allowed_networks": ["127.0.0.0/8", "::1/128"],
}


@dataclass
class Service:
    url: str
    client: httpx.Client
    settings: Settings
    app: Any

    def production_rows(self, tenant: str = "default") -> dict[str, list[tuple[Any, ...]]]:
        """Every production row of the tenant, by table, ordered by ImportId, values decoded."""
        return dict(self.app.state.service.stores.production_rows(tenant))

    def staging_exists(self, request_id: str) -> bool:
        return bool(self.app.state.service.stores.staging_exists(request_id))

    def import_(self, connection_string: str) -> str:
        response = self.client.post("/etl/import", json={"connectionString": connection_string})
        assert response.status_code == 202, response.text
        assert response.json()["message"] == "Import request queued successfully."
        return str(response.json()["requestId"])

    def promote(self, request_id: str) -> httpx.Response:
        return self.client.post("/etl/promote-to-production", json={"requestId": request_id})

    def status(self, request_id: str) -> dict[str, Any]:
        response = self.client.get(f"/etl/import-status/{request_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, request_id: str, *, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(request_id)
            if status["state"] in FINAL:
                return status
            time.sleep(0.05)
        raise AssertionError(f"{request_id} still {status['state']} after {timeout} s")

    def wait_promoted(self, request_id: str) -> dict[str, Any]:
        response = self.promote(request_id)
        assert response.status_code == 202, response.text
        assert response.json() == {"message": "Promotion to production started.", "requestId": request_id}
        return self.wait(request_id)


def token(client: httpx.Client, client_id: str = "demo", secret: str = DEMO_SECRET) -> str:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The service's settings on each backend: the embedded SQLite stores, and PostgreSQL stores (staging
    and production schemas) in a new database of their own, dropped afterwards (as `pg_url` does)."""
    embedded = Settings(data_dir=tmp_path / "var", batch_size=50, demo_client_secret=DEMO_SECRET)
    if request.param == "sqlite":
        yield embedded
        return
    with fresh_database("efimis_stores") as plain:
        url = plain.replace("postgresql://", "postgresql+psycopg://", 1)
        # Scaled out as an operator runs it: the platform and its job queue on PostgreSQL too, and
        # the jobs run by a real `efimis-etl worker` process (started with the service). The tests' sources
        # are SQLite files and loopback servers, which scaled out needs the operator's explicit opt-in.
        yield embedded.model_copy(
            update={
                "staging_url": url,
                "production_url": url,
                "platform_database_url": plain,
                "secret_key": SecretStr(Fernet.generate_key().decode()),
                **DEV_SOURCES_OPT_IN,
            }
        )


@contextmanager
def _serve(
    tmp_path: Path, *, worker: bool = True, clock: Clock | None = None, **overrides: Any
) -> Iterator[Service]:
    """The real app served by uvicorn on a loopback port, driven over HTTP with the demo client's token."""
    settings = overrides.pop("settings", None) or Settings(
        data_dir=tmp_path / "var", batch_size=50, demo_client_secret=DEMO_SECRET, **overrides
    )
    # Scaled out, a real worker process runs the jobs (unless the test starts and kills its own).
    worker_process = _start_worker(settings, tmp_path) if settings.scaled_out and worker else None
    port = _free_port()
    app = create_app(settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "service did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.headers["Authorization"] = f"Bearer {token(client)}"
            yield Service(url, client, settings, app)
    finally:
        server.should_exit = True
        thread.join(10)
        if worker_process is not None:
            worker_process.terminate()
            try:
                worker_process.wait(20)
            except subprocess.TimeoutExpired:
                worker_process.kill()


def process_environment(settings: Settings) -> dict[str, str]:
    """The settings as the EFIMIS_ variables another process reads them from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFIMIS_")}
    for name, value in settings.model_dump(exclude_defaults=True).items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"EFIMIS_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env


def _start_worker(settings: Settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    from efimis_etl.jobs.distributed import apply_queue_schema
    from efimis_etl.jobs.state import Platform

    Platform(settings.platform_url).migrate()
    apply_queue_schema(settings)
    log = (tmp_path / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "efimis_etl.cli", "worker", "--concurrency", "2"],
        env=process_environment(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def service(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    with _serve(tmp_path, settings=settings) as running:
        yield running


Serve = Callable[..., AbstractContextManager[Service]]
"""The type of the `serve` fixture."""


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """Start the real service yourself, when a test needs settings of its own (the `service` fixture
    takes the defaults on each backend):

        with serve(read_retries=0) as service: ...         # embedded default, with Settings overrides
        with serve(settings=mine, worker=False) as service: ...   # these settings; no worker process
        with serve(clock=clock) as service: ...            # the retention goes by this clock (support.ManualClock)

    The app is served by uvicorn on a loopback port (data under the test's tmp_path/var) and driven over
    HTTP with the demo client's token. Scaled out, a real `efimis-etl worker` process runs the jobs unless
    `worker=False` (the test starts and kills its own). Everything stops when the `with` block ends."""
    return partial(_serve, tmp_path)


@dataclass
class DemoSource:
    path: Path
    planted: list[Planted]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


@pytest.fixture
def demo(tmp_path: Path) -> DemoSource:
    path = tmp_path / "firm.db"
    return DemoSource(path, write_demo_source(path))


@pytest.fixture
def demo_with_errors(tmp_path: Path) -> DemoSource:
    path = tmp_path / "firm-with-errors.db"
    return DemoSource(path, write_demo_source(path, with_errors=True))


@contextmanager
def fresh_database(prefix: str = "efimis_test") -> Iterator[str]:
    """A new, empty PostgreSQL database (its `postgresql://` URL), dropped afterwards. Under CI=true
    PostgreSQL must be there: a missing server fails the test instead of skipping it."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true and is not reachable: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://root@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    with fresh_database() as url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
