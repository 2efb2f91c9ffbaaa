"""Connection failures that explain themselves: each TLS and login case made real with the test SQL Server,
imported through our service over HTTP, must fail with its own code and a reason naming the
connection-string setting that fixes it. Where a fix exists, the fixed string is imported too.

The driver's own words for each case (ODBC Driver 18.6 in mssql-python 1.16) are listed above
`_SQL_SERVER_FAILURES` in src/efimis_etl/source/connect.py; `test_recorded_driver_messages_map_to_codes`
pins them without a server.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import tds_fixtures
from conftest import DEMO_SECRET, Service
from efimis_devtools.tds_server import DEFAULT_PASSWORD, Faults
from efimis_devtools.tds_tls import TestCertificateAuthority
from efimis_etl.schema.tables import render_ddl
from efimis_etl.settings import Settings
from efimis_etl.source.connect import explain_connect_failure, explain_read_failure
from efimis_etl.source.connstr import parse_connection_string
from tds_fixtures import StartServer, TrustAuthority

sql_server = tds_fixtures.sql_server
certificate_authority = tds_fixtures.certificate_authority
trust_certificate_authority = tds_fixtures.trust_certificate_authority

TIMEOUT = 2  # Connection Timeout of every string here: failures must come fast


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Connecting succeeds or fails before any store is used: the embedded SQLite stores suffice (this
    overrides conftest's fixture, which runs each test on the PostgreSQL stores as well)."""
    return Settings(data_dir=tmp_path / "var", batch_size=50, demo_client_secret=DEMO_SECRET)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The schema's tables, empty: an import of it reaches Validated at once when it can connect."""
    path = tmp_path / "empty.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(render_ddl("sqlite"))
    return path


def _without(connection_string: str, *keywords: str) -> str:
    return ";".join(p for p in connection_string.split(";") if p.split("=", 1)[0] not in keywords)


def _failed(service: Service, connection_string: str) -> tuple[dict[str, Any], dict[str, Any]]:
    request_id = service.import_(connection_string)
    status = service.wait(request_id, timeout=30)
    assert status["state"] == "Failed", status
    assert not service.staging_exists(request_id)
    assert DEFAULT_PASSWORD not in status["failure"]["reason"]
    return status, dict(status["failure"])


def _validated(service: Service, connection_string: str) -> dict[str, Any]:
    status = service.wait(service.import_(connection_string), timeout=30)
    assert status["state"] == "Validated", status["failure"]
    return status


# --------------------------------------------------------------------------------------------------
# TLS


