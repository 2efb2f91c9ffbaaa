"""Test support: waiting on observable conditions, PostgreSQL sources, a source an import waits on, and
staging plus validating a source through the stages' public functions (`stage_and_validate`).

* `until(condition, what)` polls `condition` until it holds, failing after a deadline, naming `what`.
* `copy_to_postgresql(sqlite_path, url)` copies a SQLite source (from `efimis_etl.demo`) into the `etl`
  schema of an empty PostgreSQL database, to be imported as a `postgresql://` development source.
* `hold_table(url, table)` locks one table of such a source for as long as its `with` block lasts: an
  import that reads it waits, observably (`Held.waiting()` counts the connections waiting for it), and
  carries on when the block ends. Tests use it to keep an import reliably running.
* `ManualClock` is a `jobs.retention.Clock` the test moves on (`advance`); `waits` counts the times the
  service's retention timer went to sleep on it, so a test sees a sweep end (`sweep_after_advance`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from efimis_etl.schema.model import ENTITIES, Column, Kind
from efimis_etl.schema.tables import render_ddl
from efimis_etl.settings import ReadPolicy
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import load_from_source
from efimis_etl.stores import TenantStores
from efimis_etl.validation.run import validate

T = TypeVar("T")


def until(condition: Callable[[], T], what: str, *, timeout: float = 60, interval: float = 0.02) -> T:
    """The first truthy value of `condition()`, polled every `interval` s; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_value(value: Any, column: Column) -> Any:
    if value is not None and column.kind is Kind.BOOLEAN:
        return bool(value)
    if isinstance(value, float):
        return repr(value)
    return value


def copy_to_postgresql(sqlite_path: Path, url: str) -> None:
    """Create the schema's `etl` tables in the (empty) PostgreSQL database and copy every row into them."""
    with psycopg.connect(_plain(url)) as target, sqlite3.connect(sqlite_path) as source:
        target.execute(render_ddl("postgresql"))  # type: ignore[arg-type]
        for entity in ENTITIES:
            columns = [c.name for c in entity.all_columns]
            rows = source.execute(f'SELECT {", ".join(columns)} FROM "{entity.name}"').fetchall()
            quoted = ", ".join(f'"{c}"' for c in columns)
            with target.cursor() as cursor:
                cursor.executemany(
                    f'INSERT INTO etl."{entity.name}" ({quoted}) VALUES ({", ".join(["%s"] * len(columns))})',
                    [
                        tuple(_pg_value(v, c) for v, c in zip(row, entity.all_columns, strict=True))
                        for row in rows
                    ],
                )


@dataclass
class Held:
    """A source table locked by the test (see `hold_table`)."""

    observer: psycopg.Connection[Any]
    table: str

    def waiting(self) -> int:
        """How many connections (other than the test's) are waiting for the table."""
        row = self.observer.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND relation = to_regclass(%s)",
            (f'etl."{self.table}"',),
        ).fetchone()
        return int(row[0]) if row else 0


@contextmanager
def hold_table(url: str, table: str) -> Iterator[Held]:
    """Lock etl.<table> (ACCESS EXCLUSIVE, in an open transaction) until the `with` block ends."""
    with (
        psycopg.connect(_plain(url)) as holder,
        psycopg.connect(_plain(url), autocommit=True) as observer,
    ):
        holder.execute(f'LOCK TABLE etl."{table}" IN ACCESS EXCLUSIVE MODE')
        try:
            yield Held(observer, table)
        finally:
            holder.rollback()  # releases the lock: whoever waited reads on


def stage(stores: TenantStores, source_url: str) -> str:
    """Load a source into a new staging store, as the import job does; its request id."""
    request_id = uuid.uuid4().hex
    loader = stores.create_staging(request_id)
    try:
        load_from_source(
            parse_connection_string(source_url),
            loader,
            policy=ReadPolicy(batch_size=500),
            on_plan=lambda _plan: None,
            on_progress=lambda _table, _rows: None,
        )
    finally:
        stores.close_staging(loader)
    return request_id


def stage_and_validate(
    stores: TenantStores, source_url: str, tenant: str = "default"
) -> tuple[str, dict[str, Any]]:
    """`stage`, then validate as the import job does: (request id, validation summary)."""
    request_id = stage(stores, source_url)
    return request_id, validate(stores, request_id, tenant, first=1000)


class ManualClock:
    """A `jobs.retention.Clock` whose time moves only when the test says (`advance`)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._changed = threading.Condition()
        self.waits = 0  # how many times a timer has gone to sleep on this clock

    def now(self) -> datetime:
        with self._changed:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._changed:
            self._now += delta
            self._changed.notify_all()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        with self._changed:
            self.waits += 1
            self._changed.notify_all()
            deadline = self._now + timedelta(seconds=seconds)
            # `stop` is an Event of its own, so it is polled; the clock's moves wake the wait at once.
            while self._now < deadline and not stop.is_set():
                self._changed.wait(0.05)
            return stop.is_set()

    def sweep_after_advance(self, delta: timedelta) -> None:
        """Once the timer sleeps, move the clock on by `delta` and return when the timer has run its sweep
        and gone back to sleep."""
        sleeping = until(lambda: self.waits, "the retention timer to wait on the clock")
        self.advance(delta)
        until(lambda: self.waits > sleeping, "the retention timer's sweep after the clock moved on")


def second_wave(path: Path) -> None:
    """A second wave of the demo firm, in its SQLite source: three rows changed (one of them a reference)
    and two added (the promotion preview and console tests)."""
    with sqlite3.connect(path) as source:
        source.execute("""UPDATE "Matter" SET Description = 'Renamed matter' WHERE ImportId = 'MAT-00001'""")
        source.execute("""UPDATE "Matter" SET ClientId = 'CL-00003' WHERE ImportId = 'MAT-00002'""")
        source.execute("""UPDATE "Client" SET Name = 'Jack Li-Smith' WHERE ImportId = 'CL-00001'""")
        for n in (1, 2):
            source.execute(
                """INSERT INTO "Client" (ImportId, ContactId, ClientCode, Name, IsActive)
                   VALUES (?, 'CON-00001', ?, ?, 1)""",
                (f"CL-9000{n}", f"C9000{n}", f"New client {n}"),
            )
