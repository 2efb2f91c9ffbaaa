"""Schemathesis, driven by the service's own OpenAPI document: no generated request gets a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import Service


def test_no_generated_request_gets_a_server_error(service: Service) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    auth = {"Authorization": service.client.headers["Authorization"]}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=service.url, headers=auth)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:200]}"
                )

        call()
    assert not failures, "\n".join(failures)
