"""Fixtures for the test SQL Server (efimis_devtools.tds_server): started per test, on 127.0.0.1.

The server runs in a child process (`TdsServerProcess`): Microsoft's driver keeps the GIL while it
waits for rows, so a server thread in the test process could starve and both would hang.

* `sql_server(path, **options)` starts one; all stop after the test.
* `certificate_authority` is a throw-away CA (`tds_tls.TestCertificateAuthority`) in the test's temporary
  directory; `trust_certificate_authority(ca)` makes Microsoft's driver in this process trust it for the
  rest of the test (OpenSSL's `SSL_CERT_FILE`; nothing on the machine changes).
* `browser_port` holds UDP 127.0.0.1:1434, where a SQL Server Browser listens, for the test: only one
  process can bind it, so tests that start a Browser responder (`sql_server(..., instance="INST")`) or
  need it silent take it in turn, across concurrent test runs on this machine too (a lock file).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from efimis_devtools.tds_browser import BROWSER_PORT
from efimis_devtools.tds_server import TdsServerProcess
from efimis_devtools.tds_tls import TestCertificateAuthority

StartServer = Callable[..., TdsServerProcess]
TrustAuthority = Callable[[TestCertificateAuthority], None]

_BROWSER_LOCK = Path(tempfile.gettempdir()) / f"efimis-sql-browser-{BROWSER_PORT}.lock"
_BROWSER_WAIT_SECONDS = 300
_held = {"browser_port": False}
_with_browser: list[TdsServerProcess] = []  # servers answering on UDP 1434, stopped before it is released


@pytest.fixture
def sql_server() -> Iterator[StartServer]:
    """`sql_server(path, **options)` starts a test SQL Server on the SQLite file; all stop afterwards."""
    started: list[TdsServerProcess] = []

    def start(source: Path, *, log_level: int = logging.INFO, **options: Any) -> TdsServerProcess:
        if options.get("instance") and options.get("browser_port", BROWSER_PORT) == BROWSER_PORT:
            assert _held["browser_port"], (
                "a test starting a Browser responder on UDP 1434 needs `browser_port`"
            )
        server = TdsServerProcess(source, log_level=log_level, **options)
        started.append(server)
        if options.get("instance"):
            _with_browser.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
        assert not server.is_running


@pytest.fixture
def certificate_authority(tmp_path: Path) -> TestCertificateAuthority:
    return TestCertificateAuthority(tmp_path / "test-ca")


@pytest.fixture
def trust_certificate_authority(monkeypatch: pytest.MonkeyPatch) -> TrustAuthority:
    """`trust_certificate_authority(ca)`: Microsoft's driver (ODBC Driver 18 loads OpenSSL's default
    verify paths for each connection) trusts `ca` instead of the system's authorities until the test ends."""

    def trust(authority: TestCertificateAuthority) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        assert os.environ["SSL_CERT_FILE"] == str(authority.ca_file)

    return trust


@pytest.fixture
def browser_port() -> Iterator[int]:
    """UDP 127.0.0.1:1434 is this test's (see the module's docstring); yields the port number."""
    with open(_BROWSER_LOCK, "a") as lock:
        deadline = time.monotonic() + _BROWSER_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"UDP port {BROWSER_PORT} stayed taken by another test run ({_BROWSER_LOCK})")
                time.sleep(0.1)
        _held["browser_port"] = True
        try:
            yield BROWSER_PORT
        finally:
            while _with_browser:  # whatever the order of fixture teardown, the port is free before release
                _with_browser.pop().stop()
            _held["browser_port"] = False
            fcntl.flock(lock, fcntl.LOCK_UN)
