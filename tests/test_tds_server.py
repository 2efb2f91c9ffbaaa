"""The test SQL Server: Microsoft's driver against it directly, then our importer end to end through it."""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import mssql_python
import pytest

import tds_fixtures
from conftest import DemoSource, Serve, Service
from efimis_devtools import tds_cli
from efimis_devtools.tds_server import DEFAULT_PASSWORD, Faults, TdsServer
from efimis_devtools.tds_tls import TestCertificateAuthority
from efimis_etl.demo import row_counts
from efimis_etl.schema.model import ENTITY_BY_NAME
from efimis_etl.source.connstr import parse_connection_string
from tds_fixtures import StartServer, TrustAuthority

sql_server = tds_fixtures.sql_server
certificate_authority = tds_fixtures.certificate_authority
trust_certificate_authority = tds_fixtures.trust_certificate_authority

LONG_TEXT = "Привет, 世界! 😀 Ünïcödé — " * 400  # 10,400 characters, 10,800 UTF-16 code units
GUIDS = [uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"), uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")]
GOLDEN_DDL = """CREATE TABLE "Golden" (
    "Id" INTEGER PRIMARY KEY, "Big" BIGINT, "Flag" BOOLEAN, "Money" BLOB, "Name" NVARCHAR(40),
    "Body" NVARCHAR(10000), "Notes" TEXT, "Day" DATE, "Stamp" DATETIME2, "Guid" UNIQUEIDENTIFIER)"""
# (stored in SQLite, what mssql-python must return) per column, one row per tuple.
GOLDEN: list[tuple[tuple[Any, Any], ...]] = [
    (
        (1, 1),
        (2**63 - 1, 2**63 - 1),
        (1, True),
        ("999999999999999.9999", Decimal("999999999999999.9999")),
        ("Zoë 佐藤 Иванов 😀", "Zoë 佐藤 Иванов 😀"),
        (LONG_TEXT, LONG_TEXT),
        ("Notes: 📎 附件", "Notes: 📎 附件"),
        ("0001-01-01", dt.date(1, 1, 1)),
        # The driver returns a datetime: microseconds, the 7th digit (100 ns) truncated.
        ("2024-02-29 13:45:56.1234567", dt.datetime(2024, 2, 29, 13, 45, 56, 123456)),
        (str(GUIDS[0]), GUIDS[0]),
    ),
    (
        (-(2**31), -(2**31)),
        (-(2**63), -(2**63)),
        (0, False),
        ("-999999999999999.9999", Decimal("-999999999999999.9999")),
        ("", ""),
        ("", ""),
        ("", ""),
        ("9999-12-31", dt.date(9999, 12, 31)),
        ("9999-12-31 23:59:59.9999999", dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        (str(GUIDS[1]).upper(), GUIDS[1]),
    ),
    (
        (2**31 - 1, 2**31 - 1),
        (0, 0),
        (1, True),
        ("0.0001", Decimal("0.0001")),
        *[(None, None)] * 6,
    ),
    ((2, 2), (None, None), (None, None), (200.38, Decimal("200.3800")), *[(None, None)] * 6),  # REAL
    ((3, 3), (None, None), (None, None), (25000, Decimal("25000.0000")), *[(None, None)] * 6),  # INTEGER
    ((4, 4), (None, None), (None, None), (-0.0001, Decimal("-0.0001")), *[(None, None)] * 6),
]


def _golden_source(path: Path) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute(GOLDEN_DDL)
        connection.executemany(
            'INSERT INTO "Golden" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [tuple(stored for stored, _ in row) for row in GOLDEN],
        )
        # SQLite's NUMERIC affinity keeps 15 significant digits of a DECIMAL text, so a 19-digit
        # decimal cannot be inserted into a DECIMAL(19, 4) column as such. "Money" was made without
        # affinity, keeping text, REAL and INTEGER values as given; now it is declared DECIMAL(19, 4).
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute(
            "UPDATE sqlite_master SET sql = replace(sql, '\"Money\" BLOB', '\"Money\" DECIMAL(19, 4)') "
            "WHERE name = 'Golden'"
        )
        connection.execute("PRAGMA writable_schema = OFF")
        connection.execute('CREATE TABLE "Broken" ("Id" INTEGER, "Minutes" INTEGER, "Country" VARCHAR(2))')
        connection.execute("INSERT INTO \"Broken\" VALUES (1, 'ninety', 'AU'), (2, 90, 'Australia')")
    with sqlite3.connect(path) as connection:
        declared = {row[1]: row[2] for row in connection.execute('PRAGMA table_info("Golden")')}
    assert declared["Money"] == "DECIMAL(19, 4)"
    return path


def _connect(server: Any, **options: Any) -> Any:
    return mssql_python.connect(server.odbc_connection_string(**options), autocommit=True, timeout=5)


def _query(connection: Any, sql: str) -> tuple[list[tuple[Any, ...]], list[Any]]:
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()], list(cursor.description)
    finally:
        cursor.close()


