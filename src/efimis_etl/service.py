"""The use cases, one function each; the API and the CLI are thin adapters over this class."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from efimis_etl.errors import EtlError
from efimis_etl.ids import is_request_id
from efimis_etl.jobs.pipeline import (
    INTERRUPTED_IMPORT,
    INTERRUPTED_PROMOTION,
    abandon_import,
    abandon_promotion,
    settle_cancelled,
)
from efimis_etl.jobs.queue import ChildProcessQueue, DistributedQueue, JobQueue
from efimis_etl.jobs.retention import Clock, RetentionTimer, SystemClock, drop_expired_staging
from efimis_etl.jobs.state import CANCELLABLE, PROMOTABLE, VALIDATION_RAN, Platform, State, now
from efimis_etl.promotion.promote import (
    Change,
    ProductionMoved,
    changes,
    check_revision,
    current_revision,
    diff,
    id_map,
    iter_changes,
    iter_id_map,
)
from efimis_etl.promotion.revert import NothingToRevert, RevertExpired, RevertRefused, revert
from efimis_etl.schema.model import ENTITY_BY_NAME
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import Source, parse_connection_string
from efimis_etl.source.policy import check_source
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.timestamps import iso_z
from efimis_etl.validation.run import FindingFilter, findings_page, iter_findings

log = logging.getLogger(__name__)


class NotFound(EtlError):
    code = "not-found"


class Conflict(EtlError):
    code = "invalid-state"


class Gone(EtlError):
    code = "expired"


class TooManyImports(EtlError):
    code = "too-many-imports"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant and client from their token, and where the request came from."""

    tenant: str
    client_id: str
    remote_address: str | None = None


