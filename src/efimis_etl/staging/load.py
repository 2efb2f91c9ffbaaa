"""Loading a source into a staging store: connect, check, then copy every table in batches.

Progress is reported through two callbacks, so that an import records it in the platform database and
the pre-flight check (`efimis-etl validate`) can show it on the terminal.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, Generic, TypeVar

from efimis_etl.errors import SourceError
from efimis_etl.schema.model import ENTITIES, Entity
from efimis_etl.settings import ReadPolicy
from efimis_etl.source.connect import SourceConnection, explain_read_failure, is_permanent, open_source
from efimis_etl.source.connstr import Source
from efimis_etl.source.extract import (
    Position,
    check_conformance,
    check_schema_version,
    conformance_warnings,
    read_batches,
    source_columns,
    source_figures,
)
from efimis_etl.source.reconcile import Tally, differences
from efimis_etl.staging.measure import measure
from efimis_etl.stores.base import Loader

log = logging.getLogger(__name__)
T = TypeVar("T")

PlanCallback = Callable[[list[tuple[str, int]]], None]
ProgressCallback = Callable[[str, int], None]
ReconciledCallback = Callable[[str, dict[str, Any]], None]


def load_from_source(
    source: Source,
    staging: Loader,
    *,
    policy: ReadPolicy,
    on_plan: PlanCallback,
    on_progress: ProgressCallback,
    on_reconciled: ReconciledCallback | None = None,
) -> None:
    """Copy every table of the source into `staging` and prove it arrived whole, or raise a SourceError
    saying what to fix.

    A lost connection or a stalled batch is retried on a new connection, continuing after the last
    loaded batch, until `policy.retries` reconnections are used up.
    """
    reader = _Reader(source, policy)
    try:
        tables = reader.call(source_columns)
        reader.call(check_schema_version, tables)
        check_conformance(tables)
        warnings = conformance_warnings(reader.connection(), tables)
        sources = [(e, reader.call(source_figures, e)) for e in ENTITIES]
        on_plan([(e.name, figures.rows) for e, figures in sources])
        for entity in ENTITIES:
            if mine := [w for w in warnings if w[2] == entity.name]:
                staging.load(entity, None, mine)
        for entity, figures in sources:
            read = _copy_table(reader, entity, staging, on_progress)
            loaded = measure(staging, entity)
            problems = differences(entity, figures, read.figures(), loaded, set(read.rejected))
            if on_reconciled is not None:
                on_reconciled(
                    entity.name,
                    {
                        "verified": not problems,
                        "source": figures.as_json(),
                        "read": read.figures().as_json(),
                        "loaded": loaded.as_json(),
                    },
                )
            if problems:
                raise SourceError(
                    f"etl.{entity.name} did not arrive whole: {'; '.join(problems)}. Nothing was kept. Rows "
                    "without an ImportId, or rows changed while importing, cause this: give every row an "
                    "ImportId and do not change the tables during the import.",
                    code="reconciliation-failed",
                )
    finally:
        reader.close()


def _copy_table(reader: _Reader, entity: Entity, staging: Loader, on_progress: ProgressCallback) -> Tally:
    position, tally = Position(), Tally(entity)
    checks = staging.checks(entity)
    while not position.done:
        batches = read_batches(
            reader.connection(),
            entity,
            reader.policy.batch_size,
            checks,
            position,
            store_limit=staging.store_limit,
        )
        try:
            # The next batch is read and converted while this one is written: the source and the
            # staging store work at once (both drivers let go of the GIL while they wait).
            with Prefetched(batches) as prefetched:
                for batch in prefetched:
                    staging.load(entity, batch.converted.data, batch.converted.findings)
                    position = batch.resume
                    tally.merge(batch.tally)
                    on_progress(entity.name, tally.rows)
            position = replace(position, done=True)  # the reader ends only at the end of the table
        except reader.errors() as error:
            reader.lost(error, f"etl.{entity.name}")
    return tally


class Prefetched(Generic[T]):
    """An iterator run ahead in a thread of its own (at most one item waiting and one in hand, so memory
    stays bounded); its exceptions reach the consumer after the items before them. Leaving the block
    stops the thread and waits for it (it finishes the item in hand), and closes the iterator."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="efimis-prefetch", daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as error:
            self._put(("error", error))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _consume(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == "item":
                yield value
            elif kind == "end":
                return
            else:
                raise value


class _Reader:
    """The source connection, reopened after transient failures within the retry budget."""

    def __init__(self, source: Source, policy: ReadPolicy) -> None:
        self.source, self.policy = source, policy
        self.retries_left = policy.retries
        self._connection: SourceConnection | None = None
        self._errors: tuple[type[BaseException], ...] = ()

    def connection(self) -> SourceConnection:
        if self._connection is None:
            self._connection = open_source(self.source, stall_seconds=self.policy.stall_seconds)
            self._errors = self._connection.errors
        return self._connection

    def errors(self) -> tuple[type[BaseException], ...]:
        self.connection()
        return self._errors

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        while True:
            try:
                return function(self.connection(), *args)
            except self.errors() as error:
                self.lost(error, "the source")

    def lost(self, error: BaseException, where: str) -> None:
        """Give up (raise) when the failure is permanent or the budget is spent; else wait and reconnect."""
        self.close()
        explained = explain_read_failure(self.source, error)
        if is_permanent(error) or self.retries_left <= 0:
            tried = self.policy.retries - self.retries_left
            raise SourceError(
                f"{explained.message} (while reading {where}"
                + (f", after {tried} reconnection{'s' * (tried != 1)}" if tried else "")
                + ")",
                code=explained.code,
            ) from None
        attempt = self.policy.retries - self.retries_left
        self.retries_left -= 1
        delay = min(self.policy.backoff_seconds * 2**attempt, 30.0)
        log.warning("reading %s failed (%s); reconnecting in %.1f s", where, explained.message, delay)
        time.sleep(delay)
        while True:
            try:
                self.connection()
                return
            except SourceError as failed:
                if is_permanent(failed) or self.retries_left <= 0:
                    raise SourceError(
                        f"{failed.message} (reconnecting to read {where})", code=failed.code
                    ) from None
                self.retries_left -= 1
                delay = min(
                    self.policy.backoff_seconds * 2 ** (self.policy.retries - self.retries_left), 30.0
                )
                log.warning(
                    "reconnecting to read %s failed (%s); trying again in %.1f s", where, failed, delay
                )
                time.sleep(delay)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