# --------------------------------------------------------------------------------------------------
# Microsoft's driver, directly


def test_every_type_arrives_value_equal(sql_server: StartServer, tmp_path: Path) -> None:
    server = sql_server(_golden_source(tmp_path / "golden.db"))
    connection = _connect(server)
    try:
        rows, description = _query(connection, 'SELECT * FROM etl.[Golden] ORDER BY "Id"')
        expected = sorted((tuple(value for _, value in row) for row in GOLDEN), key=lambda r: r[0])
        assert rows == expected
        assert [type(v) for v in rows[0]] == [type(v) for v in expected[0]]
        body = next(row[5] for row in rows if row[0] == 1)
        assert len(body) > 8000 and body == LONG_TEXT
        # name, type code, display size, internal size, precision, scale, nullable
        by_name = {d[0]: d for d in description}
        assert by_name["Money"][4:6] == (19, 4)
        assert by_name["Name"][3] == 40
        assert by_name["Stamp"][5] == 7  # sent as datetime2(7)

        (count,), _ = _query(connection, "SELECT count(*) AS count_1 \nFROM etl.[Golden]")
        assert count == (len(GOLDEN),)
        # SUM of a decimal column is exact and decimal(38, 4), as in SQL Server (SQLite's would be a float).
        (sums,), described = _query(
            connection, "SELECT count(*) AS count_1, sum(etl.[Golden].[Money]) AS sum_1 \nFROM etl.[Golden]"
        )
        assert sums == (len(GOLDEN), Decimal("25200.3800")) and described[1][4:6] == (38, 4)
        keyset, _ = _query(
            connection,
            "SELECT TOP 2 etl.[Golden].[Id], etl.[Golden].[Money] \nFROM etl.[Golden] \n"
            "WHERE etl.[Golden].[Name] >= N'Zoë' ORDER BY etl.[Golden].[Id]",
        )
        assert keyset == [(1, Decimal("999999999999999.9999"))]
    finally:
        connection.close()


def test_information_schema_reports_sql_server_types(sql_server: StartServer, tmp_path: Path) -> None:
    server = sql_server(_golden_source(tmp_path / "golden.db"))
    connection = _connect(server)
    try:
        rows, description = _query(
            connection,
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
            "NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'etl'",
        )
    finally:
        connection.close()
    golden = {row[1]: row[2:] for row in rows if row[0] == "Golden"}
    assert golden == {
        "Id": ("int", None, 10, 0),
        "Big": ("bigint", None, 19, 0),
        "Flag": ("bit", None, None, None),
        "Money": ("decimal", None, 19, 4),
        "Name": ("nvarchar", 40, None, None),
        "Body": ("nvarchar", -1, None, None),
        "Notes": ("nvarchar", -1, None, None),
        "Day": ("date", None, None, None),
        "Stamp": ("datetime2", None, None, None),
        "Guid": ("uniqueidentifier", None, None, None),
    }
    assert [d[1] for d in description] == [str, str, str, int, int, int]


