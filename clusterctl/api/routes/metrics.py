"""``/healthz`` and the controller's Prometheus ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from clusterctl.api.deps import Controller

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics")
def metrics(ctl: Controller) -> Response:
    """For Prometheus, unauthenticated like the agents' (serve it on the private network)."""
    return Response(ctl.metrics(), media_type=CONTENT_TYPE_LATEST)
