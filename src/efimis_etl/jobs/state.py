"""The platform's own records of import requests: state, timestamps, per-table progress, outcomes.

Connection strings are never stored here on the embedded default (only a description without the
password): the service holds the secret in memory and hands it to the job's child process through a pipe.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UnicodeText,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from efimis_etl import migrations
from efimis_etl.ids import new_request_id
from efimis_etl.stores import platform_engine
from efimis_etl.timestamps import UtcDateTime, seconds_between, utc_now


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
    REVERTED = "Reverted"


# A Reverted import may be promoted again: its objects come back with the same platform ids.
PROMOTABLE = frozenset({State.VALIDATED, State.PROMOTED, State.PROMOTION_FAILED, State.REVERTED})
VALIDATION_RAN = frozenset(
    {
        State.VALIDATED,
        State.VALIDATION_FAILED,
        State.PROMOTING,
        State.PROMOTED,
        State.PROMOTION_FAILED,
        State.REVERTED,
    }
)
RUNNING = frozenset({State.QUEUED, State.IMPORTING, State.VALIDATING, State.PROMOTING})
# A promotion is one transaction that finishes or rolls back on its own: only an import can be cancelled.
CANCELLABLE = frozenset({State.QUEUED, State.IMPORTING, State.VALIDATING})

# A request in these states went through its import and on to promotion: its import ended Validated.
PROMOTION_STATES = frozenset({State.PROMOTING, State.PROMOTED, State.PROMOTION_FAILED, State.REVERTED})
# Upper bounds (seconds) of the job duration histogram's buckets: from a small firm to a very large one.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


@dataclass(frozen=True)
class Durations:
    """How long jobs of one kind took: how many ended within each of DURATION_BUCKETS, all, the sum."""

    within: tuple[int, ...]
    count: int
    seconds: float


@dataclass(frozen=True)
class JobFigures:
    """What the platform database knows about all jobs, for the metrics: nothing per tenant or request."""

    requests: dict[str, int]  # by current state
    finished: dict[tuple[str, str], int]  # (kind, final state) → jobs
    durations: dict[str, Durations]  # kind → durations of its finished jobs (the last attempt's)
    rows: dict[str, tuple[int, int]]  # table → (rows read, rows loaded), over every recorded import


METADATA = MetaData()
IMPORT_REQUEST = Table(
    "import_request",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), nullable=False, index=True),
    Column("state", String(20), nullable=False),
    Column("source", UnicodeText, nullable=False),  # a description without any secret
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("import_started_at", UtcDateTime()),
    Column("import_finished_at", UtcDateTime()),
    Column("promotion_requested_at", UtcDateTime()),
    Column("promotion_started_at", UtcDateTime()),
    Column("promotion_finished_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False, default=0),  # how many times a worker started the import
    # Which process started each attempt: [{"attempt", "worker" (host:pid), "startedAt"}], oldest first.
    Column("attempt_workers", JSON),
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
    Column("at", UtcDateTime(), nullable=False),
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


def now() -> datetime:
    """The time stamped on requests and audit events: timezone-aware UTC (the columns refuse naive)."""
    return utc_now()


class Platform:
    """Repository of import requests on the platform database (SQLite file, or PostgreSQL scaled out)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = platform_engine(url)

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
            return _request(conn, request_id, tenant)

    def status(self, request_id: str, tenant: str) -> dict[str, Any] | None:
        """The request with its tables (`"tables"`), read on one connection: the status is asked for
        often, and opening a SQLite connection costs as much as both queries."""
        with self.engine.connect() as conn:
            row = _request(conn, request_id, tenant)
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

    def requests(
        self, tenant: str, *, state: State | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """The tenant's requests, newest first, with their rows and validation counts: (total, one page).

        The database reads the counts out of the validation summaries (no summary's findings are loaded)
        and sums the rows of the page's requests only: three queries, whatever the page's size."""
        r, t = IMPORT_REQUEST, IMPORT_TABLE
        where = [r.c.tenant == tenant] + ([r.c.state == state.value] if state is not None else [])
        page = (
            select(
                r.c.id,
                r.c.state,
                r.c.source,
                r.c.created_at,
                r.c.import_finished_at,
                r.c.promotion_finished_at,
                r.c.validation["errors"].as_integer().label("errors"),
                r.c.validation["warnings"].as_integer().label("warnings"),
            )
            .where(*where)
            .order_by(r.c.created_at.desc(), r.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(r).where(*where)).scalar_one()
            found = [dict(row) for row in conn.execute(page).mappings()]
            rows = {
                request_id: (tables, expected, loaded)
                for request_id, tables, expected, loaded in conn.execute(
                    select(
                        t.c.request_id, func.count(), func.sum(t.c.rows_expected), func.sum(t.c.rows_loaded)
                    )
                    .where(t.c.request_id.in_([f["id"] for f in found]))
                    .group_by(t.c.request_id)
                )
            }
        for request in found:
            request["tables"], request["rows_expected"], request["rows_loaded"] = rows.get(
                request["id"], (0, None, 0)
            )
        return int(total), found

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

    def job_figures(self) -> JobFigures:
        """Counts of requests, job outcomes, durations and rows over the whole platform database, for
        `GET /metrics`: the same from every API process, whichever worker ran the jobs."""
        r = IMPORT_REQUEST
        with self.engine.connect() as conn:
            requests = dict(conn.execute(select(r.c.state, func.count()).group_by(r.c.state)).all())
            imported = conn.execute(
                select(r.c.state, func.count()).where(r.c.import_finished_at.is_not(None)).group_by(r.c.state)
            ).all()
            promoted = conn.execute(
                select(r.c.state, func.count())
                .where(r.c.promotion_finished_at.is_not(None))
                .group_by(r.c.state)
            ).all()
            finished: dict[tuple[str, str], int] = {}
            for state, count in imported:
                outcome = State.VALIDATED.value if state in PROMOTION_STATES else state
                finished["import", outcome] = finished.get(("import", outcome), 0) + count
            for state, count in promoted:
                finished["promotion", state] = count
            durations = {
                "import": self._durations(conn, r.c.import_started_at, r.c.import_finished_at),
                "promotion": self._durations(conn, r.c.promotion_started_at, r.c.promotion_finished_at),
            }
            t = IMPORT_TABLE
            rows = conn.execute(
                select(t.c.name, func.sum(t.c.rows_read), func.sum(t.c.rows_loaded)).group_by(t.c.name)
            ).all()
        return JobFigures(
            requests=requests,
            finished=finished,
            durations=durations,
            rows={name: (int(read or 0), int(loaded or 0)) for name, read, loaded in rows},
        )

    @staticmethod
    def _durations(conn: Connection, started: ColumnElement[Any], finished: ColumnElement[Any]) -> Durations:
        """The buckets counted by the database itself: one row, whatever the number of requests."""
        seconds = seconds_between(started, finished)
        within = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
        row = conn.execute(
            select(func.count(), func.sum(seconds), *within).where(
                started.is_not(None), finished.is_not(None)
            )
        ).one()
        return Durations(
            within=tuple(int(n or 0) for n in row[2:]), count=int(row[0]), seconds=float(row[1] or 0)
        )


def _request(conn: Connection, request_id: str, tenant: str) -> dict[str, Any] | None:
    """The tenant's request, or None (another tenant's request is one that does not exist)."""
    query = select(IMPORT_REQUEST).where(IMPORT_REQUEST.c.id == request_id, IMPORT_REQUEST.c.tenant == tenant)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None