def test_a_value_the_column_type_cannot_hold_fails_the_query_like_sql_server(
    sql_server: StartServer, tmp_path: Path
) -> None:
    server = sql_server(_golden_source(tmp_path / "golden.db"))
    connection = _connect(server)
    try:
        with pytest.raises(mssql_python.Error) as not_a_number:
            _query(connection, "SELECT Minutes FROM etl.Broken")
        assert "Conversion failed when converting the nvarchar value 'ninety' to data type int." in str(
            not_a_number.value
        )
        with pytest.raises(mssql_python.Error) as too_long:
            _query(connection, "SELECT Country FROM etl.Broken")
        assert "would be truncated in table 'Firm.etl.Broken', column 'Country'" in str(too_long.value)
        # The connection stays usable, and the other columns read fine.
        assert _query(connection, "SELECT Id FROM etl.Broken ORDER BY Id")[0] == [(1,), (2,)]
    finally:
        connection.close()


def test_wrong_password_is_refused_like_sql_server(sql_server: StartServer, demo: DemoSource) -> None:
    server = sql_server(demo.path)
    wrong = server.odbc_connection_string().replace(f"PWD={DEFAULT_PASSWORD}", "PWD=wrong-password")
    with pytest.raises(mssql_python.Error, match=r"Login failed for user 'etl'\."):
        mssql_python.connect(wrong, autocommit=True, timeout=5)


def test_unknown_database_is_refused_with_4060_then_18456(
    sql_server: StartServer, demo: DemoSource, capfd: pytest.CaptureFixture[str]
) -> None:
    server = sql_server(demo.path)
    other = server.odbc_connection_string().replace("Database=Firm", "Database=Elsewhere")
    # SQL Server sends 4060 and then 18456; mssql-python shows only the last ("Login failed ...").
    with pytest.raises(mssql_python.Error, match=r"Login failed for user 'etl'\."):
        mssql_python.connect(other, autocommit=True, timeout=5)
    server.stop()
    log = capfd.readouterr().err
    assert 'error 4060: Cannot open database "Elsewhere" requested by the login. The login failed.' in log
    assert "error 18456: Login failed for user 'etl'." in log


def test_tls_with_a_self_signed_certificate(
    sql_server: StartServer, demo: DemoSource, capfd: pytest.CaptureFixture[str]
) -> None:
    server = sql_server(demo.path, tls=True)
    for encrypt in ("yes", "mandatory", "no", "optional"):  # no/optional: only the login is encrypted
        connection = _connect(server, encrypt=encrypt, trust_server_certificate=True)
        try:
            assert _query(connection, "SELECT count(*) FROM etl.Matter")[0] == [
                (row_counts(demo.path)["Matter"],)
            ]
        finally:
            connection.close()
    with pytest.raises(mssql_python.Error, match="certificate verify failed"):
        _connect(server, encrypt="yes", trust_server_certificate=False)
    server.stop()
    log = capfd.readouterr().err
    assert log.count("(encryption: TLS 1.2)") == 2 and log.count("(encryption: login packet only)") == 2


def test_the_driver_checks_dns_names_never_ip_addresses(
    sql_server: StartServer,
    demo: DemoSource,
    certificate_authority: TestCertificateAuthority,
    trust_certificate_authority: TrustAuthority,
) -> None:
    # A trusted certificate for localhost that also lists 127.0.0.1 (an IP address subjectAltName).
    trust_certificate_authority(certificate_authority)
    certificate = certificate_authority.issue(("localhost",), ip_addresses=("127.0.0.1",))
    server = sql_server(demo.path, tls=True, tls_certificate=certificate)
    with pytest.raises(mssql_python.Error, match="subject name does not match host name"):
        _connect(server, encrypt="yes", trust_server_certificate=False)
    for options in ({"host": "localhost"}, {"host_name_in_certificate": "localhost"}):
        _connect(server, encrypt="yes", trust_server_certificate=False, **options).close()


