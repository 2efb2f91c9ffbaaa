"""The embedded default's stores: each staging store and each tenant's production store a SQLite file.

`staging/<requestId>.sqlite` and `production/<tenant>.sqlite` under the data directory. SQLAlchemy is given
the transaction boundaries (pysqlite's own implicit BEGIN is switched off), so that a `with
engine.begin()` block is exactly one SQLite transaction and ATTACHed databases share it atomically: the
production store is attached to a staging store for validation, and the staging store to the production
store for promotion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, create_engine, event, insert, select
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from efimis_etl.digest import DIGEST_MODULUS, import_id_digest
from efimis_etl.errors import Rejected
from efimis_etl.ids import checked_request_id, is_request_id
from efimis_etl.schema.model import ENTITIES, Entity, Kind
from efimis_etl.schema.tables import MONEY_SCALE, PRODUCTION, STAGING, to_scaled
from efimis_etl.settings import Settings
from efimis_etl.stores.base import (
    FINDING,
    FINDING_COLUMNS,
    FINDINGS,
    ID_SCHEMA,
    META,
    PROMOTION_LOG,
    REVISIONS,
    STAGED_SCHEMA,
)
from efimis_etl.stores.sql import EXACT_SUM, INT64_MAX, SQLITE_MONEY_LIMIT, ExactSum

PRODUCTION_SCHEMA = "production"  # where validation finds the attached production store
_SUFFIXES = ("", "-wal", "-shm", "-journal")


def sqlite_engine(
    path: Path,
    *,
    attach: dict[str, Path] | None = None,
    readonly: bool = False,
    attach_readonly: bool = False,
) -> Engine:
    """An engine on a SQLite file; `attach` maps schema names to further files opened with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # URI file names, so that an attached store can be opened read-only (`mode=ro`) too.
    url = f"sqlite:///file:{quote(str(path))}?{'mode=ro&' if readonly else ''}uri=true"
    # NullPool: every store is opened by one job at a time, and a pooled handle would keep files
    # (and their locks) open after a job is finished with them or has deleted them.
    engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30})
    attachments = {
        name: f"file:{quote(str(file))}" + ("?mode=ro" if attach_readonly else "")
        for name, file in (attach or {}).items()
    }

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_connection.cursor()
        if not readonly:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        dbapi_connection.create_window_function(EXACT_SUM, 1, ExactSum)  # type: ignore[attr-defined]
        for name, uri in attachments.items():
            cursor.execute("ATTACH DATABASE ? AS " + name, (uri,))
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at the start, so two writers queue instead of deadlocking.
        connection.exec_driver_sql("BEGIN" if readonly or attach_readonly else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def _disposing(engine: Engine) -> Iterator[Engine]:
    try:
        yield engine
    finally:
        engine.dispose()


def _scaled(value: Decimal) -> int:
    scaled = to_scaled(value)  # exact: values arrive quantized to 4 places (source.values)
    if abs(scaled) > INT64_MAX:
        raise Rejected(
            "precision",
            f"beyond ±{SQLITE_MONEY_LIMIT}, the most the embedded (SQLite) store holds exactly; import into "
            "the PostgreSQL stores (EFIMIS_STAGING_URL), which hold all of DECIMAL(19,4)",
        )
    return scaled


# The per-value check of each kind the store may refuse (`source.columnar` calls it when a column of a batch
# goes beyond `SQLITE_MONEY_LIMIT`, for the finding).
_CHECKS: dict[Kind, Callable[[Any], Any]] = {Kind.MONEY: _scaled, Kind.RATE: _scaled}
_SCALE = pa.scalar(Decimal(10) ** MONEY_SCALE, pa.decimal128(MONEY_SCALE + 1, 0))


def _stored(kind: Kind, column: pa.Array) -> list[Any]:
    """An Arrow column as SQLite keeps it: money as integer 1/10,000ths, dates as ISO text, booleans 0/1."""
    match kind:
        case Kind.MONEY | Kind.RATE:
            column = pc.multiply(column, _SCALE).cast(pa.int64())  # exact: within SQLITE_MONEY_LIMIT
        case Kind.DATE:
            column = column.cast(pa.string())
        case Kind.BOOLEAN:
            column = column.cast(pa.int64())
    return column.to_pylist()


_FINDING_SQL = (
    f'INSERT INTO "{FINDING.name}" ({", ".join(FINDING_COLUMNS)}) '
    f'VALUES ({", ".join("?" * len(FINDING_COLUMNS))})'
)


@cache
def _insert_sql(entity: Entity) -> str:
    names = ", ".join(f'"{c.name}"' for c in entity.all_columns)
    return f'INSERT INTO "{entity.name}" ({names}) VALUES ({", ".join("?" * len(entity.all_columns))})'


class SqliteStaging:
    """A staging store open for loading (a `stores.base.Loader`): rows go in with executemany, values
    encoded as SQLite keeps them exactly. One connection for the whole load: a SQLite file's last
    connection closing checkpoints its write-ahead log, which after every batch would cost more than the
    batch."""

    store_limit = SQLITE_MONEY_LIMIT

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn = engine.connect()

    @staticmethod
    def checks(entity: Entity) -> list[Callable[[Any], Any] | None]:
        return [_CHECKS.get(c.kind) for c in entity.all_columns]

    def load(self, entity: Entity, data: pa.RecordBatch | None, findings: Sequence[tuple[Any, ...]]) -> None:
        with self._conn.begin():
            if data is not None and data.num_rows:
                columns = [_stored(c.kind, a) for c, a in zip(entity.all_columns, data.columns, strict=True)]
                self._conn.exec_driver_sql(_insert_sql(entity), list(zip(*columns, strict=True)))
            if findings:
                self._conn.exec_driver_sql(_FINDING_SQL, list(findings))

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._conn.begin():
            yield self._conn

    def close(self) -> None:
        self._conn.close()


    def import_id_digest(self, conn: Connection, entity: Entity) -> int:
        """Read back a chunk at a time and digested by the reader's own code: SQLite has no such hash."""
        # The driver's own cursor, in the same transaction: no per-row result processing.
        cursor = conn.connection.driver_connection.execute(f'SELECT "ImportId" FROM "{entity.name}"')  # type: ignore[union-attr]
        digest = 0
        while rows := cursor.fetchmany(100_000):
            digest += import_id_digest(pa.array([row[0] for row in rows], pa.large_string()))
        return digest % DIGEST_MODULUS


class SqliteStores:
    """Staging stores under `staging_dir`, production stores under `production_dir`."""

    def __init__(self, staging_dir: Path, production_dir: Path, *, retention_hours: float = 168) -> None:
        self.staging_dir, self.production_dir = staging_dir, production_dir
        self.retention = dt.timedelta(hours=retention_hours)

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteStores:
        return cls(
            settings.data_dir / "staging",
            settings.data_dir / "production",
            retention_hours=settings.staging_retention_hours,
        )

    def _staging(self, request_id: str) -> Path:
        return self.staging_dir / f"{checked_request_id(request_id)}.sqlite"

    def _production(self, tenant: str) -> Path:
        path = self.production_dir / f"{tenant}.sqlite"
        with _disposing(sqlite_engine(path)) as engine, engine.begin() as conn:
            PRODUCTION.create_all(conn)
            PROMOTION_LOG.create(conn, checkfirst=True)
            REVISIONS.create_all(conn)
        return path

    # Staging.

    def create_staging(self, request_id: str) -> SqliteStaging:
        path = self._staging(request_id)
        if path.exists():
            raise FileExistsError(f"staging store {path} already exists")
        engine = sqlite_engine(path)
        with engine.begin() as conn:
            STAGING.create_all(conn)
            FINDINGS.create_all(conn)
            conn.execute(insert(META).values(RequestId=request_id, CreatedAt=dt.datetime.now(dt.UTC)))
        return SqliteStaging(engine)

    def close_staging(self, loader: object) -> None:
        assert isinstance(loader, SqliteStaging)
        loader.close()
        loader.engine.dispose()

    def staging_exists(self, request_id: str) -> bool:
        return is_request_id(request_id) and self._staging(request_id).exists()

    def discard_staging(self, request_id: str) -> None:
        if is_request_id(request_id):
            for suffix in _SUFFIXES:
                Path(f"{self._staging(request_id)}{suffix}").unlink(missing_ok=True)

    def _existing_staging(self, request_id: str) -> Path:
        path = self._staging(request_id)
        if not path.exists():
            raise FileNotFoundError(f"staging store {path} does not exist")
        return path

    # Sessions.

    @contextmanager
    def validation_session(self, request_id: str, tenant: str) -> Iterator[tuple[Connection, str]]:
        staging = self._existing_staging(request_id)
        # Validation only reads production: attached read-only, it is never locked against promotions.
        attach = {PRODUCTION_SCHEMA: self._production(tenant)}
        engine = sqlite_engine(staging, attach=attach, attach_readonly=True)
        with _disposing(engine), engine.begin() as conn:
            yield conn, PRODUCTION_SCHEMA

    @contextmanager
    def staging_session(self, request_id: str) -> Iterator[Connection]:
        engine = sqlite_engine(self._existing_staging(request_id), readonly=True)
        with _disposing(engine), engine.connect() as conn:
            yield conn

    @contextmanager
    def promotion_session(self, request_id: str, tenant: str, *, write: bool) -> Iterator[Connection]:
        staging = self._existing_staging(request_id)
        engine = sqlite_engine(self._production(tenant), attach={STAGED_SCHEMA: staging})
        with _disposing(engine), engine.connect() as conn:
            # The id map's temporary tables: SQLite's own schema of them, gone with the connection.
            placed = conn.execution_options(schema_translate_map={ID_SCHEMA: "temp"})
            if write:
                with conn.begin():
                    yield placed
            else:
                yield placed

    @contextmanager
    def production_session(self, tenant: str, *, write: bool) -> Iterator[Connection]:
        engine = sqlite_engine(self._production(tenant))
        with _disposing(engine), engine.connect() as conn:
            if write:
                with conn.begin():  # BEGIN IMMEDIATE: queued behind any promotion of the tenant
                    yield conn
            else:
                yield conn

    # Production.

    def production_rows(self, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
        path = self.production_dir / f"{tenant}.sqlite"
        if not path.exists():
            return {e.name: [] for e in ENTITIES}
        with _disposing(sqlite_engine(path, readonly=True)) as engine, engine.connect() as conn:
            return {
                e.name: [
                    tuple(r) for r in conn.execute(select(PRODUCTION.tables[e.name]).order_by("ImportId"))
                ]
                for e in ENTITIES
            }

    @contextmanager
    def production_snapshot(self, tenant: str) -> Iterator[Connection | None]:
        path = self.production_dir / f"{tenant}.sqlite"
        if not path.exists():
            yield None
            return
        # Read-only, in one deferred transaction: in WAL mode a reader keeps its snapshot and neither
        # waits for a promotion's write lock nor holds one up.
        with _disposing(sqlite_engine(path, readonly=True)) as engine, engine.begin() as conn:
            yield conn

    # Retention.

    def drop_expired_staging(self, now: dt.datetime, *, in_use: Callable[[str], bool]) -> list[str]:
        cutoff = now - self.retention
        dropped = []
        for path in sorted(self.staging_dir.glob("*.sqlite")):
            request_id = path.stem
            if not is_request_id(request_id):
                continue
            created = self._created(path)
            if created is None or created > cutoff or in_use(request_id):
                continue
            self.discard_staging(request_id)
            dropped.append(request_id)
        return dropped

    @staticmethod
    def _created(path: Path) -> dt.datetime | None:
        """When the staging store was created (its `_Meta` row; the file's time for older stores); None if
        it was deleted meanwhile (a job that failed discards its own)."""
        try:
            with _disposing(sqlite_engine(path, readonly=True)) as engine, engine.connect() as conn:
                created = conn.execute(select(META.c.CreatedAt)).scalar() if _has_meta(conn) else None
            if created is None:
                return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        except (OperationalError, FileNotFoundError):
            if path.exists():
                raise
            return None
        return created if created.tzinfo else created.replace(tzinfo=dt.UTC)

    def dispose(self) -> None:
        """Nothing is held between uses: every engine is disposed when its work is done."""


def _has_meta(conn: Connection) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.exec_driver_sql(query, (META.name,)).first() is not None
