"""Safe defaults when scaled out: no development sources and no non-public network unless the operator
says so; the embedded default keeps the demo working; `serve` and `worker` say at start what they accept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DEMO_SECRET, DemoSource, Serve, fresh_database
from efimis_etl.settings import Settings

CLI = [sys.executable, "-m", "efimis_etl.cli"]
LOOPBACK_SQL_SERVER = "Server=127.0.0.1,1433;Database=Firm;User ID=etl;Password=p"
PRIVATE_SQL_SERVER = "Server=10.1.2.3;Database=Firm;User ID=etl;Password=p"


@pytest.fixture
def stores_url() -> Iterator[str]:
    """PostgreSQL stores: what makes a deployment scaled out for the source policy."""
    with fresh_database("efimis_defaults") as url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


def test_the_embedded_default_accepts_loopback_and_development_sources(tmp_path: Path) -> None:
    policy = Settings(data_dir=tmp_path).source_policy()
    assert policy.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert policy.allow_dev_sources is True
    assert not policy.explicit_networks and not policy.explicit_dev_sources


@pytest.mark.parametrize("configured", ["staging_url", "production_url", "platform_database_url"])
def test_any_postgresql_url_turns_development_sources_and_non_public_networks_off(
    tmp_path: Path, configured: str
) -> None:
    settings = Settings(data_dir=tmp_path, **{configured: "postgresql://db.example.com/efimis"})
    policy = settings.source_policy()
    assert policy.allowed_networks == () and policy.allow_dev_sources is False


def test_the_operator_opts_in_explicitly_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFIMIS_STAGING_URL", "postgresql://db.example.com/efimis")
    monkeypatch.setenv("EFIMIS_ALLOW_DEV_SOURCES", "true")
    monkeypatch.setenv("EFIMIS_ALLOWED_NETWORKS", "10.20.0.0/16, 127.0.0.0/8")
    policy = Settings(data_dir=tmp_path).source_policy()
    assert policy.allowed_networks == ("10.20.0.0/16", "127.0.0.0/8") and policy.allow_dev_sources
    assert policy.explicit_networks and policy.explicit_dev_sources
    monkeypatch.setenv("EFIMIS_ALLOWED_NETWORKS", '["192.168.7.0/24"]')  # JSON, as before, works too
    assert Settings(data_dir=tmp_path).source_policy().allowed_networks == ("192.168.7.0/24",)
    # An operator may also close the embedded default: an empty list is "none", not "the default".
    monkeypatch.delenv("EFIMIS_STAGING_URL")
    monkeypatch.setenv("EFIMIS_ALLOWED_NETWORKS", "")
    assert Settings(data_dir=tmp_path).source_policy().allowed_networks == ()
    monkeypatch.setenv("EFIMIS_ALLOWED_NETWORKS", "10.0.0.0/8,intranet")
    with pytest.raises(ValueError, match="'intranet' is not a network; write CIDR"):
        Settings(data_dir=tmp_path)


def test_scaled_out_refuses_development_sources_and_non_public_hosts_by_default(
    serve: Serve, tmp_path: Path, stores_url: str, demo: DemoSource
) -> None:
    with serve(staging_url=stores_url, production_url=stores_url) as service:
        for source, words in (
            (demo.url, "EFIMIS_ALLOW_DEV_SOURCES=true"),
            ("postgresql://root@127.0.0.1:5432/postgres", "EFIMIS_ALLOW_DEV_SOURCES=true"),
            (LOOPBACK_SQL_SERVER, "a loopback address"),
            (PRIVATE_SQL_SERVER, "a private address"),
        ):
            response = service.client.post("/etl/import", json={"connectionString": source})
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "source-refused" and words in error["message"], error
        assert service.client.get("/etl/audit").json()["total"] == 4  # each refusal audited, none queued


def test_scaled_out_accepts_what_the_operator_allows_and_nothing_more(
    serve: Serve, tmp_path: Path, stores_url: str, demo: DemoSource
) -> None:
    with serve(
        staging_url=stores_url,
        production_url=stores_url,
        allow_dev_sources=True,
        allowed_networks=["127.0.0.0/8"],
    ) as service:
        request_id = service.import_(demo.url)
        assert service.wait(request_id)["state"] == "Validated"
        refused = service.client.post("/etl/import", json={"connectionString": PRIVATE_SQL_SERVER})
        assert refused.status_code == 422 and "a private address" in refused.json()["error"]["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_banner(tmp_path: Path, **env: str) -> list[str]:
    """The lines `efimis-etl serve` prints before it serves (read until uvicorn says it is up)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EFIMIS_")}
    environment.update(
        EFIMIS_DATA_DIR=str(tmp_path / "var"),
        EFIMIS_DEMO_CLIENT_SECRET=DEMO_SECRET,
        PYTHONUNBUFFERED="1",
        **env,
    )
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(_free_port())],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # ends at EOF if the service exits
            lines.append(line.rstrip())
            if "Uvicorn running on" in line:
                break
    finally:
        process.terminate()
        process.wait(20)
    assert any("Uvicorn running on" in line for line in lines), "\n".join(lines)
    return lines


def test_serve_prints_what_sources_it_accepts(tmp_path: Path, stores_url: str) -> None:
    embedded = _serve_banner(tmp_path / "embedded")
    assert (
        "Sources: SQL Server at public addresses; non-public networks allowed: 127.0.0.0/8, ::1/128 (default)"
        in embedded
    )
    assert "Development sources: sqlite:///, postgresql:// (default)" in embedded

    stores = {"EFIMIS_STAGING_URL": stores_url, "EFIMIS_PRODUCTION_URL": stores_url}
    scaled = _serve_banner(tmp_path / "scaled", **stores)
    assert "Sources: SQL Server at public addresses; non-public networks allowed: none (default)" in scaled
    assert "Development sources: off (default)" in scaled

    opted = _serve_banner(
        tmp_path / "opted", **stores, EFIMIS_ALLOWED_NETWORKS="10.0.0.0/8", EFIMIS_ALLOW_DEV_SOURCES="1"
    )
    assert (
        "Sources: SQL Server at public addresses; non-public networks allowed: 10.0.0.0/8 "
        "(EFIMIS_ALLOWED_NETWORKS)" in opted
    )
    assert "Development sources: sqlite:///, postgresql:// (EFIMIS_ALLOW_DEV_SOURCES)" in opted