def test_tds_8_strict_encryption_with_tls_1_2_and_1_3(
    sql_server: StartServer,
    demo: DemoSource,
    certificate_authority: TestCertificateAuthority,
    trust_certificate_authority: TrustAuthority,
    capfd: pytest.CaptureFixture[str],
) -> None:
    trust_certificate_authority(certificate_authority)
    certificate = certificate_authority.issue(("localhost",))
    for version in ("1.2", "1.3"):
        server = sql_server(demo.path, tls=True, tls_certificate=certificate, tls_version=version)
        connection = _connect(server, encrypt="strict", trust_server_certificate=False, host="localhost")
        try:
            assert _query(connection, "SELECT count(*) FROM etl.Matter")[0][0][0] > 0
        finally:
            connection.close()
        if version == "1.3":  # TLS 1.3 only: the TDS 7.x in-band handshake is closed at the ClientHello
            with pytest.raises(mssql_python.Error, match="TCP Provider: Error code 0x2746"):
                _connect(server, encrypt="yes", host="localhost")
        server.stop()
    log = capfd.readouterr().err
    assert "(encryption: TDS 8.0, TLSv1.2)" in log and "(encryption: TDS 8.0, TLSv1.3)" in log
    assert "in-band TLS refused (TLS 1.3 only, which needs Encrypt=strict)" in log


def test_without_tls_encrypt_yes_is_refused_by_the_driver(sql_server: StartServer, demo: DemoSource) -> None:
    server = sql_server(demo.path)
    with pytest.raises(mssql_python.Error, match="Encryption not supported"):
        _connect(server, encrypt="yes")


def test_other_statements_get_sql_server_errors(sql_server: StartServer, demo: DemoSource) -> None:
    server = sql_server(demo.path)
    connection = _connect(server)
    try:
        for sql, message in (
            ("SELECT * FROM etl.Nope", "Invalid object name 'etl.Nope'."),
            ("SELECT Nope FROM etl.Matter", "Invalid column name 'Nope'."),
            ("DELETE FROM etl.Matter", 'Failed to update database "Firm" because the database is read-only.'),
        ):
            with pytest.raises(mssql_python.Error) as error:
                _query(connection, sql)
            assert message in str(error.value)
        # Parameterised queries go as RPC sp_prepexec, which this server does not offer.
        cursor = connection.cursor()
        with pytest.raises(mssql_python.Error, match="Could not find stored procedure 'sp_prepexec'"):
            cursor.execute("SELECT count(*) FROM etl.Matter WHERE Status = ?", 0)
        assert _query(connection, "SET NOCOUNT ON; SELECT DB_NAME(), 1 + 1")[0] == [("Firm", 2)]
    finally:
        connection.close()


