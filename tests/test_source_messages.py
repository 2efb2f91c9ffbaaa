"""Failure messages name the server as the user wrote it, an IPv6 address in brackets."""

from __future__ import annotations

import pytest

from efimis_etl.source.connect import explain_connect_failure, explain_read_failure
from efimis_etl.source.connstr import SqlServerSource


@pytest.mark.parametrize(
    ("host", "port", "instance", "shown"),
    [
        ("::1", 1433, None, "[::1],1433"),
        ("fe80::1%eth0", None, "SQLEXPRESS", "[fe80::1%eth0]\\SQLEXPRESS"),
        ("db.example.com", 1433, None, "db.example.com,1433"),
    ],
)
def test_read_and_connect_failures_show_the_server_unambiguously(
    host: str, port: int | None, instance: str | None, shown: str
) -> None:
    source = SqlServerSource(host, port, instance, "Firm", "etl", "secret")
    lost = explain_read_failure(source, RuntimeError("[08S01] Communication link failure"))
    unreachable = explain_connect_failure(source, RuntimeError("TCP Provider: Error code 0x2749"))
    assert f"the connection to {shown} was lost" in lost.message
    assert f"Could not reach SQL Server at {shown}:" in unreachable.message
    assert "secret" not in lost.message + unreachable.message
