"""``/healthz``: whether the controller can serve. (Its Prometheus ``/metrics`` has a listener
of its own, for the cluster network: ``api/server.py``.)"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from clusterctl.api.deps import ControllerDep

router = APIRouter()


@router.get("/healthz")
def healthz(ctl: ControllerDep) -> JSONResponse:
    """200 when the controller can serve; 503 with the reason (the database) when it cannot."""
    problems = ctl.health()
    if problems:
        return JSONResponse(status_code=503, content={"status": "unavailable", **problems},
                            headers={"Retry-After": "5"})
    return JSONResponse(content={"status": "ok"})
