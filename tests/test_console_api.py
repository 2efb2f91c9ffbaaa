"""The API the web console calls besides the import's own routes: a firm's list of imports, describing a
connection string before submitting it, and the id map as CSV — over real HTTP, on both backends."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import DemoSource, Serve, Service, token
from efimis_etl.identity import EmbeddedIssuer
from efimis_etl.promotion.promote import iter_id_map

STATES = [
    "Queued",
    "Importing",
    "Validating",
    "Validated",
    "ValidationFailed",
    "Failed",
    "Promoting",
    "Promoted",
    "PromotionFailed",
    "Cancelled",
]
# Every character a connection string treats specially, and some HTML and JSON treat specially.
PASSWORD = "Pa;ss}w0rd\"'<&>=\\é%"


@pytest.fixture
def second_firm(service: Service) -> Iterator[httpx.Client]:
    """A client of another tenant, `acme`, on the same service."""
    EmbeddedIssuer(service.settings, service.app.state.service.platform.engine).register(
        "acme-client", "acme-secret-123", "acme"
    )
    with httpx.Client(base_url=service.url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {token(client, 'acme-client', 'acme-secret-123')}"
        yield client


def _imports(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/etl/imports", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_imports_lists_the_firms_requests_newest_first_as_their_status_tells(
    service: Service,
    demo: DemoSource,
    demo_with_errors: DemoSource,
    tmp_path: Path,
    second_firm: httpx.Client,
) -> None:
    assert _imports(service.client) == {"total": 0, "offset": 0, "limit": 50, "imports": []}
    failed = service.import_(f"sqlite:///{tmp_path / 'no-such-file.db'}")
    service.wait(failed)
    validated = service.import_(demo.url)
    service.wait(validated)
    refused = service.import_(demo_with_errors.url)
    service.wait(refused)

    listed = _imports(service.client)
    assert listed["total"] == 3 and listed["offset"] == 0 and listed["limit"] == 50
    assert [i["requestId"] for i in listed["imports"]] == [refused, validated, failed]
    for item in listed["imports"]:
        status = service.status(item["requestId"])
        validation = status["validation"]
        assert item == {
            "requestId": status["requestId"],
            "state": status["state"],
            "source": status["source"],
            "createdAt": status["createdAt"],
            "importFinishedAt": status["importFinishedAt"],
            "promotionFinishedAt": status["promotionFinishedAt"],
            "rowsLoaded": status["progress"]["rowsLoaded"],
            "rowsExpected": status["progress"]["rowsExpected"],
            "errors": validation["errors"] if validation else None,
            "warnings": validation["warnings"] if validation else None,
        }
    by_id = {i["requestId"]: i for i in listed["imports"]}
    assert by_id[failed]["state"] == "Failed" and by_id[failed]["rowsExpected"] is None
    assert by_id[failed]["errors"] is None and by_id[failed]["warnings"] is None
    assert by_id[validated]["rowsLoaded"] == by_id[validated]["rowsExpected"] > 300
    assert (by_id[validated]["errors"], by_id[validated]["warnings"]) == (0, 0)
    assert (by_id[refused]["errors"], by_id[refused]["warnings"]) == (26, 3)

    # Filtered by state, as the status spells it; paged.
    only = _imports(service.client, state="ValidationFailed")
    assert only["total"] == 1 and [i["requestId"] for i in only["imports"]] == [refused]
    assert _imports(service.client, state="Promoted") == {"total": 0, "offset": 0, "limit": 50, "imports": []}
    page = _imports(service.client, offset=1, limit=1)
    assert page["total"] == 3 and [i["requestId"] for i in page["imports"]] == [validated]

    # A promotion shows, with its finishing time.
    service.wait_promoted(validated)
    promoted = _imports(service.client, state="Promoted")["imports"]
    assert [i["requestId"] for i in promoted] == [validated]
    assert promoted[0]["promotionFinishedAt"] == service.status(validated)["promotionFinishedAt"] is not None

    # Another firm sees none of these, and the first firm none of its.
    assert _imports(second_firm) == {"total": 0, "offset": 0, "limit": 50, "imports": []}
    theirs = second_firm.post("/etl/import", json={"connectionString": demo.url}).json()["requestId"]
    assert [i["requestId"] for i in _imports(second_firm)["imports"]] == [theirs]
    assert theirs not in {i["requestId"] for i in _imports(service.client)["imports"]}
    assert _imports(service.client)["total"] == 3


def test_imports_refuses_an_unknown_state_naming_the_states_and_pages_out_of_bounds(
    serve: Serve,
) -> None:
    with serve() as service:
        for state in ("validated", "Done", ""):
            response = service.client.get("/etl/imports", params={"state": state})
            assert response.status_code == 422, (state, response.text)
            message = response.json()["error"]["message"]
            assert all(f"'{s}'" in message for s in STATES), message
        for limit in (0, 501, -1):
            assert service.client.get("/etl/imports", params={"limit": limit}).status_code == 422
        assert service.client.get("/etl/imports", params={"limit": 500}).status_code == 200
        assert service.client.get("/etl/imports", params={"offset": -1}).status_code == 422
        with httpx.Client(base_url=service.url) as anonymous:
            assert anonymous.get("/etl/imports").status_code == 401
            described = anonymous.post("/etl/connection-string/describe", json={"connectionString": "x"})
            assert described.status_code == 401


def _describe(service: Service, connection_string: str) -> httpx.Response:
    response = service.client.post(
        "/etl/connection-string/describe", json={"connectionString": connection_string}
    )
    assert response.status_code == 200, response.text
    return response


def _never_shows(password: str, body: str) -> None:
    assert password not in body
    assert json.dumps(password)[1:-1] not in body  # nor as JSON escapes it


UNDERSTOOD: list[tuple[str, dict[str, Any]]] = [
    (
        "Server=tcp:127.0.0.1,1;Initial Catalog=Firm;User ID=etl;"
        f"Password={{{PASSWORD.replace('}', '}}')}}};Encrypt=True;TrustServerCertificate=False",
        {"kind": "sqlserver", "server": "127.0.0.1", "port": 1, "instance": None},
    ),
    (
        "Driver={ODBC Driver 18 for SQL Server};Server=127.0.0.1\\SQLEXPRESS;Database=Firm;UID=etl;"
        f"PWD={{{PASSWORD.replace('}', '}}')}}};TrustServerCertificate=yes;Encrypt=optional;"
        "Connection Timeout=2",
        {"kind": "sqlserver", "server": "127.0.0.1", "port": None, "instance": "SQLEXPRESS"},
    ),
    (
        "jdbc:sqlserver://127.0.0.1:1;databaseName=Firm;user=etl;"
        f"password={{{PASSWORD.replace('}', '}}')}}};encrypt=false",
        {"kind": "sqlserver", "server": "127.0.0.1", "port": 1, "encrypt": "no"},
    ),
    (
        "mssql://etl:Pa%3Bss%7Dw0rd%22%27%3C%26%3E%3D%5C%C3%A9%25@127.0.0.1:1/Firm",
        {"kind": "sqlserver", "server": "127.0.0.1", "port": 1, "encrypt": "yes"},
    ),
    (
        "postgresql://etl:Pa%3Bss%7Dw0rd%22%27%3C%26%3E%3D%5C%C3%A9%25@127.0.0.1:5432/firm",
        {"kind": "postgresql", "server": "127.0.0.1", "port": 5432, "encrypt": None},
    ),
]


def test_describe_says_how_a_connection_string_is_understood_never_its_password(serve: Serve) -> None:
    # Nothing listens on port 1 (the embedded default allows loopback); stopping the service ends the imports.
    with serve(max_running_imports=len(UNDERSTOOD)) as service:
        for connection_string, expected in UNDERSTOOD:
            response = _describe(service, connection_string)
            body = response.json()
            assert body["valid"] is True and set(body) == {"valid", "description"}, body
            description = body["description"]
            assert set(description) == {
                "kind",
                "server",
                "port",
                "instance",
                "database",
                "user",
                "passwordGiven",
                "encrypt",
                "trustServerCertificate",
                "summary",
            }
            assert {k: description[k] for k in expected} == expected
            assert description["database"] in ("Firm", "firm") and description["user"] == "etl"
            assert description["passwordGiven"] is True
            _never_shows(PASSWORD, response.text)
            # The summary is the one the status shows once the string is submitted.
            request_id = service.import_(connection_string)
            assert service.status(request_id)["source"] == description["summary"]


def test_describe_gives_the_sql_server_settings_and_a_sqlite_file(serve: Serve, demo: DemoSource) -> None:
    with serve() as service:
        tls = _describe(
            service,
            "Server=127.0.0.1\\FIRM;Database=Firm;User ID=etl;Password=secret-pw;Encrypt=strict;"
            "TrustServerCertificate=yes",
        ).json()["description"]
        assert tls == {
            "kind": "sqlserver",
            "server": "127.0.0.1",
            "port": None,
            "instance": "FIRM",
            "database": "Firm",
            "user": "etl",
            "passwordGiven": True,
            "encrypt": "strict",
            "trustServerCertificate": True,
            "summary": "SQL Server 127.0.0.1\\FIRM database 'Firm' as user 'etl' "
            "(Encrypt=strict, TrustServerCertificate=yes)",
        }
        sqlite = _describe(service, demo.url).json()["description"]
        assert sqlite == {
            "kind": "sqlite",
            "server": None,
            "port": None,
            "instance": None,
            "database": str(demo.path),
            "user": None,
            "passwordGiven": False,
            "encrypt": None,
            "trustServerCertificate": None,
            "summary": demo.url,
        }


REFUSED: list[tuple[str, str]] = [
    (f"Server=h;Database=d;Password={PASSWORD.replace(';', '')}", "User ID"),
    (f"Server=h;Database=d;User ID=u;Password={{{PASSWORD.replace('}', '}}')}}};Nonsense=1", "Nonsense"),
    ("Server=h;Database=d;User ID=u;Password=p;Integrated Security=SSPI", "SQL authentication"),
    ("Server=h,0;Database=d;User ID=u;Password=p", "port"),
    ("Server=h;Database=d;User ID=u;Password=p;Encrypt=maybe", "Encrypt"),
    (
        f"Server=169.254.169.254;Database=d;User ID=u;Password={{{PASSWORD.replace('}', '}}')}}}",
        "link-local",
    ),
    ("not a connection string", "Accepted forms"),
]


def test_describe_refuses_with_the_message_the_import_would_give(serve: Serve) -> None:
    with serve() as service:
        for connection_string, names in REFUSED:
            response = _describe(service, connection_string)
            body = response.json()
            submitted = service.client.post("/etl/import", json={"connectionString": connection_string})
            assert submitted.status_code == 422
            assert body == {"valid": False, "message": submitted.json()["error"]["message"]}
            assert names in body["message"]
            _never_shows(PASSWORD, response.text)
        # A body that is not a connection string at all is refused as the import refuses it.
        for bad in ({"connectionString": ""}, {"connectionString": "x", "password": PASSWORD}, {}):
            described = service.client.post("/etl/connection-string/describe", json=bad)
            assert described.status_code == 422, described.text
            assert described.json() == service.client.post("/etl/import", json=bad).json()
            _never_shows(PASSWORD, described.text)


def test_describe_follows_the_services_source_policy(serve: Serve, demo: DemoSource) -> None:
    with serve(allow_dev_sources=False, allowed_networks=[]) as service:
        for connection_string in (demo.url, "Server=localhost;Database=d;User ID=u;Password=p"):
            body = _describe(service, connection_string).json()
            submitted = service.client.post("/etl/import", json={"connectionString": connection_string})
            assert body == {"valid": False, "message": submitted.json()["error"]["message"]}
        assert "Development sources" in _describe(service, demo.url).json()["message"]


def test_describe_never_connects_and_records_nothing(serve: Serve) -> None:
    with socket.socket() as listener, serve() as service:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        body = _describe(
            service, f"Server=tcp:127.0.0.1,{port};Database=Firm;User ID=etl;Password=pw;Encrypt=no"
        ).json()
        assert body["valid"] is True and body["description"]["port"] == port
        with pytest.raises(BlockingIOError):  # nobody knocked
            listener.accept()
        assert _imports(service.client)["total"] == 0
        assert service.client.get("/etl/audit").json()["total"] == 0


def test_id_map_csv_is_the_whole_json_id_map(
    service: Service, demo: DemoSource, second_firm: httpx.Client
) -> None:
    request_id = service.import_(demo.url)
    service.wait(request_id)
    early = service.client.get(f"/etl/import/{request_id}/id-map.csv")
    json_early = service.client.get(f"/etl/import/{request_id}/id-map")
    assert early.status_code == json_early.status_code == 409
    assert early.json() == json_early.json()
    assert service.wait_promoted(request_id)["state"] == "Promoted"

    response = service.client.get(f"/etl/import/{request_id}/id-map.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="id-map-{request_id}.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["entity", "importId", "reference"]
    whole = service.client.get(f"/etl/import/{request_id}/id-map", params={"limit": 10_000}).json()
    assert whole["total"] > 300
    assert rows[1:] == [[i["entity"], i["importId"], i["reference"]] for i in whole["items"]]
    # Read in batches after the last ImportId: small batches give the same map, in the same order.
    stores = service.app.state.service.stores
    assert list(iter_id_map(stores, request_id, "default", batch=7)) == whole["items"]

    for client, rid in ((second_firm, request_id), (service.client, "0" * 32)):
        assert client.get(f"/etl/import/{rid}/id-map.csv").status_code == 404