def test_a_stalled_connection_does_not_block_another(sql_server: StartServer, demo: DemoSource) -> None:
    server = sql_server(demo.path, faults=Faults(stall_seconds=1.5, when_sql_contains="[WorkItem]"))
    stalled_done: list[float] = []

    def stalled() -> None:
        connection = _connect(server)
        try:
            _query(connection, "SELECT count(*) FROM etl.[WorkItem]")
            stalled_done.append(time.monotonic())
        finally:
            connection.close()

    thread = threading.Thread(target=stalled)
    thread.start()
    # The server records a batch just before it stalls on it: from then on the first connection is stalled.
    deadline = time.monotonic() + 10
    while not any("[WorkItem]" in sql for sql in server.batches()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any("[WorkItem]" in sql for sql in server.batches())
    connection = _connect(server)
    try:
        assert _query(connection, "SELECT count(*) FROM etl.[Matter]")[0][0][0] > 0
        answered = time.monotonic()
    finally:
        connection.close()
    thread.join(10)
    assert stalled_done and answered < stalled_done[0]


def test_query_timeout_cancels_a_stall_and_the_connection_stays_usable(
    sql_server: StartServer, demo: DemoSource
) -> None:
    server = sql_server(demo.path, faults=Faults(stall_seconds=30, when_sql_contains="[WorkItem]"))
    connection = _connect(server)
    connection.timeout = 1
    try:
        started = time.monotonic()
        with pytest.raises(mssql_python.Error, match="Query timeout expired"):
            _query(connection, "SELECT count(*) FROM etl.[WorkItem]")
        assert time.monotonic() - started < 5
        assert _query(connection, "SELECT count(*) FROM etl.[Matter]")[0][0][0] > 0
    finally:
        connection.close()


def test_faults_can_change_while_running(sql_server: StartServer, demo: DemoSource) -> None:
    server = sql_server(demo.path)
    _connect(server).close()
    server.set_faults(Faults(refuse_logins=True))
    # Another connection string: mssql-python pools connections, and a pooled one would not log in again.
    with pytest.raises(mssql_python.Error, match="Server is in script upgrade mode"):
        _connect(server, encrypt="optional")
    assert server.batches() == []


def test_the_threaded_server_stops_its_threads_and_sockets(demo: DemoSource) -> None:
    before = set(threading.enumerate())
    server = TdsServer(demo.path).start()
    port = server.port
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
    deadline = time.monotonic() + 5
    while len(set(threading.enumerate()) - before) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(set(threading.enumerate()) - before) == 4  # the acceptor and one per connection
    server.stop()
    assert set(threading.enumerate()) == before
    for client in clients:
        assert client.recv(10) == b""  # closed by the server
        client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_cli_function_prints_a_connection_string_the_importer_accepts(
    demo: DemoSource, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def interrupt() -> None:
        output = capsys.readouterr().out
        seen["text"] = output.strip().splitlines()[-1]
        source = parse_connection_string(seen["text"])
        with socket.create_connection((source.host, source.port), timeout=5):  # type: ignore[union-attr]
            seen["port"] = source.port  # type: ignore[union-attr]
        raise KeyboardInterrupt

    monkeypatch.setattr(tds_cli, "_wait_for_interrupt", interrupt)
    tds_cli.dev_sql_server(demo.path, port=0, tls=True)
    source = parse_connection_string(seen["text"])
    assert source.encrypt == "yes" and source.trust_server_certificate  # type: ignore[union-attr]
    assert (source.user, source.password, source.database) == ("etl", DEFAULT_PASSWORD, "Firm")  # type: ignore[union-attr]
    assert "Stopped." in capsys.readouterr().out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", seen["port"]), timeout=1)


# --------------------------------------------------------------------------------------------------
# Our importer, end to end over HTTP, through the test SQL Server


def _assert_failed_cleanly(service: Service, request_id: str) -> dict[str, Any]:
    status = service.wait(request_id)
    assert status["state"] == "Failed", status
    assert not service.staging_exists(request_id)
    assert not any(service.production_rows().values())
    return dict(status["failure"])


def test_demo_imports_and_promotes_through_sql_server(
    service: Service, demo: DemoSource, sql_server: StartServer
) -> None:
    server = sql_server(demo.path, tls=True)
    request_id = service.import_(server.ado_connection_string(encrypt=True))
    status = service.wait(request_id)
    assert status["state"] == "Validated", status["failure"] or status["validation"]
    assert status["source"].startswith("SQL Server 127.0.0.1")
    promoted = service.wait_promoted(request_id)
    assert promoted["state"] == "Promoted", promoted["failure"]

    expected = row_counts(demo.path)
    production = service.production_rows()
    counts = {name: len(rows) for name, rows in production.items()}
    assert counts == expected

    # Every money value arrived exactly (production returns Decimals; the source stored REALs).
    with sqlite3.connect(demo.path) as source:
        for table, columns in (
            ("WorkItem", ("Rate", "Amount")),
            ("Invoice", ("FeesTotal", "DisbursementsTotal", "TaxTotal", "Total")),
        ):
            listed = ", ".join(columns)
            stored = {r[0]: r[1:] for r in source.execute(f'SELECT ImportId, {listed} FROM "{table}"')}
            names = [
                "ImportId",
                "PlatformId",
                "LastRequestId",
                *(c.name for c in ENTITY_BY_NAME[table].columns),
            ]
            at = [names.index(c) for c in columns]
            promoted_rows = {r[0]: tuple(r[i] for i in at) for r in production[table]}
            assert stored.keys() == promoted_rows.keys() and stored
            for import_id, values in stored.items():
                exact = tuple(Decimal(repr(v)).quantize(Decimal("0.0001")) for v in values)
                assert promoted_rows[import_id] == exact, import_id
                assert all(isinstance(v, Decimal) for v in promoted_rows[import_id])

    sent = server.batches()
    assert (
        sent[0].startswith("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE") and "TABLE_SCHEMA = 'etl'" in sent[0]
    )
    assert "SELECT etl.[SchemaVersion].[Version] \nFROM etl.[SchemaVersion]" in sent
    # The row count (with the money columns' sums, for reconciliation) of every table.
    assert any(s.startswith("SELECT count(*) AS count_1") and s.endswith("FROM etl.[WorkItem]") for s in sent)
    assert "SELECT TOP 50 etl.[WorkItem].[ImportId], etl.[WorkItem].[MatterId]" in "".join(sent)
    assert any(s.startswith("SELECT TOP ") and "WHERE etl.[WorkItem].[ImportId] >= N'WI-" in s for s in sent)


def test_wrong_password_fails_the_import_as_login_failed(
    service: Service, demo: DemoSource, sql_server: StartServer
) -> None:
    server = sql_server(demo.path)
    request_id = service.import_(server.ado_connection_string(password="Not-The-Password"))
    failure = _assert_failed_cleanly(service, request_id)
    assert failure["code"] == "login-failed"
    assert "refused the login for user 'etl'" in failure["reason"]
    assert "Not-The-Password" not in failure["reason"]


def test_refused_logins_fail_the_import(service: Service, demo: DemoSource, sql_server: StartServer) -> None:
    server = sql_server(demo.path, faults=Faults(refuse_logins=True))
    failure = _assert_failed_cleanly(service, service.import_(server.ado_connection_string()))
    assert failure["code"] == "login-failed"
    assert "Server is in script upgrade mode" in failure["reason"]


def test_a_stalled_query_times_out_with_command_timeout(
    serve: Serve, demo: DemoSource, sql_server: StartServer
) -> None:
    # No reconnections allowed: the first timeout is the failure (test_resilient_reads covers retrying).
    server = sql_server(demo.path, faults=Faults(stall_seconds=60, when_sql_contains="[WorkItem]"))
    with serve(read_retries=0) as service:
        started = time.monotonic()
        failure = _assert_failed_cleanly(
            service, service.import_(server.ado_connection_string(command_timeout=1))
        )
        assert time.monotonic() - started < 20
    assert failure["code"] == "source-read-failed"
    reason = failure["reason"]
    assert "Reading the source failed" in reason and "Query timeout expired" in reason
    assert "raise Command Timeout" in reason


def test_a_connection_closed_mid_read_fails_the_import(
    serve: Serve, demo: DemoSource, sql_server: StartServer
) -> None:
    # 120 rows into the reads of WorkItem (the schema checks before are not counted): mid-result. No
    # reconnections allowed, so the drop is the failure (test_resilient_reads covers resuming).
    faults = Faults(close_after_rows=120, when_sql_contains="[WorkItem]")
    server = sql_server(demo.path, faults=faults)
    with serve(read_retries=0) as service:
        failure = _assert_failed_cleanly(service, service.import_(server.ado_connection_string()))
    assert failure["code"] == "source-read-failed", failure
    reason = failure["reason"]
    assert "Reading the source failed" in reason and "etl.WorkItem" in reason
    assert "the connection to 127.0.0.1," in reason and "was lost while reading" in reason, reason


def test_a_value_no_sql_server_column_could_hold_fails_the_import(
    serve: Serve, demo_with_errors: DemoSource, sql_server: StartServer
) -> None:
    server = sql_server(demo_with_errors.path)
    with serve(read_retries=0) as service:
        failure = _assert_failed_cleanly(service, service.import_(server.ado_connection_string()))
    assert failure["code"] == "source-read-failed"
    assert "would be truncated in table 'Firm.etl.Contact', column 'Country'" in failure["reason"]


def test_a_value_no_sql_server_column_could_hold_is_not_retried(
    serve: Serve, demo_with_errors: DemoSource, sql_server: StartServer
) -> None:
    server = sql_server(demo_with_errors.path)
    with serve(read_retries=2, retry_backoff_seconds=0.05) as service:
        failure = _assert_failed_cleanly(service, service.import_(server.ado_connection_string()))
    assert "would be truncated" in failure["reason"]
    assert "reconnection" not in failure["reason"], failure["reason"]
