"""``/healthz`` and the controller's Prometheus ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from clusterctl.api.deps import Controller

router = APIRouter()


@router.get("/healthz")
def healthz(ctl: Controller) -> JSONResponse:
    """200 when the controller can serve; 503 with the reason (the database) when it cannot."""
    problems = ctl.health()
    if problems:
        return JSONResponse(status_code=503, content={"status": "unavailable", **problems},
                            headers={"Retry-After": "5"})
    return JSONResponse(content={"status": "ok"})


@router.get("/metrics")
def metrics(ctl: Controller) -> Response:
    """For Prometheus, unauthenticated like the agents' (serve it on the private network)."""
    return Response(ctl.metrics(), media_type=CONTENT_TYPE_LATEST)
