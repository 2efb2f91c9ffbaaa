"""The liveness route a load balancer polls."""

from __future__ import annotations

from fastapi import APIRouter

from efimis_etl import __version__

router = APIRouter(tags=["service"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
