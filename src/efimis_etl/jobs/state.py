"""The platform's own records of import requests: state, timestamps, per-table progress, outcomes.

Connection strings are never stored here on the embedded default (only a description without the
password): the service holds the secret in memory and hands it to the job's child process through a pipe.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UnicodeText,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)

from efimis_etl import migrations
from efimis_etl.ids import new_request_id
from efimis_etl.stores.sqlite import sqlite_engine


class State(enum.StrEnum):
    QUEUED = "Queued"
    IMPORTING = "Importing"
    VALIDATING = "Validating"
    VALIDATED = "Validated"
    VALIDATION_FAILED = "ValidationFailed"
    FAILED = "Failed"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    PROMOTION_FAILED = "PromotionFailed"
    CANCELLED = "Cancelled"


PROMOTABLE = frozenset({State.VALIDATED, State.PROMOTED, State.PROMOTION_FAILED})
VALIDATION_RAN = frozenset(
    {State.VALIDATED, State.VALIDATION_FAILED, State.PROMOTING, State.PROMOTED, State.PROMOTION_FAILED}
)
RUNNING = frozenset({State.QUEUED, State.IMPORTING, State.VALIDATING, State.PROMOTING})
# A promotion is one transaction that finishes or rolls back on its own: only an import can be cancelled.
CANCELLABLE = frozenset({State.QUEUED, State.IMPORTING, State.VALIDATING})

METADATA = MetaData()
IMPORT_REQUEST = Table(
    "import_request",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), nullable=False, index=True),
    Column("state", String(20), nullable=False),
    Column("source", UnicodeText, nullable=False),  # a description without any secret
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("import_started_at", String(32)),
    Column("import_finished_at", String(32)),
    Column("promotion_requested_at", String(32)),
    Column("promotion_started_at", String(32)),
    Column("promotion_finished_at", String(32)),
    Column("attempts", Integer, nullable=False, default=0),  # how many times a worker started the import
    Column("failure_code", String(60)),
    Column("failure_reason", UnicodeText),
    Column("validation", JSON),
    Column("promotion", JSON),
)
IMPORT_TABLE = Table(
    "import_table",
    METADATA,
    Column("request_id", String(32), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(60), nullable=False),
    Column("rows_expected", Integer),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_loaded", Integer, nullable=False, default=0),
    Column("reconciliation", JSON),  # source / read / loaded figures, and whether they agree
    PrimaryKeyConstraint("request_id", "name"),
)


AUDIT_EVENT = Table(
    "audit_event",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("tenant", String(63), nullable=False, index=True),
    Column("actor", String(100), nullable=False),  # the client id, or "worker" for job outcomes
    Column("action", String(40), nullable=False),
    Column("request_id", String(32)),
    Column("remote_address", String(64)),
    Column("outcome", String(40), nullable=False),
    Column("detail", UnicodeText),  # never a secret: descriptions and reasons are redacted before this
)


IMPORT_SECRET = Table(
    "import_secret",
    METADATA,
    Column("request_id", String(32), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),  # the connection string, Fernet-encrypted
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _psycopg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


class Platform:
    """Repository of import requests on the platform database (SQLite file, or PostgreSQL scaled out)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.engine: Engine = sqlite_engine(Path(url.removeprefix("sqlite:///")))
        else:
            self.engine = create_engine(_psycopg(url), pool_pre_ping=True)

    def migrate(self) -> None:
        migrations.upgrade(self.engine)

    def check_version(self) -> None:
        migrations.check(self.engine)

    def save_secret(self, request_id: str, ciphertext: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(IMPORT_SECRET).values(request_id=request_id, ciphertext=ciphertext))

    def secret(self, request_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(IMPORT_SECRET.c.ciphertext).where(IMPORT_SECRET.c.request_id == request_id)
            ).scalar()
            return bytes(value) if value is not None else None

    def delete_secret(self, request_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(IMPORT_SECRET).where(IMPORT_SECRET.c.request_id == request_id))

    def restart_import(self, request_id: str) -> None:
        """Forget a dead attempt's progress so that a retried job starts the import afresh."""
        with self.engine.begin() as conn:
            conn.execute(delete(IMPORT_TABLE).where(IMPORT_TABLE.c.request_id == request_id))
            conn.execute(
                update(IMPORT_REQUEST)
                .where(
                    IMPORT_REQUEST.c.id == request_id,
                    IMPORT_REQUEST.c.state.in_([State.IMPORTING, State.VALIDATING]),
                )
                .values(state=State.QUEUED, updated_at=now())
            )

    def create(self, tenant: str, source: str) -> str:
        request_id = new_request_id()
        stamp = now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(IMPORT_REQUEST).values(
                    id=request_id,
                    tenant=tenant,
                    state=State.QUEUED,
                    source=source,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        return request_id

    def get(self, request_id: str, tenant: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(IMPORT_REQUEST).where(
                        IMPORT_REQUEST.c.id == request_id, IMPORT_REQUEST.c.tenant == tenant
                    )
                )
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def status(self, request_id: str, tenant: str) -> dict[str, Any] | None:
        """The request with its tables (`"tables"`), read on one connection: the status is asked for
        often, and opening a SQLite connection costs as much as both queries."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(IMPORT_REQUEST).where(
                        IMPORT_REQUEST.c.id == request_id, IMPORT_REQUEST.c.tenant == tenant
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            tables = conn.execute(
                select(IMPORT_TABLE)
                .where(IMPORT_TABLE.c.request_id == request_id)
                .order_by(IMPORT_TABLE.c.position)
            ).mappings()
            return {**row, "tables": [dict(t) for t in tables]}

    def tables(self, request_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(IMPORT_TABLE)
                .where(IMPORT_TABLE.c.request_id == request_id)
                .order_by(IMPORT_TABLE.c.position)
            ).mappings()
            return [dict(r) for r in rows]

    def transition(self, request_id: str, allowed: Iterable[State], to: State, **fields: Any) -> bool:
        """Move to `to` only from one of `allowed` (compare-and-set); False if the state was another."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(IMPORT_REQUEST)
                .where(
                    IMPORT_REQUEST.c.id == request_id, IMPORT_REQUEST.c.state.in_([s.value for s in allowed])
                )
                .values(state=to, updated_at=now(), **fields)
            )
            return result.rowcount == 1

    def mark(self, request_id: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(IMPORT_REQUEST)
                .where(IMPORT_REQUEST.c.id == request_id)
                .values(updated_at=now(), **fields)
            )

    def mark_stopped(self, request_id: str) -> bool:
        """Record that a cancelled import's job has stopped and its staging store is gone (its
        `import_finished_at`); False if that was recorded already or the request is not Cancelled."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(IMPORT_REQUEST)
                .where(
                    IMPORT_REQUEST.c.id == request_id,
                    IMPORT_REQUEST.c.state == State.CANCELLED,
                    IMPORT_REQUEST.c.import_finished_at.is_(None),
                )
                .values(updated_at=now(), import_finished_at=now())
            )
            return result.rowcount == 1

    def plan_tables(self, request_id: str, expected: list[tuple[str, int]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(IMPORT_TABLE),
                [
                    {"request_id": request_id, "position": i, "name": name, "rows_expected": n}
                    for i, (name, n) in enumerate(expected)
                ],
            )

    def progress(self, request_id: str, table: str, rows_read: int, rows_loaded: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(IMPORT_TABLE)
                .where(IMPORT_TABLE.c.request_id == request_id, IMPORT_TABLE.c.name == table)
                .values(rows_read=rows_read, rows_loaded=rows_loaded)
            )
            conn.execute(
                update(IMPORT_REQUEST).where(IMPORT_REQUEST.c.id == request_id).values(updated_at=now())
            )

    def running(self, tenant: str) -> int:
        """How many imports of the tenant are queued or running."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        IMPORT_REQUEST.c.tenant == tenant,
                        IMPORT_REQUEST.c.state.in_([State.QUEUED, State.IMPORTING, State.VALIDATING]),
                    )
                ).scalar_one()
            )

    def audit(
        self,
        tenant: str,
        actor: str,
        action: str,
        outcome: str,
        *,
        request_id: str | None = None,
        remote_address: str | None = None,
        detail: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(AUDIT_EVENT).values(
                    at=now(),
                    tenant=tenant,
                    actor=actor,
                    action=action,
                    request_id=request_id,
                    remote_address=remote_address,
                    outcome=outcome,
                    detail=detail,
                )
            )

    def audit_events(self, tenant: str, *, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        with self.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(AUDIT_EVENT).where(AUDIT_EVENT.c.tenant == tenant)
            ).scalar_one()
            rows = conn.execute(
                select(AUDIT_EVENT)
                .where(AUDIT_EVENT.c.tenant == tenant)
                .order_by(AUDIT_EVENT.c.id.desc())
                .offset(offset)
                .limit(limit)
            ).mappings()
            return int(total), [dict(r) for r in rows]

    def reconciled(self, request_id: str, table: str, figures: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(IMPORT_TABLE)
                .where(IMPORT_TABLE.c.request_id == request_id, IMPORT_TABLE.c.name == table)
                .values(reconciliation=figures)
            )

    def all_verified(self, request_id: str) -> bool:
        """Every table's figures were reconciled and agreed: the only way an import may be promoted."""
        tables = self.tables(request_id)
        return bool(tables) and all((t["reconciliation"] or {}).get("verified") is True for t in tables)

    def interrupted(self) -> list[dict[str, Any]]:
        """Requests a previous process left running, or cancelled before their job had stopped: their
        jobs died with it."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(IMPORT_REQUEST.c.id, IMPORT_REQUEST.c.tenant, IMPORT_REQUEST.c.state).where(
                    IMPORT_REQUEST.c.state.in_([s.value for s in RUNNING])
                    | (
                        (IMPORT_REQUEST.c.state == State.CANCELLED)
                        & IMPORT_REQUEST.c.import_finished_at.is_(None)
                    )
                )
            ).mappings()
            return [dict(r) for r in rows]
