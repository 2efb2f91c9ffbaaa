"""Connecting to a source database, and turning driver failures into messages a user can act on.

SQL Server goes through Microsoft's `mssql-python` driver; SQLite and PostgreSQL URLs are accepted for
development and tests. Every statement is built with SQLAlchemy Core for the source's dialect and sent as
a plain SQL batch on the driver's own DB-API connection, with its values rendered as escaped literals:
the importer sends nothing but these SELECTs (no session set-up, no transactions, no temporary tables,
no parameter round trips), so a read-only login suffices and every server or proxy in between copes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from efimis_etl.errors import SourceError
from efimis_etl.source.connstr import Source, SqlAlchemySource, SqlServerSource, redact


@dataclass
class SourceConnection:
    """An open, read-only connection to a source database."""

    dbapi: Any  # a DB-API 2.0 connection
    dialect: Dialect
    source: Source
    errors: tuple[type[BaseException], ...]  # what the driver raises for database and network failures

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    def sql(self, statement: Executable) -> str:
        compiled = statement.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
        return str(compiled)

    def rows(self, statement: Executable | str) -> Sequence[tuple[Any, ...]]:
        text = statement if isinstance(statement, str) else self.sql(statement)
        cursor = self.dbapi.cursor()
        try:
            cursor.execute(text)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def close(self) -> None:
        # Closing an already broken connection must not mask the error that broke it.
        with contextlib.suppress(*self.errors):
            self.dbapi.close()


def open_source(source: Source, *, stall_seconds: int | None = None) -> SourceConnection:
    """Connect, or raise a SourceError naming the setting to fix.

    `stall_seconds` bounds how long one statement (one batch) may run without completing; the driver
    itself enforces it (a Python watchdog thread could not: Microsoft's driver holds the GIL while it
    waits for rows). A connection string's own Command Timeout takes precedence.
    """
    if isinstance(source, SqlServerSource):
        return _open_sql_server(source, stall_seconds)
    backend = source.url.get_backend_name()
    if backend == "sqlite":
        return _open_sqlite(source)
    if backend == "postgresql":
        return _open_postgresql(source, stall_seconds)
    raise SourceError(f"Unsupported development source {source.describe()}: use sqlite:/// or postgresql://.")


def _open_sql_server(source: SqlServerSource, stall_seconds: int | None) -> SourceConnection:
    import mssql_python

    try:
        # autocommit: reading needs no transaction, and none is then opened on the customer's server.
        connection = mssql_python.connect(
            source.odbc_connection_string(), autocommit=True, timeout=source.login_timeout
        )
    except mssql_python.Error as error:
        raise explain_connect_failure(source, error) from None
    timeout = source.query_timeout or stall_seconds
    if timeout:  # per statement; the driver cancels the query and raises on expiry
        connection.timeout = timeout
    # The driver raises RuntimeError (not its Error) when a connection drops while rows are fetched.
    return SourceConnection(connection, mssql.dialect(), source, (mssql_python.Error, RuntimeError))


def _open_sqlite(source: SqlAlchemySource) -> SourceConnection:
    database = source.url.database or ""
    if not database or database == ":memory:":
        raise SourceError("A SQLite source needs a file path: sqlite:///path/to/source.db")
    path = Path(database)
    if not path.is_file():
        raise SourceError(f"The SQLite source file {path} does not exist: check the path in the URL.")
    # mode=ro: the importer must never write to a source, not even by creating a file.
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False)
    return SourceConnection(connection, sqlite.dialect(), source, (sqlite3.Error,))


def _open_postgresql(source: SqlAlchemySource, stall_seconds: int | None) -> SourceConnection:
    import psycopg

    url = source.url.set(drivername="postgresql")
    try:
        connection = psycopg.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,
            connect_timeout=15,
            options=f"-c statement_timeout={int(stall_seconds * 1000)}" if stall_seconds else None,
        )
    except psycopg.Error as error:
        raise explain_connect_failure(source, error) from None
    connection.read_only = True
    return SourceConnection(connection, postgresql.dialect(), source, (psycopg.Error,))


# Driver messages, matched case-insensitively, and what the user should change.
_SQL_SERVER_FAILURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("login failed",),
        "login-failed",
        "SQL Server refused the login for user '{user}': check User ID and Password, and that the login "
        "may read database '{database}'.",
    ),
    (
        ("cannot open database", "4060"),
        "database-not-found",
        "SQL Server has no database '{database}' this login may open: check Initial Catalog (Database).",
    ),
    (
        ("certificate verify failed", "certificate chain", "ssl provider"),
        "certificate-not-trusted",
        "The TLS certificate of {server} is not trusted: install a trusted certificate on the server, or "
        "set TrustServerCertificate=True if you accept an unverified one.",
    ),
    (
        ("encryption not supported",),
        "encryption-not-supported",
        "{server} does not support encryption: enable TLS on the server, or set Encrypt=False (or "
        "Optional) to connect unencrypted.",
    ),
    (
        ("query timeout expired",),
        "query-timeout",
        "{server} sent no answer to a query within the Command Timeout: raise Command Timeout in the "
        "connection string, or check the server's load.",
    ),
    (
        ("login timeout", "timeout expired", "timeout error"),
        "timeout",
        "Timed out connecting to {server} after {timeout} s: check the server is up and reachable from "
        "this service, or raise Connection Timeout.",
    ),
    (
        ("tcp provider", "network-related", "unable to establish connection", "server is not found"),
        "host-unreachable",
        "Could not reach SQL Server at {server}: check Server (host name and port) and that a firewall "
        "lets this service connect.",
    ),
)


def explain_read_failure(source: Source, error: BaseException) -> SourceError:
    """A failure while reading: a known cause (lost connection, timeout) named, else the driver's words."""
    explained = explain_connect_failure(source, error)
    if explained.code in ("connect-failed",):
        return SourceError(
            f"Reading the source failed: {redact(str(error)).strip()}", code="source-read-failed"
        )
    return SourceError(f"Reading the source failed: {explained.message}", code="source-read-failed")


def explain_connect_failure(source: Source, error: BaseException) -> SourceError:
    """Name the setting that fixes a failed connection; keep the driver's words (redacted) as detail."""
    detail = redact(str(error)).strip()
    if isinstance(source, SqlServerSource):
        lowered = detail.lower()
        server = source.host + (f"\\{source.instance}" if source.instance else "")
        server += f",{source.port}" if source.port else ""
        for needles, code, template in _SQL_SERVER_FAILURES:
            if any(n in lowered for n in needles):
                message = template.format(
                    user=source.user, database=source.database, server=server, timeout=source.login_timeout
                )
                return SourceError(f"{message} (driver: {detail})", code=code)
        return SourceError(f"Could not connect to SQL Server at {server}: {detail}", code="connect-failed")
    return SourceError(f"Could not open the source {source.describe()}: {detail}", code="connect-failed")
