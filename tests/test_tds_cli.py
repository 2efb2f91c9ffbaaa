"""`efimis-etl dev-sql-server` with its faults, run as a user runs it: the real command in a child process,
reached through Microsoft's driver with the connection string it prints (the importer's own `open_source`).
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import DemoSource
from efimis_etl.errors import SourceError
from efimis_etl.source.connect import SourceConnection, open_source
from efimis_etl.source.connstr import parse_connection_string

ALL_WORK_ITEMS = "SELECT ImportId FROM etl.[WorkItem] ORDER BY ImportId"
# Several columns, as the importer reads: mssql-python 1.16's fetchall() returns a one-column result cut by
# a lost connection as if it were complete, and raises only once a row's later column cannot be read.
WORK_ITEM_ROWS = "SELECT ImportId, MatterId, Description, Amount FROM etl.[WorkItem] ORDER BY ImportId"
START_SECONDS = 60


@dataclass
class RunningServer:
    connection_string: str
    banner: list[str]
    log: Path  # the command's stderr: the server logs each fault there as it fires

    def connect(self) -> SourceConnection:
        return open_source(parse_connection_string(self.connection_string))


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "efimis_etl.cli", "dev-sql-server", *args]


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


@contextmanager
def dev_sql_server(tmp_path: Path, source: Path, *options: str) -> Iterator[RunningServer]:
    """The command serving `source` on a free port without TLS, until Ctrl-C (SIGINT) at the end."""
    log = tmp_path / "dev-sql-server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            _command(str(source), "--port", "0", "--no-tls", *options),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_environment(),
        )
    lines: queue.Queue[str] = queue.Queue()
    # A thread reads stdout, so that waiting for the banner has a deadline.
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True)
    reader.start()
    try:
        banner: list[str] = []
        deadline = time.monotonic() + START_SECONDS
        while not (banner and banner[-1].startswith("Server=")):
            assert process.poll() is None, f"dev-sql-server exited: {log.read_text()}"
            try:
                banner.append(lines.get(timeout=max(0.0, deadline - time.monotonic())).rstrip("\n"))
            except queue.Empty:
                pytest.fail(f"dev-sql-server printed no connection string within {START_SECONDS} s: {banner}")
        yield RunningServer(banner[-1], banner, log)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
        reader.join(5)
    assert process.returncode == 0, log.read_text()
    assert lines.get_nowait().strip() == "Stopped."


def _work_items(source: Path) -> list[tuple[str]]:
    with sqlite3.connect(source) as connection:
        return sorted(connection.execute("SELECT ImportId FROM WorkItem").fetchall())


def _timed(connection: SourceConnection, sql: str) -> tuple[list[tuple[object, ...]], float]:
    started = time.monotonic()
    rows = list(connection.rows(sql))
    return rows, time.monotonic() - started


def test_help_lists_the_fault_options() -> None:
    shown = subprocess.run(
        _command("--help"), capture_output=True, text=True, env=_environment(), timeout=60, check=True
    ).stdout
    for option in ("--stall-after-rows", "--stall-seconds", "--drop-after-rows", "--refuse-logins"):
        assert option in shown
    assert "Faults" in shown and "mid-result" in shown and "error 18401" in shown


def test_stall_after_rows_stalls_once_in_the_first_query_with_more_rows(
    tmp_path: Path, demo: DemoSource
) -> None:
    expected = _work_items(demo.path)
    assert len(expected) > 5
    with dev_sql_server(tmp_path, demo.path, "--stall-after-rows", "5", "--stall-seconds", "4") as server:
        assert (
            "Fault: the first query returning more than 5 rows stalls 4 s after them (once)." in server.banner
        )
        connection = server.connect()
        try:
            # Five rows are not more than five: answered at once, and the stall is still to come.
            first_five, quick = _timed(
                connection, "SELECT TOP 5 ImportId FROM etl.[WorkItem] ORDER BY ImportId"
            )
            assert first_five == expected[:5] and quick < 2
            assert "stalling" not in server.log.read_text()
            rows, stalled = _timed(connection, ALL_WORK_ITEMS)
            assert rows == expected  # every row arrives once the stall is over
            assert stalled >= 4
            assert "connection 51: stalling 4 s after 5 rows (fault)" in server.log.read_text()
            again, quick = _timed(connection, ALL_WORK_ITEMS)  # once: the next query is answered at once
            assert again == expected and quick < 2
        finally:
            connection.close()
    assert server.log.read_text().count("stalling") == 1


def test_a_query_timeout_cancels_the_stall_mid_result_and_the_connection_stays_usable(
    tmp_path: Path, demo: DemoSource
) -> None:
    with dev_sql_server(tmp_path, demo.path, "--stall-after-rows", "5", "--stall-seconds", "60") as server:
        # The importer's own stall limit (EFIMIS_STALL_SECONDS): the driver cancels with an ATTENTION.
        connection = open_source(parse_connection_string(server.connection_string), stall_seconds=1)
        try:
            started = time.monotonic()
            with pytest.raises(connection.errors, match="Query timeout expired"):
                connection.rows(WORK_ITEM_ROWS)
            assert time.monotonic() - started < 10
            assert "stalling 60 s after 5 rows (fault)" in server.log.read_text()
            assert [row[:1] for row in connection.rows(WORK_ITEM_ROWS)] == _work_items(demo.path)
        finally:
            connection.close()


def test_drop_after_rows_closes_the_connection_mid_result_once(tmp_path: Path, demo: DemoSource) -> None:
    expected = _work_items(demo.path)
    with dev_sql_server(tmp_path, demo.path, "--drop-after-rows", "5") as server:
        assert (
            "Fault: the first query returning more than 5 rows loses its connection after them (once)."
            in (server.banner)
        )
        connection = server.connect()
        started = time.monotonic()
        try:
            with pytest.raises(connection.errors):
                connection.rows(WORK_ITEM_ROWS)
        finally:
            connection.close()
        assert time.monotonic() - started < 10  # dropped, not stalled: no other fault is on
        assert "connection 51: closing the connection after 5 rows (fault)" in server.log.read_text()
        reconnected = server.connect()  # what the importer does next: the new connection reads it all
        try:
            assert [row[:1] for row in reconnected.rows(WORK_ITEM_ROWS)] == expected
        finally:
            reconnected.close()
    assert server.log.read_text().count("closing the connection") == 1


def test_refuse_logins_fails_every_login_as_sql_server_does(tmp_path: Path, demo: DemoSource) -> None:
    with dev_sql_server(tmp_path, demo.path, "--refuse-logins") as server:
        assert "Fault: every login is refused (error 18401)." in server.banner
        for _ in range(2):
            with pytest.raises(SourceError) as refused:
                server.connect()
            assert refused.value.code == "login-failed"
            assert "Server is in script upgrade mode" in str(refused.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--stall-seconds", "5"], "--stall-seconds needs --stall-after-rows N"),
        (["--only-sql-containing", "[WorkItem]"], "--only-sql-containing narrows"),
        (["--stall-after-rows", "-1"], "Invalid value for '--stall-after-rows'"),
    ],
)
def test_fault_options_that_mean_nothing_are_refused(
    demo: DemoSource, options: list[str], message: str
) -> None:
    refused = subprocess.run(
        _command(str(demo.path), "--port", "0", *options),
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert message in refused.stderr, refused.stderr
