"""The use cases, one function each; the API and the CLI are thin adapters over this class."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efimis_etl.errors import EtlError
from efimis_etl.jobs.pipeline import run_import, run_promotion
from efimis_etl.jobs.state import PROMOTABLE, VALIDATION_RAN, Platform, State, now
from efimis_etl.jobs.worker import InProcessWorker
from efimis_etl.promotion.promote import id_map
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.validation.run import FindingFilter, iter_findings, list_findings

log = logging.getLogger(__name__)


class NotFound(EtlError):
    code = "not-found"


class Conflict(EtlError):
    code = "invalid-state"


@dataclass
class Service:
    settings: Settings
    platform: Platform
    worker: InProcessWorker

    @classmethod
    def embedded(cls, settings: Settings) -> Service:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        service = cls(settings, Platform(settings.data_dir / "platform.sqlite"), InProcessWorker())
        service.recover()
        service.worker.start()
        return service

    def recover(self) -> None:
        """Close out requests whose jobs died with a previous process."""
        for request in self.platform.interrupted():
            if request["state"] == State.PROMOTING:
                # A promotion is one transaction: it either committed or left production unchanged,
                # and promoting again is idempotent, so the user can simply retry.
                self.platform.transition(
                    request["id"],
                    [State.PROMOTING],
                    State.PROMOTION_FAILED,
                    failure_code="interrupted",
                    failure_reason="The service stopped during the promotion. Production is either fully "
                    "promoted or unchanged; promote again to finish it.",
                    promotion_finished_at=now(),
                )
            else:
                self.platform.transition(
                    request["id"],
                    [State.QUEUED, State.IMPORTING, State.VALIDATING],
                    State.FAILED,
                    failure_code="interrupted",
                    failure_reason="The service stopped before this import finished; nothing was kept. "
                    "Submit the import again.",
                    import_finished_at=now(),
                )
                self.settings.staging_path(request["id"]).unlink(missing_ok=True)

    def submit_import(self, connection_string: str) -> str:
        source = parse_connection_string(connection_string)  # raises ConnectionStringError (a ValueError)
        tenant = self.settings.tenant
        request_id = self.platform.create(tenant, source.describe())
        self.worker.submit(lambda: run_import(self.settings, self.platform, request_id, tenant, source))
        log.info("import %s queued from %s", request_id, source.describe())
        return request_id

    def request_promotion(self, request_id: str) -> str:
        request = self._request(request_id)
        if not self.platform.transition(
            request_id, PROMOTABLE, State.PROMOTING, promotion_requested_at=now(), promotion_finished_at=None
        ):
            current = self._request(request_id)["state"]
            raise Conflict(
                f"Import {request_id} is {current}; only an import that is Validated (or already "
                "Promoted, or whose promotion failed) can be promoted."
                + (" Fix the findings and import again." if current == State.VALIDATION_FAILED else "")
            )
        tenant = request["tenant"]
        self.worker.submit(lambda: run_promotion(self.settings, self.platform, request_id, tenant))
        return request_id

    def status(self, request_id: str) -> dict[str, Any]:
        request = self._request(request_id)
        return {**request, "tables": self.platform.tables(request_id)}

    def id_map(self, request_id: str, *, offset: int, limit: int) -> tuple[int, list[dict[str, str]]]:
        request = self._request(request_id)
        if request["state"] != State.PROMOTED:
            raise Conflict(
                f"Import {request_id} is {request['state']}; the id map exists once it is Promoted."
            )
        return id_map(
            self.settings.production_path(request["tenant"]),
            self.settings.staging_path(request_id),
            offset=offset,
            limit=limit,
        )

    def findings(
        self, request_id: str, where: FindingFilter, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        return list_findings(self._validated_store(request_id), where, offset=offset, limit=limit)

    def all_findings(self, request_id: str, where: FindingFilter) -> Iterator[dict[str, Any]]:
        return iter_findings(self._validated_store(request_id), where)

    def _validated_store(self, request_id: str) -> Path:
        request = self._request(request_id)
        if request["state"] not in VALIDATION_RAN:
            raise Conflict(
                f"Import {request_id} is {request['state']}; findings exist once validation has run."
                + (
                    " The import failed before validation: see its failure reason."
                    if request["state"] == State.FAILED
                    else ""
                )
            )
        return self.settings.staging_path(request_id)

    def _request(self, request_id: str) -> dict[str, Any]:
        request = self.platform.get(request_id, self.settings.tenant)
        if request is None:
            raise NotFound(f"No import request {request_id!r}.")
        return request
