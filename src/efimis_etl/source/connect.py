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

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Dialect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from efimis_etl.errors import SourceError
from efimis_etl.schema.tables import sql_server_dialect
from efimis_etl.source.connstr import Source, SqlAlchemySource, SqlServerSource, redact


def value_at(column: Sequence[Any] | pa.Array | pa.ChunkedArray, row: int) -> Any:
    """One value of a column, as Python, whether the column came as Python values or as Arrow."""
    value = column[row]
    return value.as_py() if isinstance(value, pa.Scalar) else value


@dataclass
class Fetched:
    """One query's rows as columns: Python sequences or Arrow arrays, the key (ImportId) first."""

    columns: list[Sequence[Any] | pa.ChunkedArray]
    length: int

    @classmethod
    def of_rows(cls, rows: Sequence[Sequence[Any]], width: int) -> Fetched:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * width
        return cls(columns, len(rows))

    @classmethod
    def of_arrow(cls, table: pa.Table) -> Fetched:
        return cls(list(table.columns), table.num_rows)

    def after(self, skipped: int) -> list[Sequence[Any] | pa.ChunkedArray]:
        """Every column without its first `skipped` rows."""
        return [c.slice(skipped) if isinstance(c, pa.ChunkedArray) else c[skipped:] for c in self.columns]

    def key(self, row: int) -> Any:
        return value_at(self.columns[0], row)

    def count_key(self, value: Any, *, start: int) -> int:
        """How many rows from `start` on have this key."""
        keys = self.columns[0]
        if isinstance(keys, pa.ChunkedArray):
            return int(pc.sum(pc.equal(keys.slice(start), value)).as_py() or 0)
        return sum(1 for key in keys[start:] if key == value)


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

    def columns(self, statement: Executable, *, limit: int) -> Fetched:
        """A query's result (at most `limit` rows) by column: Arrow arrays straight from a driver that
        makes them (Microsoft's, in its C++ layer), else the driver's rows turned into columns."""
        cursor = self.dbapi.cursor()
        try:
            cursor.execute(self.sql(statement))
            if hasattr(cursor, "arrow"):
                table = cursor.arrow()
                _raise_swallowed_errors(cursor)
                if table.num_rows < limit:
                    self._prove_alive()
                return Fetched.of_arrow(table)
            return Fetched.of_rows(cursor.fetchall(), len(cursor.description))
        finally:
            cursor.close()

    def _prove_alive(self) -> None:
        """A short result is the end of a table, or (mssql-python 1.16) a result cut off by a dropped
        connection with no error raised and, often, none recorded: a query on the same connection tells
        them apart, raising the driver's own error if the link is gone."""
        cursor = self.dbapi.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()

    def close(self) -> None:
        # Closing an already broken connection must not mask the error that broke it.
        with contextlib.suppress(*self.errors):
            self.dbapi.close()


def _raise_swallowed_errors(cursor: Any) -> None:
    """mssql-python 1.16's Arrow fetch ends a result early, without raising, when the connection drops
    mid-result (seen: 30 of 50 rows, with SQLSTATE 08S01 "Communication link failure" only in
    `cursor.messages`; other times with no message at all, which `_prove_alive` catches). Any message
    that is not a warning (class 01) or success (00) is raised here, in the driver's words."""
    failures = [f"{state} {text}" for state, text in cursor.messages if not state.startswith(("[00", "[01"))]
    if failures:
        raise RuntimeError("; ".join(failures))


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
    return SourceConnection(connection, sql_server_dialect(), source, (mssql_python.Error, RuntimeError))


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


