"""SQLite engines for the embedded default: the platform database and the tenant stores.

SQLAlchemy is given the transaction boundaries (pysqlite's own implicit BEGIN is switched off), so that a
`with engine.begin()` block is exactly one SQLite transaction and ATTACHed databases share it atomically.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, NullPool


def sqlite_engine(path: Path, *, attach: dict[str, Path] | None = None, readonly: bool = False) -> Engine:
    """An engine on a SQLite file; `attach` maps schema names to further files opened with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///file:{path}?mode=ro&uri=true" if readonly else f"sqlite:///{path}"
    # NullPool: every store is opened by one job at a time, and a pooled handle would keep files
    # (and their locks) open after a job is finished with them or has deleted them.
    engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30})
    attachments = dict(attach or {})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_connection.cursor()
        if not readonly:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        for name, attached in attachments.items():
            cursor.execute("ATTACH DATABASE ? AS " + name, (str(attached),))
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: object) -> None:
        # IMMEDIATE takes the write lock at the start, so two writers queue instead of deadlocking.
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")  # type: ignore[attr-defined]

    return engine