def test_encryption_is_required_and_the_certificate_verified_by_default(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    server = sql_server(source, tls=True)  # a self-signed certificate, as SQL Server makes for itself
    text = _without(server.ado_connection_string(timeout=TIMEOUT), "Encrypt", "TrustServerCertificate")
    status, failure = _failed(service, text)
    assert "Encrypt=yes, TrustServerCertificate=no" in status["source"]
    assert failure["code"] == "certificate-not-trusted"
    assert "TrustServerCertificate=True" in failure["reason"]
    assert "certificate verify failed:self-signed certificate" in failure["reason"]

    # TrustServerCertificate=true is honoured when the user sets it, and the status says so.
    status = _validated(service, text + ";TrustServerCertificate=true")
    assert "Encrypt=yes, TrustServerCertificate=yes" in status["source"]


def test_an_expired_certificate_is_not_trusted(
    service: Service,
    source: Path,
    sql_server: StartServer,
    certificate_authority: TestCertificateAuthority,
    trust_certificate_authority: TrustAuthority,
) -> None:
    trust_certificate_authority(certificate_authority)
    server = sql_server(
        source, tls=True, tls_certificate=certificate_authority.issue(("localhost",), valid=False)
    )
    text = server.ado_connection_string(
        encrypt=True, trust_server_certificate=False, host_name_in_certificate="localhost", timeout=TIMEOUT
    )
    _, failure = _failed(service, text)
    assert failure["code"] == "certificate-not-trusted"
    assert "TrustServerCertificate" in failure["reason"] and "certificate has expired" in failure["reason"]


def test_a_certificate_for_another_host_name_names_host_name_in_certificate(
    service: Service,
    source: Path,
    sql_server: StartServer,
    certificate_authority: TestCertificateAuthority,
    trust_certificate_authority: TrustAuthority,
) -> None:
    # A certificate the driver trusts, but issued for db.example.test while we connect to 127.0.0.1.
    trust_certificate_authority(certificate_authority)
    server = sql_server(source, tls=True, tls_certificate=certificate_authority.issue(("db.example.test",)))
    text = server.ado_connection_string(encrypt=True, trust_server_certificate=False, timeout=TIMEOUT)
    _, failure = _failed(service, text)
    assert failure["code"] == "host-name-mismatch"
    assert "HostNameInCertificate" in failure["reason"] and "'127.0.0.1'" in failure["reason"]
    assert "subject name does not match host name" in failure["reason"]

    # The fix it names: the certificate is still verified, against that name.
    status = _validated(service, text + ";HostNameInCertificate=db.example.test")
    assert "TrustServerCertificate=no, HostNameInCertificate=db.example.test" in status["source"]


def test_a_server_offering_tls_1_3_only_says_no_usable_tls_and_strict_fixes_it(
    service: Service,
    source: Path,
    sql_server: StartServer,
    certificate_authority: TestCertificateAuthority,
    trust_certificate_authority: TrustAuthority,
) -> None:
    # SQL Server with TLS 1.2 disabled offers TLS 1.3 with TDS 8.0 only: it closes the TDS 7.x in-band
    # handshake at the ClientHello, whatever Encrypt (True, False) or TrustServerCertificate say.
    trust_certificate_authority(certificate_authority)
    certificate = certificate_authority.issue(("db.example.test",))
    server = sql_server(source, tls=True, tls_certificate=certificate, tls_version="1.3")
    for encrypt in (True, False):
        _, failure = _failed(service, server.ado_connection_string(encrypt=encrypt, timeout=TIMEOUT))
        assert failure["code"] == "no-usable-tls", failure
        assert "Encrypt=Strict" in failure["reason"] and "TLS 1.2" in failure["reason"]
        assert "Error code 0x2746" in failure["reason"]

    # Encrypt=Strict: TLS 1.3 first, then TDS 8.0 inside it, with the certificate verified.
    status = _validated(
        service,
        server.ado_connection_string(
            encrypt="Strict",
            trust_server_certificate=None,
            host_name_in_certificate="db.example.test",
            timeout=TIMEOUT,
        ),
    )
    assert "Encrypt=strict" in status["source"]


def test_strict_against_a_server_without_tds_8_says_to_use_encrypt_true(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    server = sql_server(source, tls=False)
    _, failure = _failed(service, server.ado_connection_string(encrypt="strict", timeout=TIMEOUT))
    assert failure["code"] == "no-usable-tls"
    assert "Encrypt=True" in failure["reason"] and "TDS 8.0" in failure["reason"]


def test_strict_ignores_trust_server_certificate_and_says_so(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    server = sql_server(source, tls=True)  # self-signed
    text = server.ado_connection_string(
        encrypt="strict", trust_server_certificate=True, host_name_in_certificate="localhost", timeout=TIMEOUT
    )
    _, failure = _failed(service, text)
    assert failure["code"] == "certificate-not-trusted"
    assert "TrustServerCertificate is ignored" in failure["reason"] and "Encrypt=True" in failure["reason"]


def test_a_server_without_tls_says_encryption_not_supported(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    server = sql_server(source, tls=False)
    _, failure = _failed(service, server.ado_connection_string(encrypt=True, timeout=TIMEOUT))
    assert failure["code"] == "encryption-not-supported"
    assert "Encrypt=False" in failure["reason"]
    _validated(service, server.ado_connection_string(encrypt=False, timeout=TIMEOUT))


# --------------------------------------------------------------------------------------------------
# Login, database, network


def test_a_wrong_password_names_user_id_and_password(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    server = sql_server(source)
    _, failure = _failed(service, server.ado_connection_string(password="Not-The-Password", timeout=TIMEOUT))
    assert failure["code"] == "login-failed"
    assert "User ID" in failure["reason"] and "Password" in failure["reason"]
    assert "Login failed for user 'etl'." in failure["reason"]
    assert "Not-The-Password" not in failure["reason"]


def test_an_unknown_database_is_a_failed_login_that_names_initial_catalog(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    # SQL Server sends 4060 ("Cannot open database") and then 18456; the driver shows only 18456, so the
    # importer cannot tell an unknown database from a wrong password, and the message names both.
    server = sql_server(source)
    _, failure = _failed(service, server.ado_connection_string(database="Elsewhere", timeout=TIMEOUT))
    assert failure["code"] == "login-failed"
    assert "Initial Catalog 'Elsewhere'" in failure["reason"] and "User ID" in failure["reason"]
    assert "Cannot open database" not in failure["reason"]  # what the driver hides


def test_error_4060_alone_is_reported_as_database_not_found(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    # Not what SQL Server sends (see above), but what the driver does with 4060 by itself.
    server = sql_server(source, faults=Faults(only_4060_for_unknown_database=True))
    _, failure = _failed(service, server.ado_connection_string(database="Elsewhere", timeout=TIMEOUT))
    assert failure["code"] == "database-not-found"
    assert "Initial Catalog" in failure["reason"] and "'Elsewhere'" in failure["reason"]
    assert 'Cannot open database "Elsewhere" requested by the login.' in failure["reason"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on leaving: nothing listens there


def test_a_closed_port_names_server(service: Service) -> None:
    port = _closed_port()
    text = (
        f"Server=tcp:127.0.0.1,{port};Initial Catalog=Firm;User ID=etl;Password=x;Encrypt=False;"
        f"Connection Timeout={TIMEOUT}"
    )
    _, failure = _failed(service, text)
    assert failure["code"] == "host-unreachable"
    assert (
        "check Server (host name and port)" in failure["reason"] and f"127.0.0.1,{port}" in failure["reason"]
    )


def test_a_server_that_never_answers_times_out_naming_connection_timeout(
    service: Service, source: Path, sql_server: StartServer
) -> None:
    server = sql_server(source, faults=Faults(never_answer_prelogin=True))
    started = time.monotonic()
    _, failure = _failed(service, server.ado_connection_string(timeout=TIMEOUT))
    assert time.monotonic() - started < 15
    assert failure["code"] == "timeout"
    assert "Connection Timeout" in failure["reason"] and f"({TIMEOUT} s)" in failure["reason"]
    assert "Timeout error [258]" in failure["reason"]


# --------------------------------------------------------------------------------------------------
# The table itself, on the driver's exact words (no server)

_DRIVER = "Driver Error: Client unable to establish connection; DDBC Error: [Microsoft]"
RECORDED = [
    (_DRIVER + "SSL Provider: [error:0A000086:SSL routines::certificate verify failed:self-signed "
     "certificate]", "certificate-not-trusted", "TrustServerCertificate"),
    (_DRIVER + "SSL Provider: [error:0A000086:SSL routines::certificate verify failed:self-signed "
     "certificate in certificate chain]", "certificate-not-trusted", "TrustServerCertificate"),
    (_DRIVER + "SSL Provider: [error:0A000086:SSL routines::certificate verify failed:subject name does "
     "not match host name]", "host-name-mismatch", "HostNameInCertificate"),
    (_DRIVER + "TCP Provider: Error code 0x2746", "no-usable-tls", "Encrypt"),
    (_DRIVER + "TCP Provider: Error code 0x68", "no-usable-tls", "Encrypt"),
    (_DRIVER + "SSL Provider: [error:0A00042E:SSL routines::tlsv1 alert protocol version:SSL alert number "
     "70]", "no-usable-tls", "Encrypt"),
    (_DRIVER + "SSL Provider: [error:0A00014D:SSL routines::legacy sigalg disallowed or unsupported]",
     "no-usable-tls", "Encrypt"),
    (_DRIVER + "SSL Provider: [error:0A000126:SSL routines::unexpected eof while reading]", "tls-failed",
     "TrustServerCertificate"),
    (_DRIVER + "Encryption not supported on SQL Server.", "encryption-not-supported", "Encrypt=False"),
    ("Driver Error: Invalid authorization specification; DDBC Error: [Microsoft][SQL Server]Login failed "
     "for user 'etl'.", "login-failed", "Initial Catalog"),
    ('Driver Error: Syntax error or access violation; DDBC Error: [Microsoft][SQL Server]Cannot open '
     'database "Elsewhere" requested by the login. The login failed.', "database-not-found", "Initial Catalog"),
    (_DRIVER + "SQL Server Network Interfaces: Error Locating Server/Instance Specified [xFFFFFFFF]. ",
     "instance-not-found", "Server"),
    (_DRIVER + "TCP Provider: Timeout error [258]. ", "timeout", "Connection Timeout"),
    (_DRIVER + "TCP Provider: Error code 0x2749", "host-unreachable", "Server"),
]  # fmt: skip


@pytest.mark.parametrize(("message", "code", "setting"), RECORDED)
def test_recorded_driver_messages_map_to_codes(message: str, code: str, setting: str) -> None:
    source = parse_connection_string(
        "Server=tcp:db.example.test\\INST,1433;Initial Catalog=Firm;User ID=etl;Password=S3cret;Encrypt=True"
    )
    explained = explain_connect_failure(source, RuntimeError(message))
    assert explained.code == code
    assert setting in explained.message
    assert message.strip() in explained.message  # the driver's words stay, as detail


def test_read_failures_name_the_lost_connection_or_the_command_timeout() -> None:
    source = parse_connection_string(
        "Server=tcp:db.example.test,1433;Initial Catalog=Firm;User ID=etl;Password=S3cret;Encrypt=True"
    )
    lost = explain_read_failure(
        source,
        RuntimeError("Driver Error: Communication link failure; DDBC Error: TCP Provider: Error code 0x2746"),
    )
    assert lost.code == "source-read-failed" and "connection to db.example.test,1433 was lost" in lost.message
    slow = explain_read_failure(source, RuntimeError("DDBC Error: [Microsoft]Query timeout expired"))
    assert slow.code == "source-read-failed" and "raise Command Timeout" in slow.message
    other = explain_read_failure(source, RuntimeError("Invalid object name 'etl.Nope'."))
    assert other.message == "Reading the source failed: Invalid object name 'etl.Nope'."