# Driver messages, matched case-insensitively, and what the user should change. The first entry whose
# words occur in the driver's message wins, so the order matters: mssql-python reports one diagnostic
# only, prefixed "Client unable to establish connection" for every failure to connect. The messages below
# are those of ODBC Driver 18.6 (in mssql-python 1.16) on Linux, seen against the test SQL Server
# (efimis_devtools.tds_server; tests/test_tls_messages.py makes each case):
#   database-not-found  only when SQL Server sends 4060 alone; it sends 4060 then 18456, and the driver then
#                       shows 18456 ("Login failed"), so an unknown database is reported as login-failed.
#   host-name-mismatch  "SSL Provider: [error:0A000086:...certificate verify failed:subject name does not
#                       match host name]" (the driver compares CN and DNS names only, never IP addresses)
#   no-usable-tls       "TCP Provider: Error code 0x2746" when the server closes the connection at the
#                       ClientHello (SQL Server with TLS 1.3 only, or a server without TDS 8.0 for
#                       Encrypt=strict); "SSL Provider: [...alert protocol version...]" and the like when
#                       a TLS stack refuses the versions or ciphers offered.
#   certificate-not-trusted  "certificate verify failed:self-signed certificate" (or "...in certificate
#                       chain", "certificate has expired")
#   encryption-not-supported  "Encryption not supported on the client" / "on SQL Server"
#   instance-not-found  "SQL Server Network Interfaces: Error Locating Server/Instance Specified
#                       [xFFFFFFFF]" (no SQL Server Browser answer for host\instance)
#   timeout             "TCP Provider: Timeout error [258]." (no answer within Connection Timeout)
#   host-unreachable    "TCP Provider: Error code 0x2749" (nothing listens on the port)
# The fourth item, when not None, replaces the third for Encrypt=Strict (TDS 8.0): the driver then verifies
# the certificate whatever TrustServerCertificate says, and a server that closes the connection at the
# ClientHello does not speak TDS 8.0.
_SQL_SERVER_FAILURES: tuple[tuple[tuple[str, ...], str, str, str | None], ...] = (
    (
        ("cannot open database",),
        "database-not-found",
        "SQL Server has no database '{database}' that user '{user}' may open: check Initial Catalog "
        "(Database) in the connection string, and that the login has a user in that database.",
        None,
    ),
    (
        ("login failed",),
        "login-failed",
        "SQL Server refused the login for user '{user}': check User ID and Password, or the database name "
        "(Initial Catalog '{database}') is wrong or not open to this login: SQL Server reports an unknown "
        "database as a failed login too.",
        None,
    ),
    (
        ("does not match host name", "hostname mismatch", "host name mismatch", "ip address mismatch"),
        "host-name-mismatch",
        "The TLS certificate of {server} is issued for another name than '{host}': write the name the "
        "certificate is issued for in Server, or set HostNameInCertificate=<that name> (the certificate is "
        "still verified, against that name).",
        None,
    ),
    (
        (
            "alert protocol version",
            "unsupported protocol",
            "no protocols available",
            "wrong version number",
            "version too low",
            "legacy sigalg",
            "no shared cipher",
            "no ciphers available",
            "alert handshake failure",
            "dh key too small",
            "error code 0x2746",  # WSAECONNRESET: closed by the server during the pre-login handshake
            "error code 0x68",  # ECONNRESET: the same, reset rather than closed
        ),
        "no-usable-tls",
        "{server} accepted the connection but closed it or refused the TLS handshake: the server offers no "
        "TLS version this service can use here. This service uses TLS 1.2 with Encrypt=True/False and TLS "
        "1.2 or 1.3 with Encrypt=Strict (TDS 8.0, SQL Server 2022 or later). Enable TLS 1.2 on the server, "
        "or set Encrypt=Strict if the server allows TLS 1.3 only; and check that Server names a SQL "
        "Server's port.",
        "{server} closed the connection or refused the TLS handshake of Encrypt=Strict (TDS 8.0, which "
        "needs SQL Server 2022 or later): set Encrypt=True to use TLS inside the TDS 7.x handshake, or "
        "enable strict encryption on the server; and check that Server names a SQL Server's port.",
    ),
    (
        (
            "certificate verify failed",
            "certificate chain",
            "self-signed",
            "self signed",
            "unable to get local issuer",
            "certificate has expired",
            "certificate is not yet valid",
        ),
        "certificate-not-trusted",
        "The TLS certificate of {server} is not trusted: install a certificate from a trusted authority on "
        "the server, or set TrustServerCertificate=True if you accept an unverified one.",
        "The TLS certificate of {server} is not trusted: with Encrypt=Strict the certificate is always "
        "verified (TrustServerCertificate is ignored), so install a certificate from a trusted authority "
        "on the server, or use Encrypt=True with TrustServerCertificate=True if you accept an unverified "
        "one.",
    ),
    (
        ("ssl provider",),
        "tls-failed",
        "The encrypted connection (TLS) to {server} failed: check the server's TLS certificate and settings; "
        "Encrypt and TrustServerCertificate in the connection string say what this service requires.",
        None,
    ),
    (
        ("encryption not supported",),
        "encryption-not-supported",
        "{server} does not support encryption: enable TLS on the server, or set Encrypt=False (or "
        "Optional) to connect unencrypted.",
        None,
    ),
    (
        ("error locating server/instance",),
        "instance-not-found",
        "No SQL Server Browser on {host} (UDP port 1434) named a port for instance '{instance}' within "
        "{timeout} s: check the instance name in Server (host\\instance), that the SQL Server Browser "
        "service runs and UDP 1434 reaches it, or give the instance's TCP port (Server=host\\instance,port).",
        None,
    ),
    (
        ("query timeout expired",),
        "query-timeout",
        "{server} sent no answer to a query within the Command Timeout: raise Command Timeout in the "
        "connection string, or check the server's load.",
        None,
    ),
    (
        ("login timeout", "timeout expired", "timeout error"),
        "timeout",
        "Timed out connecting to {server}: no answer within Connection Timeout ({timeout} s). Check that "
        "Server names the right host and port and that the server is up (a firewall that drops packets "
        "looks like this), or raise Connection Timeout if the server is slow to answer.",
        None,
    ),
    (
        ("tcp provider", "network-related", "server is not found"),
        "host-unreachable",
        "Could not reach SQL Server at {server}: check Server (host name and port) and that a firewall "
        "lets this service connect.",
        None,
    ),
)


