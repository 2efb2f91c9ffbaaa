"""Connecting to a source database, and turning driver failures into messages a user can act on.

SQL Server goes through Microsoft's `mssql-python` driver (SQLAlchemy's `mssql+mssqlpython` dialect);
SQLite and PostgreSQL URLs are accepted for development and tests.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from efimis_etl.errors import SourceError
from efimis_etl.schema.model import SCHEMA_NAME
from efimis_etl.source.connstr import Source, SqlAlchemySource, SqlServerSource, redact


def source_engine(source: Source) -> Engine:
    """An engine that opens the source read-only where the driver allows it."""
    if isinstance(source, SqlServerSource):
        return _sql_server_engine(source)
    url = source.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise SourceError("A SQLite source needs a file path: sqlite:///path/to/source.db")
        path = Path(database)
        if not path.is_file():
            raise SourceError(f"The SQLite source file {path} does not exist: check the path in the URL.")
        # mode=ro: the importer must never write to a customer's database, not even by creating a file.
        engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true", poolclass=NullPool)
        return engine.execution_options(schema_translate_map={SCHEMA_NAME: None})
    return create_engine(url, poolclass=NullPool)


def _sql_server_engine(source: SqlServerSource) -> Engine:
    import mssql_python

    odbc = source.odbc_connection_string()

    def connect() -> object:
        return mssql_python.connect(odbc, timeout=source.login_timeout)

    return create_engine("mssql+mssqlpython://", creator=connect, poolclass=NullPool)


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


def explain_connect_failure(source: Source, error: BaseException) -> SourceError:
    """Name the setting that fixes a failed connection; keep the driver's words (redacted) as detail."""
    detail = redact(str(getattr(error, "orig", None) or error))
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
    assert isinstance(source, SqlAlchemySource)
    return SourceError(f"Could not open the source {source.describe()}: {detail}", code="connect-failed")
