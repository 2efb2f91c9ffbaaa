"""Promotion preview, productionRevision and revert, over HTTP on both backends (issue 15's "Done when")."""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from conftest import DemoSource, Serve, Service
from efimis_etl.settings import Settings
from support import second_wave

CHANGED = {("Matter", "MAT-00001"), ("Matter", "MAT-00002"), ("Client", "CL-00001")}
ADDED = {("Client", "CL-90001"), ("Client", "CL-90002")}


def _checksum(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, str]:
    return {table: hashlib.sha256(repr(sorted(r)).encode()).hexdigest() for table, r in rows.items()}


def _imported(service: Service, demo: DemoSource) -> str:
    request_id = service.import_(demo.url)
    status = service.wait(request_id)
    assert status["state"] == "Validated", status["failure"] or status["validation"]
    return request_id


def _preview(service: Service, request_id: str) -> dict[str, Any]:
    response = service.client.get(f"/etl/import/{request_id}/promotion-preview")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ids(service: Service) -> dict[tuple[str, str], str]:
    return {(t, row[0]): row[1] for t, rows in service.production_rows().items() for row in rows}


def test_preview_shows_the_second_wave_and_promotion_keeps_its_word_then_revert_restores(
    service: Service, demo: DemoSource
) -> None:
    first = _imported(service, demo)
    preview = _preview(service, first)
    assert all(t["inserted"] == t["rows"] and t["updated"] == 0 for t in preview["tables"])
    promoted = service.client.post(
        "/etl/promote-to-production",
        json={"requestId": first, "productionRevision": preview["productionRevision"]},
    )
    assert promoted.status_code == 202, promoted.text
    assert service.wait(first)["state"] == "Promoted"
    after_first = _checksum(service.production_rows())
    ids_first = _ids(service)
    clients = {row[0]: row[1] for row in service.production_rows()["Client"]}

    second_wave(demo.path)
    second = _imported(service, demo)
    preview = _preview(service, second)
    tables = {t["table"]: t for t in preview["tables"]}
    touched = {(t, kind): n for t, p in tables.items() for kind in ("inserted", "updated") if (n := p[kind])}
    assert touched == {("Client", "inserted"): 2, ("Client", "updated"): 1, ("Matter", "updated"): 2}
    assert all(t["unchanged"] == t["rows"] - t["inserted"] - t["updated"] for t in preview["tables"])
    assert tables["Client"]["sample"] == [
        {
            "importId": "CL-00001",
            "changes": [{"column": "Name", "before": "Jack Li", "after": "Jack Li-Smith"}],
        }
    ]
    assert tables["Matter"]["sample"] == [
        {
            "importId": "MAT-00001",
            "changes": [{"column": "Description", "before": "Jack Li — matter 1", "after": "Renamed matter"}],
        },
        {
            "importId": "MAT-00002",
            "changes": [
                {
                    "column": "ClientId",
                    "before": f"client_{clients['CL-00001']}",
                    "after": f"client_{clients['CL-00003']}",
                }
            ],
        },
    ]
    page = service.client.get(
        f"/etl/import/{second}/promotion-preview/changes", params={"table": "Matter", "offset": 1, "limit": 1}
    )
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 2 and [i["importId"] for i in page.json()["items"]] == ["MAT-00002"]
    unknown = service.client.get(f"/etl/import/{second}/promotion-preview/changes", params={"table": "Nope"})
    assert unknown.status_code == 400 and "Matter" in unknown.json()["error"]["message"]
    lines = list(
        csv.DictReader(
            io.StringIO(service.client.get(f"/etl/import/{second}/promotion-preview/changes.csv").text)
        )
    )
    assert {(line["table"], line["importId"], line["column"]) for line in lines} == {
        ("Client", "CL-00001", "Name"),
        ("Matter", "MAT-00001", "Description"),
        ("Matter", "MAT-00002", "ClientId"),
    }
    assert service.production_rows() and _checksum(service.production_rows()) == after_first  # read-only

    response = service.client.post(
        "/etl/promote-to-production",
        json={"requestId": second, "productionRevision": preview["productionRevision"]},
    )
    assert response.status_code == 202, response.text
    status = service.wait(second)
    assert status["state"] == "Promoted", status["failure"]
    counts = {
        t["table"]: (t["inserted"], t["updated"], t["unchanged"]) for t in status["promotion"]["tables"]
    }
    assert counts == {t["table"]: (t["inserted"], t["updated"], t["unchanged"]) for t in preview["tables"]}
    assert status["promotion"]["revision"] == preview["productionRevision"] + 1

    # The first import cannot be reverted under the second, which changed its rows.
    refused = service.client.post(f"/etl/import/{first}/revert")
    assert refused.status_code == 409, refused.text
    assert second in refused.json()["error"]["message"]
    assert service.status(first)["state"] == "Promoted"

    reverted = service.client.post(f"/etl/import/{second}/revert")
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["state"] == "Reverted"
    assert reverted.json()["promotion"]["revertedBy"] == "demo"
    assert _checksum(service.production_rows()) == after_first
    audit = service.client.get("/etl/audit").json()["items"]
    assert any(
        e["action"] == "import-reverted" and e["requestId"] == second and e["actor"] == "demo" for e in audit
    )
    again = service.client.post(f"/etl/import/{second}/revert")
    assert again.status_code == 409 and "Reverted" in again.json()["error"]["message"]

    # Now the first reverts too (production empty), and promoting it again gives back the same ids.
    assert service.client.post(f"/etl/import/{first}/revert").status_code == 200
    assert all(not rows for rows in service.production_rows().values())
    assert service.wait_promoted(first)["state"] == "Promoted"
    assert _ids(service) == ids_first
    assert _checksum(service.production_rows()) == after_first


def test_a_stale_production_revision_is_refused_and_writes_nothing(
    service: Service, demo: DemoSource
) -> None:
    first = _imported(service, demo)
    stale = _preview(service, first)["productionRevision"]
    second_wave(demo.path)
    second = _imported(service, demo)
    assert service.wait_promoted(second)["state"] == "Promoted"  # production moves
    before = _checksum(service.production_rows())
    response = service.client.post(
        "/etl/promote-to-production", json={"requestId": first, "productionRevision": stale}
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "production-moved"
    assert second in response.json()["error"]["message"]
    assert service.status(first)["state"] == "Validated"
    assert _checksum(service.production_rows()) == before
    # Without it, as before: promoted over whatever production holds.
    assert service.wait_promoted(first)["state"] == "Promoted"


def test_revert_after_the_retention_of_before_images_answers_410(
    serve: Serve, settings: Settings, demo: DemoSource
) -> None:
    with serve(settings=settings.model_copy(update={"revert_days": 1e-9})) as service:
        request_id = _imported(service, demo)
        assert service.wait_promoted(request_id)["state"] == "Promoted"
        before = _checksum(service.production_rows())
        response = service.client.post(f"/etl/import/{request_id}/revert")
        assert response.status_code == 410, response.text
        assert "EFIMIS_REVERT_DAYS" in response.json()["error"]["message"]
        assert service.status(request_id)["state"] == "Promoted"
        assert _checksum(service.production_rows()) == before


def test_only_a_promoted_import_can_be_reverted(service: Service, demo: DemoSource) -> None:
    request_id = _imported(service, demo)
    response = service.client.post(f"/etl/import/{request_id}/revert")
    assert response.status_code == 409 and "only a Promoted import" in response.json()["error"]["message"]
