"""Security: tokens, tenant isolation, secrets that never leak, hostile connection strings, audit."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import DEMO_SECRET, DemoSource, Serve, Service, token
from efimis_etl.identity import EmbeddedIssuer
from efimis_etl.settings import EMBEDDED_ISSUER

PASSWORD = "Pa55-w0rd-N3ver-Leaks"
UNKNOWN = "0" * 32


def _endpoints(request_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("GET", f"/etl/import-status/{request_id}", None),
        ("POST", "/etl/promote-to-production", {"requestId": request_id}),
        ("GET", f"/etl/import/{request_id}/id-map", None),
        ("GET", f"/etl/import/{request_id}/id-map.csv", None),
        ("GET", f"/etl/import/{request_id}/findings", None),
        ("GET", f"/etl/import/{request_id}/findings.csv", None),
        ("POST", f"/etl/import/{request_id}/cancel", None),
    ]


def _bare(service: Service) -> httpx.Client:
    return httpx.Client(base_url=service.url, timeout=30)


def _signing_key(service: Service) -> object:
    from cryptography.hazmat.primitives import serialization

    pem = (service.settings.data_dir / "identity" / "signing-key.pem").read_bytes()
    return serialization.load_pem_private_key(pem, password=None)


def _forge(service: Service, key: object | None = None, **overrides: object) -> str:
    now = int(time.time())
    claims = {
        "iss": EMBEDDED_ISSUER,
        "sub": "demo",
        "aud": "efimis-etl",
        "iat": now,
        "exp": now + 600,
        "tenant": "default",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    kid = jwt.get_unverified_header(service.client.headers["Authorization"].split()[1])["kid"]
    return jwt.encode(claims, key or _signing_key(service), algorithm="RS256", headers={"kid": kid})


def test_every_endpoint_needs_a_valid_token(service: Service) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    bad_tokens = {
        "none": None,
        "not a bearer": "Basic ZGVtbzpzZWNyZXQ=",
        "garbage": "Bearer not-a-jwt",
        "expired": f"Bearer {_forge(service, iat=now - 7200, exp=now - 3600)}",
        "wrong audience": f"Bearer {_forge(service, aud='someone-else')}",
        "wrong issuer": f"Bearer {_forge(service, iss='https://evil.example')}",
        "wrong signature": f"Bearer {_forge(service, key=other_key)}",
        "no tenant": f"Bearer {_forge(service, tenant=None)}",
        "alg none": "Bearer " + jwt.encode({"sub": "demo", "tenant": "default"}, None, algorithm="none"),
    }
    calls = [
        *_endpoints(UNKNOWN),
        ("POST", "/etl/import", {"connectionString": "sqlite:///x.db"}),
        ("POST", "/etl/connection-string/describe", {"connectionString": "sqlite:///x.db"}),
        ("GET", "/etl/imports", None),
        ("GET", "/etl/audit", None),
    ]
    with _bare(service) as client:
        for name, header in bad_tokens.items():
            headers = {"Authorization": header} if header else {}
            for method, path, body in calls:
                response = client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (name, path, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["error"]["code"] == "unauthenticated"
        expired = client.get(
            f"/etl/import-status/{UNKNOWN}", headers={"Authorization": bad_tokens["expired"]}
        )
        assert "expired" in expired.json()["error"]["message"]
        # The schema and its reference are public documents.
        assert client.get("/etl/schema/Efimis-1.0.sql").status_code == 200
        assert client.get("/etl/schema-reference").status_code == 200


def test_token_endpoint_refuses_bad_credentials(service: Service) -> None:
    with _bare(service) as client:
        wrong = client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "demo", "client_secret": "wrong"},
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        grant = client.post(
            "/oauth2/token",
            data={"grant_type": "password", "client_id": "demo", "client_secret": DEMO_SECRET},
        )
        assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
        basic = client.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("demo", DEMO_SECRET)
        )
        assert basic.status_code == 200 and basic.json()["token_type"] == "Bearer"
        assert client.get("/oauth2/jwks").json()["keys"][0]["kty"] == "RSA"


@pytest.fixture
def other_tenant(service: Service) -> Iterator[httpx.Client]:
    issuer = EmbeddedIssuer(service.settings, service.app.state.service.platform.engine)
    issuer.register("acme-client", "acme-secret-123", "acme")
    with _bare(service) as client:
        client.headers["Authorization"] = f"Bearer {token(client, 'acme-client', 'acme-secret-123')}"
        yield client


def test_another_tenant_sees_404_everywhere_exactly_like_an_unknown_id(
    service: Service, demo_with_errors: DemoSource, demo: DemoSource, other_tenant: httpx.Client
) -> None:
    failed = service.import_(demo_with_errors.url)
    promoted = service.import_(demo.url)
    service.wait(failed)
    service.wait(promoted)
    assert service.wait_promoted(promoted)["state"] == "Promoted"
    for request_id in (failed, promoted):
        for method, path, body in _endpoints(request_id):
            theirs = other_tenant.request(method, path, json=body)
            unknown = other_tenant.request(
                method, path.replace(request_id, UNKNOWN), json=body and {"requestId": UNKNOWN}
            )
            assert theirs.status_code == unknown.status_code == 404, (path, theirs.text)
            assert (
                theirs.json()["error"]["message"].replace(request_id, UNKNOWN)
                == unknown.json()["error"]["message"]
            )
    assert other_tenant.get("/etl/audit").json()["total"] == 0
    # The owner still sees its own.
    assert service.status(promoted)["state"] == "Promoted"


def test_the_password_never_appears_in_responses_logs_or_storage(
    service: Service, demo: DemoSource, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    for connection_string in (
        f"Server=tcp:127.0.0.1,1;Initial Catalog=Firm;User ID=etl;Password={PASSWORD};Encrypt=no;Connection Timeout=2",
        f"Driver={{ODBC Driver 18 for SQL Server}};Server=127.0.0.1,1;Database=F;UID=u;PWD={{{PASSWORD}}};Encrypt=no;"
        "Connection Timeout=2",
        f"jdbc:sqlserver://127.0.0.1:1;databaseName=F;user=u;password={PASSWORD};encrypt=false;loginTimeout=2",
        f"mssql://etl:{PASSWORD}@127.0.0.1:1/Firm?encrypt=no&Connection%20Timeout=2",
        pg_url.replace("root@", f"root:{PASSWORD}@"),  # trust auth: imports fine with any password
    ):
        request_id = service.import_(connection_string)
        bodies.append(service.client.get(f"/etl/import-status/{request_id}").text)
        bodies.append(str(service.wait(request_id)))
    for malformed in (
        f"Server=h;Database=d;User ID=u;Password={PASSWORD};Nonsense=1",
        f"Server=h;Database=d;User ID=u;Password={PASSWORD};Integrated Security=SSPI",
        f"Server=169.254.169.254;Database=d;User ID=u;Password={PASSWORD}",
        f"Server=h,0;Database=d;User ID=u;Password={PASSWORD}",
    ):
        bodies.append(service.client.post("/etl/import", json={"connectionString": malformed}).text)
    bodies.append(service.client.get("/etl/audit").text)
    assert all(PASSWORD not in body for body in bodies)
    assert PASSWORD not in caplog.text
    for path in Path(service.settings.data_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and PASSWORD.encode("utf-16-le") not in data, path
    for url in {service.settings.platform_database_url, service.settings.staging_url} - {None}:
        # Every table of the PostgreSQL stores and platform database, as text.
        dump = subprocess.run(
            ["pg_dump", "--data-only", url.replace("+psycopg", "")],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        assert len(dump) > 1000 and PASSWORD.encode() not in dump


@pytest.mark.parametrize(
    ("server", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4,1433", "private"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("2852039166", "link-local"),  # 169.254.169.254 written as one number
    ],
)
def test_sources_in_non_public_networks_are_refused(service: Service, server: str, kind: str) -> None:
    response = service.client.post(
        "/etl/import", json={"connectionString": f"Server={server};Database=d;User ID=u;Password=p"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "source-refused" and kind in error["message"]
    assert "EFIMIS_ALLOWED_NETWORKS" in error["message"]


def test_hostile_bodies_get_4xx_never_500(service: Service) -> None:
    huge = service.client.post("/etl/import", json={"connectionString": "Server=x;" + "a" * 1_000_000})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body-too-large"
    for text in (
        "Server=h\x00;Database=d;User ID=u;Password=p",
        "Server=\u202eh;Database=d;User ID=u;Password=p",
        "Ｓｅｒｖｅｒ=h;Database=d;User ID=u;Password=p",
        "Server=h;Database=d;User ID=u;Password=p;" * 400,
        "\ufeff",
        "{}",
        "=",
        ";;;;",
    ):
        response = service.client.post("/etl/import", json={"connectionString": text})
        assert 400 <= response.status_code < 500, (text[:40], response.text)
    assert service.client.post("/etl/import", json=["not", "an", "object"]).status_code == 422
    assert (
        service.client.post(
            "/etl/import", content=b"\xff\xfe garbage", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_per_tenant_limit_on_running_imports(serve: Serve) -> None:
    with serve(max_running_imports=1) as service:
        slow = "Server=tcp:127.0.0.1,1;Database=F;User ID=u;Password=p;Encrypt=no;Connection Timeout=3"
        first = service.import_(slow)
        second = service.client.post("/etl/import", json={"connectionString": slow})
        assert second.status_code == 429 and second.json()["error"]["code"] == "too-many-imports"
        service.wait(first)
        assert service.client.post("/etl/import", json={"connectionString": slow}).status_code == 202


def test_development_sources_and_loopback_can_be_disallowed(serve: Serve, demo: DemoSource) -> None:
    with serve(allow_dev_sources=False, allowed_networks=[]) as service:
        dev = service.client.post("/etl/import", json={"connectionString": demo.url})
        assert dev.status_code == 422 and "Development sources" in dev.json()["error"]["message"]
        loop = service.client.post(
            "/etl/import", json={"connectionString": "Server=localhost;Database=d;User ID=u;Password=p"}
        )
        assert loop.status_code == 422 and "loopback" in loop.json()["error"]["message"]


def test_audit_log_records_who_did_what_from_where(service: Service, demo: DemoSource) -> None:
    request_id = service.import_(demo.url)
    service.wait(request_id)
    service.wait_promoted(request_id)
    service.client.post(
        "/etl/import", json={"connectionString": "Server=10.0.0.1;Database=d;User ID=u;Password=p"}
    )
    events = service.client.get("/etl/audit").json()["items"]
    seen = [(e["actor"], e["action"], e["outcome"], e["requestId"]) for e in reversed(events)]
    assert seen == [
        ("demo", "import-submitted", "queued", request_id),
        ("worker", "import-finished", "Validated", request_id),
        ("demo", "promotion-requested", "queued", request_id),
        ("worker", "promotion-finished", "Promoted", request_id),
        ("demo", "import-submitted", "refused", None),
    ]
    assert all(e["remoteAddress"] == "127.0.0.1" for e in events if e["actor"] == "demo")
    assert all(e["at"].endswith("Z") for e in events)
