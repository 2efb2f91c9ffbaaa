"""Operating many firms: `efimis-etl clients add|list|revoke` against a running service's issuer data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import DEMO_SECRET, DemoSource, Service, process_environment, token

CLI = [sys.executable, "-m", "efimis_etl.cli"]


def clients(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    """`efimis-etl clients …` as an operator runs it, beside the running service, with its settings."""
    env = {**process_environment(service.settings), "COLUMNS": "200"}
    return subprocess.run(
        [*CLI, "clients", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def bare(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


def _as(client: httpx.Client, access_token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return client.request(method, path, headers={"Authorization": f"Bearer {access_token}"}, **kwargs)


def test_a_second_firm_sees_nothing_of_the_first_and_a_revoked_client_is_refused(
    service: Service, bare: httpx.Client, demo: DemoSource
) -> None:
    first = service.import_(demo.url)  # the demo client's firm, tenant "default"
    assert service.wait(first)["state"] == "Validated"

    added = clients(service, "add", "acme-legal", "--json")
    assert added.returncode == 0, added.stderr
    credentials = json.loads(added.stdout)
    assert (
        set(credentials) == {"clientId", "clientSecret", "tenant"} and credentials["tenant"] == "acme-legal"
    )
    acme = token(bare, credentials["clientId"], credentials["clientSecret"])  # no restart needed

    unknown = _as(bare, acme, "GET", f"/etl/import-status/{'0' * 32}").json()
    for method, path, body in (
        ("GET", f"/etl/import-status/{first}", None),
        ("GET", f"/etl/import/{first}/findings", None),
        ("GET", f"/etl/import/{first}/findings.csv", None),
        ("GET", f"/etl/import/{first}/id-map", None),
        ("POST", "/etl/promote-to-production", {"requestId": first}),
    ):
        response = _as(bare, acme, method, path, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == unknown["error"]["code"] == "not-found"
    assert _as(bare, acme, "GET", "/etl/audit").json() == {"total": 0, "offset": 0, "limit": 100, "items": []}
    assert service.client.get("/etl/audit").json()["total"] >= 2  # the first firm's own audit is intact

    listed = clients(service, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {c["clientId"]: c for c in json.loads(listed.stdout)}
    assert rows["demo"]["tenant"] == "default" and rows[credentials["clientId"]]["tenant"] == "acme-legal"
    assert all(c["revokedAt"] is None and c["createdAt"].endswith("Z") for c in rows.values())
    table = clients(service, "list")
    assert credentials["clientId"] in table.stdout and "acme-legal" in table.stdout
    for output in (listed.stdout, table.stdout):
        assert (
            credentials["clientSecret"] not in output and DEMO_SECRET not in output and "scrypt" not in output
        )

    revoked = clients(service, "revoke", credentials["clientId"])
    assert revoked.returncode == 0 and "is revoked" in revoked.stdout, revoked.stderr
    # The token acme already holds is refused from the next request on, and no new one is issued.
    refused = _as(bare, acme, "GET", "/etl/audit")
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    again = bare.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials["clientId"],
            "client_secret": credentials["clientSecret"],
        },
    )
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
    assert service.client.get(f"/etl/import-status/{first}").status_code == 200  # other clients unaffected
    assert json.loads(clients(service, "list", "--json").stdout)[0]["revokedAt"].endswith("Z")


def test_clients_add_names_what_to_fix(service: Service) -> None:
    given = clients(service, "add", "acme-legal", "--client-id", "acme-migration")
    assert given.returncode == 0, given.stderr
    assert "export EFIMIS_CLIENT_ID=acme-migration" in given.stdout
    assert "export EFIMIS_CLIENT_SECRET=" in given.stdout

    taken = clients(service, "add", "other-firm", "--client-id", "acme-migration")
    assert taken.returncode == 1 and "exists already" in taken.stderr and "--client-id" in taken.stderr
    assert clients(service, "revoke", "acme-migration").returncode == 0
    reused = clients(service, "add", "acme-legal", "--client-id", "acme-migration")
    assert reused.returncode == 1 and "never reused" in reused.stderr

    bad_tenant = clients(service, "add", "Acme Legal")
    assert bad_tenant.returncode == 1 and "lowercase letters, digits and hyphens" in bad_tenant.stderr
    missing = clients(service, "revoke", "nobody")
    assert missing.returncode == 1 and "efimis-etl clients list" in missing.stderr
