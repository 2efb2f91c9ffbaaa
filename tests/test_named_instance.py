"""Named instances: `host\\instance` is resolved through the SQL Server Browser (UDP 1434), an explicit port
wins, and an unknown instance fails with a message naming what to check.

The test SQL Server answers Browser requests itself (`instance=`; `efimis_devtools.tds_browser`). Only
one process can listen on UDP 127.0.0.1:1434, so every test here that needs the port takes it in turn
(`browser_port`, a lock shared with concurrent test runs).
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
from efimis_devtools import tds_cli
from efimis_devtools.tds_browser import CLNT_UCAST_EX, CLNT_UCAST_INST, SVR_RESP, SqlBrowser
from efimis_etl.schema.tables import render_ddl
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from tds_fixtures import StartServer

sql_server = tds_fixtures.sql_server
browser_port = tds_fixtures.browser_port

TIMEOUT = 2


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Resolving a server does not depend on the stores: the embedded SQLite ones suffice (this overrides
    conftest's fixture, which runs each test on the PostgreSQL stores as well)."""
    return Settings(data_dir=tmp_path / "var", batch_size=50, demo_client_secret=DEMO_SECRET)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The schema's tables, empty: an import of it reaches Validated at once when it can connect."""
    path = tmp_path / "empty.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(render_ddl("sqlite"))
    return path


def _ask(port: int, request: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(timeout)
        client.sendto(request, ("127.0.0.1", port))
        try:
            return client.recv(65535)
        except TimeoutError:
            return None


def _records(reply: bytes) -> list[dict[str, str]]:
    assert reply[0] == SVR_RESP and int.from_bytes(reply[1:3], "little") == len(reply) - 3
    entries = [e for e in reply[3:].decode("ascii").split(";;") if e]
    return [dict(zip(*[iter(e.split(";"))] * 2, strict=True)) for e in entries]


def test_the_browser_responder_speaks_mc_sqlr() -> None:
    # On an ephemeral port, without Microsoft's driver: the protocol itself.
    with SqlBrowser({"INST": 14331, "Other": 14332}, port=0) as browser:
        reply = _ask(browser.port, bytes([CLNT_UCAST_INST]) + b"inst\0")
        assert reply is not None
        assert _records(reply) == [
            {
                "ServerName": "EFIMIS-TEST-TDS",
                "InstanceName": "INST",
                "IsClustered": "No",
                "Version": "16.0.4000.0",
                "tcp": "14331",
            }
        ]
        assert _ask(browser.port, bytes([CLNT_UCAST_INST]) + b"NOPE\0") is None  # unknown: no answer
        listing = _ask(browser.port, bytes([CLNT_UCAST_EX]))
        assert listing is not None and [r["tcp"] for r in _records(listing)] == ["14331", "14332"]
        assert _ask(browser.port, bytes([0x0F, 0x01]) + b"INST\0") is None  # DAC: not offered
        assert browser.requests[:2] == [(CLNT_UCAST_INST, "inst"), (CLNT_UCAST_INST, "NOPE")]


def test_a_named_instance_is_found_through_the_browser(
    service: Service, source: Path, sql_server: StartServer, browser_port: int
) -> None:
    server = sql_server(source, tls=True, instance="INST")
    text = server.ado_connection_string(instance="INST", with_port=False, timeout=TIMEOUT)
    assert text.startswith("Server=127.0.0.1\\INST;")  # no port: the client must ask the Browser
    status = service.wait(service.import_(text), timeout=30)
    assert status["state"] == "Validated", status["failure"]
    assert status["source"].startswith("SQL Server 127.0.0.1\\INST database 'Firm'")
    # ODBC Driver 18 asks for the instance in lower case; SQL Server Browser compares without case.
    assert (CLNT_UCAST_INST, "inst") in server.browser_requests()
    assert server.batches()  # the import's queries reached the instance's port


def test_an_explicit_port_wins_over_the_instance_name(
    service: Service, source: Path, sql_server: StartServer, browser_port: int
) -> None:
    # No Browser responder runs: the test holds UDP 1434 itself, to prove nothing asks there.
    server = sql_server(source, tls=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", browser_port))
        listener.setblocking(False)
        text = server.ado_connection_string(instance="INST", timeout=TIMEOUT)
        assert text.startswith(f"Server=tcp:127.0.0.1\\INST,{server.port};")
        status = service.wait(service.import_(text), timeout=30)
        assert status["state"] == "Validated", status["failure"]
        with pytest.raises(BlockingIOError):
            listener.recv(4096)  # no Browser request was sent
    assert f"127.0.0.1\\INST,{server.port}" in status["source"]


def test_an_unknown_instance_fails_naming_the_instance_and_the_browser(
    service: Service, source: Path, sql_server: StartServer, browser_port: int
) -> None:
    server = sql_server(source, tls=True, instance="INST")
    started = time.monotonic()
    request_id = service.import_(
        server.ado_connection_string(instance="NOPE", with_port=False, timeout=TIMEOUT)
    )
    status = service.wait(request_id, timeout=30)
    assert time.monotonic() - started < 15
    assert status["state"] == "Failed"
    failure = status["failure"]
    assert failure["code"] == "instance-not-found", failure
    reason = failure["reason"]
    assert "instance 'NOPE'" in reason and "SQL Server Browser" in reason and "UDP 1434" in reason
    assert "Server (host\\instance)" in reason and "Server=host\\instance,port" in reason
    assert "Error Locating Server/Instance Specified" in reason
    assert (CLNT_UCAST_INST, "nope") in server.browser_requests()


def test_cli_instance_option_starts_the_browser_too(
    source: Path, browser_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def interrupt() -> None:
        seen["text"] = capsys.readouterr().out.strip().splitlines()[-1]
        seen["reply"] = _ask(browser_port, bytes([CLNT_UCAST_INST]) + b"FIRM\0", timeout=2)
        raise KeyboardInterrupt

    monkeypatch.setattr(tds_cli, "_wait_for_interrupt", interrupt)
    tds_cli.dev_sql_server(source, port=0, tls=True, instance="FIRM")
    parsed = parse_connection_string(seen["text"])
    assert (parsed.host, parsed.instance, parsed.port) == ("127.0.0.1", "FIRM", None)  # type: ignore[union-attr]
    assert seen["reply"] is not None
    (record,) = _records(seen["reply"])
    assert record["InstanceName"] == "FIRM" and int(record["tcp"]) > 0
    assert "Stopped." in capsys.readouterr().out
    assert _ask(browser_port, bytes([CLNT_UCAST_INST]) + b"FIRM\0") is None  # stopped with the server
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", browser_port))  # and the port is free again
