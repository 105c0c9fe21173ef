"""A job's output, as kept by the controller (``clusterctl logs``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep, load_job
from clusterctl.api.routes.jobs import require_owner
from clusterctl.parsing import MAX_OFFSET, BadInput

router = APIRouter()
LOG_CHUNK = 1 << 20


@router.get("/v1/jobs/{job_id}/logs")
def logs(job_id: str, user: CurrentUser, ctl: ControllerDep, offset: int = 0, rank: int = 0,
         attempt: int | None = None) -> Response:
    if not 0 <= offset <= MAX_OFFSET:
        raise BadInput("offset", f"must be from 0 to {MAX_OFFSET}")
    job = load_job(ctl, job_id)
    assert job.id is not None
    require_owner(user, job, "log")
    if rank < 0 or rank >= max(job.nodes, 1):
        raise BadInput("--rank", f"must be from 0 to {job.nodes - 1}")
    latest = max(job.attempt, 1)
    if attempt is not None and not 1 <= attempt <= latest:
        raise BadInput("--attempt", f"must be from 1 to {latest}")
    att = attempt if attempt is not None else latest
    data = ctl.logs.read(job.id, att, rank, offset, LOG_CHUNK)
    return Response(content=data, media_type="application/octet-stream", headers={
        "X-Next-Offset": str(offset + len(data)),
        "X-Job-State": job.state,
        "X-Attempt": str(att),
        "X-Latest-Attempt": str(latest),
    })