# Connection failures that the same connection string will meet again however often it is retried.
# Timeouts, unreachable hosts and reset connections are left out: a restarting server heals them.
PERMANENT_CONNECT_FAILURES = frozenset(
    {
        "login-failed",
        "database-not-found",
        "host-name-mismatch",
        "certificate-not-trusted",
        "encryption-not-supported",
    }
)
# Read failures, in SQL Server's and SQLite's words, that another attempt cannot fix.
_PERMANENT_READ_MESSAGES = (
    "conversion failed",
    "would be truncated",  # 2628: a value no column of that type could hold
    "arithmetic overflow",
    "out-of-range",
    "permission",
    "invalid object name",
    "invalid column name",
    "login failed",
    "no such table",
    "no such column",
)
# SQLSTATE classes of PostgreSQL errors that can heal: connection exceptions, operator intervention (a
# cancelled statement: the stall limit; a server shutting down), insufficient resources, rolled back.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_permanent(error: BaseException) -> bool:
    """Whether retrying on a new connection is pointless: a failed login, a file that is not a database,
    a missing table, a value no column can hold. The import then fails at once, not after every retry."""
    if isinstance(error, SourceError):  # connecting failed; explain_connect_failure named the cause
        return error.code in PERMANENT_CONNECT_FAILURES
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
        return True  # "file is not a database", "database disk image is malformed": the file, not the link
    import psycopg

    if isinstance(error, psycopg.Error) and error.sqlstate:
        return error.sqlstate[:2] not in _TRANSIENT_SQLSTATE_CLASSES
    lowered = str(error).lower()
    return any(words in lowered for words in _PERMANENT_READ_MESSAGES)


def explain_read_failure(source: Source, error: BaseException) -> SourceError:
    """A failure while reading: a known cause (lost connection, query timeout) named, else the driver's
    words. The code is always `source-read-failed`."""
    detail = redact(str(error)).strip()
    if isinstance(source, SqlServerSource):
        lowered = detail.lower()
        server = source.server_display()
        if "query timeout expired" in lowered:
            message = (
                f"{server} sent no answer to a query within the Command Timeout: raise Command Timeout in "
                "the connection string, or check the server's load"
            )
        elif any(
            n in lowered
            for n in ("communication link failure", "tcp provider", "ssl provider", "sqlgetdata failed")
        ):
            message = (
                f"the connection to {server} was lost while reading: check the network between this "
                "service and the server, and that the server was not restarted, then import again"
            )
        else:
            return SourceError(f"Reading the source failed: {detail}", code="source-read-failed")
        return SourceError(
            f"Reading the source failed: {message} (driver: {detail})", code="source-read-failed"
        )
    return SourceError(f"Reading the source failed: {detail}", code="source-read-failed")


def explain_connect_failure(source: Source, error: BaseException) -> SourceError:
    """Name the setting that fixes a failed connection; keep the driver's words (redacted) as detail."""
    detail = redact(str(error)).strip()
    if isinstance(source, SqlServerSource):
        lowered = detail.lower()
        server = source.server_display()
        for needles, code, template, strict_template in _SQL_SERVER_FAILURES:
            if any(n in lowered for n in needles):
                if source.encrypt == "strict" and strict_template is not None:
                    template = strict_template
                message = template.format(
                    user=source.user,
                    database=source.database,
                    server=server,
                    host=source.host,
                    instance=source.instance or "",
                    timeout=source.login_timeout,
                )
                return SourceError(f"{message} (driver: {detail})", code=code)
        return SourceError(f"Could not connect to SQL Server at {server}: {detail}", code="connect-failed")
    lowered = detail.lower()
    if "authentication failed" in lowered or "no pg_hba.conf entry" in lowered:
        code = "login-failed"
    elif "database" in lowered and "does not exist" in lowered:
        code = "database-not-found"
    else:
        code = "connect-failed"
    return SourceError(f"Could not open the source {source.describe()}: {detail}", code=code)
