"""The audit route: a tenant's submissions, promotion requests and job outcomes, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from efimis_etl.api.dependencies import MAX_OFFSET, CallerDep, ServiceDep
from efimis_etl.api.errors import ERROR_RESPONSES
from efimis_etl.api.models import AuditEvent, AuditPage

router = APIRouter(tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/etl/audit", response_model=AuditPage)
def audit(
    who: CallerDep,
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Who submitted or promoted what, when and from where, for the caller's tenant (newest first)."""
    total, items = service.audit_events(who, offset=offset, limit=limit)
    events = [AuditEvent.model_validate(i) for i in items]
    return AuditPage(total=total, offset=offset, limit=limit, items=events)