@dataclass
class Service:
    settings: Settings
    platform: Platform
    stores: TenantStores
    queue: JobQueue
    clock: Clock = field(default_factory=SystemClock)
    retention: RetentionTimer | None = None  # the embedded default's periodic retention sweep

    @classmethod
    def start(cls, settings: Settings, *, clock: Clock | None = None) -> Service:
        """The embedded default (SQLite, jobs in child processes), or the API of a scaled-out deployment.

        `clock` is the time the embedded default's retention goes by (tests move it on); the real time by
        default. Scaled out, the workers' periodic task keeps procrastinate's time instead."""
        clock = clock or SystemClock()
        if settings.scaled_out:
            platform = Platform(settings.platform_url)
            platform.check_version()  # migrations are an explicit step there: `efimis-etl migrate`
            stores = make_stores(settings)
            service = cls(settings, platform, stores, DistributedQueue(settings, platform, stores))
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            platform = Platform(settings.platform_url)
            platform.migrate()
            stores = make_stores(settings)
            service = cls(settings, platform, stores, ChildProcessQueue(settings, platform, stores), clock)
            service.recover()  # only here: scaled out, the workers' heartbeats decide what died
            # Scaled out, the procrastinate periodic task `efimis.drop-expired-staging` does this instead.
            service.retention = RetentionTimer(platform, stores, clock)
            service.retention.start()
        service.queue.start()
        return service

    # Kept for callers that name the embedded default explicitly.
    embedded = start

    def stop(self) -> None:
        """Stop the retention timer, then the job queue."""
        if self.retention is not None:
            self.retention.stop()
        self.queue.stop()

    def recover(self) -> None:
        """Close out requests whose jobs died with a previous process, then drop the staging stores of
        finished imports past their retention (the closed-out ones have finished now)."""
        for request in self.platform.interrupted():
            request_id, tenant = request["id"], request["tenant"]
            if request["state"] == State.PROMOTING:
                # A promotion is one transaction: it either committed or left production unchanged,
                # and promoting again is idempotent, so the user can simply retry.
                abandon_promotion(
                    self.platform, request_id, tenant, code="interrupted", reason=INTERRUPTED_PROMOTION
                )
            elif request["state"] == State.CANCELLED:  # its job died before it had cleaned up
                settle_cancelled(self.platform, self.stores, request_id, tenant)
            else:
                abandon_import(
                    self.platform,
                    self.stores,
                    request_id,
                    tenant,
                    code="interrupted",
                    reason=INTERRUPTED_IMPORT,
                )
        drop_expired_staging(self.platform, self.stores, self.clock.now())

    def submit_import(self, caller: Caller, connection_string: str) -> str:
        try:
            source = parse_connection_string(connection_string)
            check_source(source, self.settings.source_policy())
        except ValueError as error:  # ConnectionStringError, SourceRefused: messages hold no secret
            self._audit(caller, "import-submitted", "refused", detail=str(error))
            raise
        if self.platform.running(caller.tenant) >= self.settings.max_running_imports:
            self._audit(caller, "import-submitted", "refused", detail="too many running imports")
            raise TooManyImports(
                f"Tenant {caller.tenant} already has {self.settings.max_running_imports} imports queued or "
                "running: wait for one to finish."
            )
        tenant = caller.tenant
        request_id = self.platform.create(tenant, source.describe())
        self._audit(caller, "import-submitted", "queued", request_id=request_id, detail=source.describe())
        self.queue.enqueue_import(request_id, tenant, connection_string)
        log.info("import %s queued for tenant %s from %s", request_id, tenant, source.describe())
        return request_id

    def describe_source(self, connection_string: str) -> Source:
        """The source a connection string names, if `submit_import` would accept it (the same parser and
        policy, the same messages), without connecting to it or recording anything."""
        source = parse_connection_string(connection_string)
        check_source(source, self.settings.source_policy())
        return source

    def imports(
        self, caller: Caller, *, state: State | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """The caller's tenant's requests, newest first (only those in `state`, if given)."""
        return self.platform.requests(caller.tenant, state=state, offset=offset, limit=limit)

    def request_promotion(
        self, caller: Caller, request_id: str, *, production_revision: int | None = None
    ) -> str:
        """Queue the promotion; with `production_revision` (from a preview), refused with nothing written
        if production has moved since (the job checks again under the promotion lock)."""
        request = self._request(caller, request_id)
        if request["state"] in PROMOTABLE and not self.platform.all_verified(request_id):
            raise Conflict(
                f"Import {request_id}'s row counts and control totals were not all verified against the source; "
                "it cannot be promoted. Import it again."
            )
        if production_revision is not None and request["state"] in PROMOTABLE:
            try:
                with self.stores.production_session(request["tenant"], write=False) as conn:
                    check_revision(conn, production_revision)
            except ProductionMoved as moved:
                self._audit(
                    caller, "promotion-requested", "refused", request_id=request_id, detail=moved.code
                )
                raise Conflict(moved.message, code=moved.code) from None
        # The last outcome stays visible while this one runs; a revert's or an earlier request's marks do not.
        promotion = {k: v for k, v in (request["promotion"] or {}).items() if k in ("tables", "revision")}
        if production_revision is not None:
            promotion["expectedRevision"] = production_revision
        if not self.platform.transition(
            request_id,
            PROMOTABLE,
            State.PROMOTING,
            promotion_requested_at=now(),
            promotion_finished_at=None,
            promotion=promotion or None,
        ):
            current = self._request(caller, request_id)["state"]
            self._audit(caller, "promotion-requested", "refused", request_id=request_id, detail=current)
            raise Conflict(
                f"Import {request_id} is {current}; only an import that is Validated (or already "
                "Promoted, or whose promotion failed) can be promoted."
                + (" Fix the findings and import again." if current == State.VALIDATION_FAILED else "")
            )
        self._audit(caller, "promotion-requested", "queued", request_id=request_id)
        tenant = request["tenant"]
        self.queue.enqueue_promotion(request_id, tenant)
        return request_id

    def cancel(self, caller: Caller, request_id: str) -> dict[str, Any]:
        """Cancel a Queued, Importing or Validating import: Cancelled at once, then its job is stopped (it
        records `import_finished_at` once it has stopped and its staging store is gone)."""
        request = self._request(caller, request_id)
        if not self.platform.transition(request_id, CANCELLABLE, State.CANCELLED):
            current = self._request(caller, request_id)["state"]
            self._audit(caller, "import-cancelled", "refused", request_id=request_id, detail=current)
            raise Conflict(
                f"Import {request_id} is {current}; only a Queued, Importing or Validating import can be "
                "cancelled."
                + (
                    " A promotion is one transaction: it finishes or rolls back on its own."
                    if current == State.PROMOTING
                    else ""
                )
            )
        self._audit(caller, "import-cancelled", "cancelled", request_id=request_id, detail=request["state"])
        log.info("import %s cancelled by %s (was %s)", request_id, caller.client_id, request["state"])
        self.queue.cancel(request_id, request["tenant"])
        return self.status(caller, request_id)

    def status(self, caller: Caller, request_id: str) -> dict[str, Any]:
        request = self._request(caller, request_id, with_tables=True)
        return {**request, "worker_pid": self.queue.worker_pid(request_id)}

    def id_map(
        self, caller: Caller, request_id: str, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, str]]]:
        request = self._promoted(caller, request_id)
        return id_map(self.stores, request_id, request["tenant"], offset=offset, limit=limit)

    def _promoted(self, caller: Caller, request_id: str) -> dict[str, Any]:
        request = self._request(caller, request_id)
        if request["state"] != State.PROMOTED:
            raise Conflict(
                f"Import {request_id} is {request['state']}; the id map exists once it is Promoted."
            )
        self._staging_kept(request_id)
        return request

    def all_id_map(self, caller: Caller, request_id: str) -> Iterator[dict[str, str]]:
        """The whole id map, in the order of `id_map`'s pages; checked before the first row is read."""
        request = self._promoted(caller, request_id)
        return iter_id_map(self.stores, request_id, request["tenant"])

    def preview(self, caller: Caller, request_id: str, *, sample: int = 5) -> dict[str, Any]:
        """What promoting the import would do now, against which production revision (writes nothing)."""
        tenant = self._previewable(caller, request_id)
        # The promotion lock: the revision and the counts come from one state of production.
        with self.stores.promotion_session(request_id, tenant, write=True) as conn:
            revision = current_revision(conn)
            results, samples = diff(conn, request_id, sample=sample)
        return {"revision": revision, "tables": results, "samples": samples}

    def preview_changes(
        self, caller: Caller, request_id: str, table: str, *, offset: int, limit: int
    ) -> tuple[int, list[Change]]:
        tenant = self._previewable(caller, request_id)
        if table not in ENTITY_BY_NAME:
            raise EtlError(f"No table {table!r}; one of {', '.join(ENTITY_BY_NAME)}.", code="invalid-table")
        return changes(self.stores, request_id, tenant, table, offset=offset, limit=limit)

    def all_preview_changes(self, caller: Caller, request_id: str) -> Iterator[Change]:
        return iter_changes(self.stores, request_id, self._previewable(caller, request_id))

    def _previewable(self, caller: Caller, request_id: str) -> str:
        request = self._request(caller, request_id)
        if request["state"] not in PROMOTABLE:
            raise Conflict(
                f"Import {request_id} is {request['state']}; only an import that may be promoted (Validated, "
                "Promoted, PromotionFailed or Reverted) has a promotion preview."
            )
        self._staging_kept(request_id)
        return str(request["tenant"])

    def revert(self, caller: Caller, request_id: str) -> dict[str, Any]:
        """Undo a Promoted import's promotion in production (one transaction), then mark it Reverted."""
        request = self._request(caller, request_id)
        if request["state"] != State.PROMOTED:
            self._audit(caller, "revert-requested", "refused", request_id=request_id, detail=request["state"])
            raise Conflict(
                f"Import {request_id} is {request['state']}; only a Promoted import can be reverted."
            )
        try:
            done = revert(self.stores, request_id, request["tenant"], keep_days=self.settings.revert_days)
        except (RevertRefused, NothingToRevert) as refused:
            self._audit(caller, "revert-requested", "refused", request_id=request_id, detail=refused.code)
            raise Conflict(refused.message, code=refused.code) from None
        except RevertExpired as expired:
            self._audit(caller, "revert-requested", "refused", request_id=request_id, detail=expired.code)
            raise Gone(expired.message, code=expired.code) from None
        promotion = {
            **(request["promotion"] or {}),
            "revertedRevision": done.revision,
            "revertedBy": caller.client_id,
            "revertedAt": iso_z(now()),
        }
        if not self.platform.transition(request_id, [State.PROMOTED], State.REVERTED, promotion=promotion):
            current = self._request(caller, request_id)["state"]
            raise Conflict(
                f"Import {request_id} was reverted in production but is now {current}: another request "
                "changed it meanwhile. See its status."
            )
        self._audit(
            caller,
            "import-reverted",
            State.REVERTED,
            request_id=request_id,
            detail=f"revision {done.revision}",
        )
        log.info(
            "import %s reverted by %s (production revision %s)", request_id, caller.client_id, done.revision
        )
        return self.status(caller, request_id)

    def findings(
        self, caller: Caller, request_id: str, where: FindingFilter, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        return findings_page(
            self.stores, self._validated(caller, request_id), where, offset=offset, limit=limit
        )

    def all_findings(self, caller: Caller, request_id: str, where: FindingFilter) -> Iterator[dict[str, Any]]:
        return iter_findings(self.stores, self._validated(caller, request_id), where)

    def audit_events(self, caller: Caller, *, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        return self.platform.audit_events(caller.tenant, offset=offset, limit=limit)

    def _validated(self, caller: Caller, request_id: str) -> str:
        request = self._request(caller, request_id)
        if request["state"] not in VALIDATION_RAN:
            raise Conflict(
                f"Import {request_id} is {request['state']}; findings exist once validation has run."
                + (
                    " The import failed before validation: see its failure reason."
                    if request["state"] == State.FAILED
                    else ""
                )
            )
        self._staging_kept(request_id)
        return request_id

    def _staging_kept(self, request_id: str) -> None:
        if not self.stores.staging_exists(request_id):
            raise Gone(
                f"The staging data of import {request_id} has been deleted: a finished import's staging data "
                f"is kept for EFIMIS_STAGING_RETENTION_HOURS ({self.settings.staging_retention_hours:g} h, the "
                "retention). Its findings and id map are no longer available; import it again to see them."
            )

    def _request(self, caller: Caller, request_id: str, *, with_tables: bool = False) -> dict[str, Any]:
        # Another tenant's request is indistinguishable from one that does not exist; so is anything that
        # is not a request id at all (and it never reaches the database).
        load = self.platform.status if with_tables else self.platform.get
        request = load(request_id, caller.tenant) if is_request_id(request_id) else None
        if request is None:
            raise NotFound(f"No import request {request_id!r}.")
        return request

    def _audit(self, caller: Caller, action: str, outcome: str, **fields: Any) -> None:
        self.platform.audit(
            caller.tenant, caller.client_id, action, outcome, remote_address=caller.remote_address, **fields
        )
