"""Fixtures for the test SQL Server (efimis_etl.devtools.tds_server): started per test, on 127.0.0.1.

The server runs in a child process (`TdsServerProcess`): Microsoft's driver keeps the GIL while it
waits for rows, so a server thread in the test process could starve and both would hang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from efimis_etl.devtools.tds_server import TdsServerProcess

StartServer = Callable[..., TdsServerProcess]


@pytest.fixture
def sql_server() -> Iterator[StartServer]:
    """`sql_server(path, **options)` starts a test SQL Server on the SQLite file; all stop afterwards."""
    started: list[TdsServerProcess] = []

    def start(source: Path, *, log_level: int = logging.INFO, **options: Any) -> TdsServerProcess:
        server = TdsServerProcess(source, log_level=log_level, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
        assert not server.is_running
