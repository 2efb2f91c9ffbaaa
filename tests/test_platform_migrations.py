"""The platform database's migrations: a database at an older revision, with rows, upgraded and read back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect, text

from conftest import DemoSource, Serve, fresh_database
from efimis_etl import migrations
from efimis_etl.api.models import AuditEvent, status_view
from efimis_etl.identity import OAUTH_CLIENT
from efimis_etl.jobs.state import Platform

FINISHED = "a" * 32
QUEUED = "b" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def platform_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.sqlite'}"
        return
    with fresh_database("efimis_migrate") as url:
        # Sessions in another time zone than UTC: the instants must not move.
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET timezone TO 'America/New_York'")
        yield url


def _rows_at_0002(platform: Platform) -> None:
    """Rows as the previous version wrote them: timestamps as ISO-8601 text."""
    with platform.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO import_request (id, tenant, state, source, created_at, updated_at, "
                "import_started_at, import_finished_at, attempts, validation) VALUES "
                "(:finished, 'acme', 'Validated', 'sqlite:///firm.db', '2024-02-29T23:59:59.123Z', "
                "'2024-03-01T00:00:01.500Z', '2024-03-01T00:00:00.000Z', '2024-03-01T00:00:01.500Z', 2, NULL), "
                "(:queued, 'acme', 'Queued', 'sqlite:///other.db', '2024-03-01T08:00:00.000Z', "
                "'2024-03-01T08:00:00.000Z', NULL, NULL, 0, NULL)"
            ),
            {"finished": FINISHED, "queued": QUEUED},
        )
        connection.execute(
            text(
                "INSERT INTO audit_event (at, tenant, actor, action, request_id, outcome) VALUES "
                "('2024-02-29T23:59:59.123Z', 'acme', 'acme-client', 'import-submitted', :id, 'queued')"
            ),
            {"id": FINISHED},
        )
        connection.execute(
            text(
                "INSERT INTO oauth_client (client_id, secret_hash, tenant, created_at) VALUES "
                "('acme-client', 'scrypt$c2FsdA==$aGFzaA==', 'acme', '2024-01-01T00:00:00Z')"
            )
        )


def test_timestamps_become_utc_timestamps_and_keep_their_instants(platform_url: str) -> None:
    platform = Platform(platform_url)
    migrations.upgrade(platform.engine, "0002")
    _rows_at_0002(platform)

    migrations.upgrade(platform.engine)
    assert migrations.current(platform.engine) == migrations.head()

    finished = platform.get(FINISHED, "acme")
    assert finished is not None
    assert finished["created_at"] == datetime(2024, 2, 29, 23, 59, 59, 123000, tzinfo=UTC)
    assert finished["import_started_at"] == datetime(2024, 3, 1, tzinfo=UTC)
    assert finished["import_finished_at"] - finished["import_started_at"] == timedelta(seconds=1.5)
    assert all(
        finished[c].utcoffset() == timedelta(0)
        for c in ("created_at", "updated_at", "import_started_at", "import_finished_at")
    )
    queued = platform.get(QUEUED, "acme")
    assert (
        queued is not None and queued["import_started_at"] is None and queued["promotion_finished_at"] is None
    )

    # The API shows them exactly as before, and the attempts the row counted.
    shown = status_view({**finished, "tables": []}).model_dump(mode="json", by_alias=True)
    assert shown["createdAt"] == "2024-02-29T23:59:59.123Z"
    assert shown["importFinishedAt"] == "2024-03-01T00:00:01.500Z"
    assert shown["promotionRequestedAt"] is None and shown["attempts"] == 2
    total, events = platform.audit_events("acme", offset=0, limit=10)
    assert total == 1
    assert AuditEvent.model_validate(events[0]).model_dump(mode="json")["at"] == "2024-02-29T23:59:59.123Z"
    with platform.engine.connect() as connection:
        client = connection.execute(OAUTH_CLIENT.select()).mappings().one()
    assert client["created_at"] == datetime(2024, 1, 1, tzinfo=UTC)

    # Real timestamp columns now, NOT NULL where they were, and the tenant indexes kept.
    schema = inspect(platform.engine)
    columns = {c["name"]: c for c in schema.get_columns("import_request")}
    assert {type(columns[c]["type"]).__name__ for c in ("created_at", "promotion_finished_at")} <= {
        "DATETIME",
        "TIMESTAMP",
    }
    assert not columns["created_at"]["nullable"] and columns["import_started_at"]["nullable"]
    assert any(i["column_names"] == ["tenant"] for i in schema.get_indexes("import_request"))
    assert any(i["column_names"] == ["tenant"] for i in schema.get_indexes("audit_event"))

    # New rows sort among the converted ones by time, in SQL.
    newest = platform.create("acme", "sqlite:///third.db")
    with platform.engine.connect() as connection:
        order = connection.execute(text("SELECT id FROM import_request ORDER BY created_at")).scalars().all()
    assert order == [FINISHED, QUEUED, newest]


def test_the_status_shows_attempts_and_utc_timestamps(serve: Serve, tmp_path: Path, demo: DemoSource) -> None:
    with serve() as service:
        before = datetime.now(UTC)
        request_id = service.import_(demo.url)
        status = service.wait(request_id)
    assert status["state"] == "Validated" and status["attempts"] == 1
    for field in ("createdAt", "updatedAt", "importStartedAt", "importFinishedAt"):
        shown = status[field]
        assert shown.endswith("Z") and len(shown) == len("2024-05-01T09:30:00.123Z"), shown
        assert datetime.fromisoformat(shown) >= before - timedelta(seconds=1)
    assert status["createdAt"] <= status["importStartedAt"] <= status["importFinishedAt"]
