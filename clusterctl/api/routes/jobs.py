"""Jobs: upload a working directory, submit, list, show, cancel."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response

from clusterctl import parsing
from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep, load_job
from clusterctl.api.schemas import (
    AllocationOut,
    CancelOut,
    GpuUsageOut,
    HistoryEntry,
    JobDetail,
    JobOut,
    JobUpdate,
    PackageOut,
    SubmitOut,
    UsageOut,
)
from clusterctl.controller.interface import ControllerApi
from clusterctl.gpu_types import parse_gpu_ask, parse_type
from clusterctl.job_request import JobRequest
from clusterctl.parsing import BadInput
from clusterctl.scheduler.records import Wait
from clusterctl.states import JobState
from clusterctl.store import Allocation, Job, User
from clusterctl.usage import Usage

router = APIRouter()
BUDGET_HEADER = "X-Clusterctl-Budget"


def may_see(user: User, job: Job) -> bool:
    """A job's command, environment and log are its owner's and the admins' to see."""
    return user.is_admin or job.user == user.name


def require_owner(user: User, job: Job, what: str) -> None:
    if not may_see(user, job):
        raise HTTPException(403, f"job {job.id} belongs to {job.user}; only they or an admin "
                            f"can see its {what}")


def budget_note(ctl: ControllerApi, teams: list[str], response: Response) -> None:
    """Teams at 80% of their budget or over: said with every submit and listing."""
    notes = ctl.budget_notes(teams)
    if notes:
        response.headers[BUDGET_HEADER] = "; ".join(notes).encode("ascii", "replace").decode()


def node_names(ctl: ControllerApi) -> dict[str, str]:
    return {n.id: n.name for n in ctl.cluster()}


def job_out(job: Job, node_names: dict[str, str], idle_gpus: bool = False,
            wait: Wait | None = None) -> JobOut:
    assert job.id is not None
    if job.state != JobState.PENDING:
        wait = None
    estimate = wait.estimated_start if wait is not None else None
    return JobOut(
        id=job.id, name=job.name, user=job.user, team=job.team, state=job.state,
        reason=job.reason, command=job.command, gpus=job.gpus, nodes=job.nodes,
        gpu_types=job.gpu_types, gpu_mem_bytes=job.gpu_mem, priority=job.priority,
        time_limit_s=job.time_limit_s, retries=job.retries,
        requeues=job.requeues, attempt=job.attempt, exit_code=job.exit_code,
        cancel_requested=job.cancel_requested, cancel_asked_at=job.cancel_asked_at,
        cancel_reason=job.cancel_reason, workdir=job.workdir,
        node_names=[node_names.get(n, n[:12]) for n in job.placement or []],
        submitted_at=job.submitted_at, started_at=job.started_at, ended_at=job.ended_at,
        idle_gpus=idle_gpus, no_preempt=job.no_preempt, preemptions=job.preemptions,
        held_by=job.held_by if job.state == "PENDING" else None,
        idle_timeout_s=job.idle_timeout_s, interactive=job.interactive,
        after=job.after, array_id=job.array_id, array_index=job.array_index,
        array_limit=job.array_limit, service_id=job.service_id,
        wait_reason=str(wait.reason) if wait else None, wait_detail=wait.detail if wait else None,
        estimated_start=datetime.fromtimestamp(estimate, timezone.utc) if estimate else None,
        start_unknown=bool(wait and wait.start_unknown),
    )


@router.post("/v1/packages", response_model=PackageOut)
async def upload_package(request: Request, user: CurrentUser, ctl: ControllerDep) -> PackageOut:
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > ctl.max_package_bytes:
            raise BadInput("working directory", f"is larger than the controller's limit "
                           f"of {ctl.max_package_bytes // (1 << 20)} MiB")
    sha = ctl.packages.put(bytes(data))
    return PackageOut(sha256=sha, size=len(data))


@router.post("/v1/jobs", response_model=SubmitOut, status_code=201)
def submit(body: JobRequest, user: CurrentUser, ctl: ControllerDep, response: Response,
           idempotency_key: Annotated[str | None, Header()] = None) -> SubmitOut:
    """A submit with an ``Idempotency-Key`` the same user sent before makes no job: the
    answer is the first one's jobs (200, ``Idempotent-Replayed: true``), as a client that
    lost the first answer and tries again expects. The body is a ``JobRequest``, in people's
    words (``"gpus": "H100:2", "time_limit": "2h"``) or typed, as the CLI sends it."""
    key = parsing.parse_idempotency_key(idempotency_key) if idempotency_key else None
    earlier = ctl.jobs.submitted(user.name, key) if key else []
    if earlier:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        return _submitted(ctl, earlier, body.array is not None)
    jobs = ctl.submissions.submit(user, body, key)
    budget_note(ctl, [jobs[0].team], response)
    return _submitted(ctl, jobs, body.array is not None)


def _submitted(ctl: ControllerApi, jobs: list[Job], array: bool) -> SubmitOut:
    first = job_out(jobs[0], node_names(ctl))
    return SubmitOut(**first.model_dump(),
                     array_job_ids=[j.id for j in jobs if j.id is not None] if array else None)


@router.get("/v1/jobs", response_model=list[JobOut])
def list_jobs(user: CurrentUser, ctl: ControllerDep, response: Response, all: bool = False,
              owner: str | None = None, state: str | None = None, limit: int = 1000,
              team: str | None = None, name: str | None = None, since: str | None = None,
              array: int | None = None, before: int | None = None,
              gpu_type: str | None = None) -> list[JobOut]:
    """The newest ``limit`` jobs that match, oldest first; ``X-Total-Count`` says how many
    match in all, and ``before`` (a job id: the first one shown) pages back. ``gpu_type``:
    jobs that asked for a type beginning with it."""
    states = None
    if state:
        states = [s.strip().upper() for s in state.split(",")]
        bad = [s for s in states if s not in JobState.__members__]
        if bad:
            raise BadInput("--state", f"{bad[0]!r} is not one of "
                           + ", ".join(JobState.__members__))
    if not 1 <= limit <= 100_000:
        raise BadInput("limit", "must be from 1 to 100000")
    if team is not None:
        team = parsing.parse_name(team, "--team")
    if name is not None and (not name or len(name) > 255):
        raise BadInput("--name", "must be 1 to 255 characters (* matches any)")
    after = None if since is None else parsing.parse_instant(since, "--since")
    if gpu_type is not None:
        gpu_type = parse_type(gpu_type)
    for value, field in ((array, "--array"), (before, "before")):
        if value is not None and not 0 < value < 2**62:
            raise BadInput(field, "must be a job id")
    rows, total = ctl.jobs.search(include_finished=all, user=owner, states=states, limit=limit,
                                  team=team, name=name, since=after, array_id=array,
                                  before_id=before, gpu_type=gpu_type)
    response.headers["X-Total-Count"] = str(total)
    budget_note(ctl, user.teams, response)
    names = node_names(ctl)
    idle = ctl.idle_jobs(j.id for j in rows if j.id is not None)
    waiting = ctl.waiting()
    out = [job_out(j, names, j.id in idle, waiting.get(j.id or 0)) for j in rows]
    for job, row in zip(rows, out, strict=True):
        if not may_see(user, job):  # others see it in the queue, not what it runs
            row.command, row.workdir = [], None
    return out


@router.get("/v1/jobs/{job_id}", response_model=JobDetail)
def show(job_id: str, user: CurrentUser, ctl: ControllerDep) -> JobDetail:
    job = load_job(ctl, job_id)
    assert job.id is not None
    require_owner(user, job, "details")
    # The history first, then the row again: two reads are two snapshots, and a job must never
    # show a state older than its own history (RUNNING beside the LOST that ended it).
    history = ctl.jobs.history(job.id)
    job = ctl.jobs.get(job.id) or job
    assert job.id is not None
    base = job_out(job, node_names(ctl), bool(ctl.idle_jobs([job.id])),
                   ctl.waiting().get(job.id))
    allocations = ctl.jobs.allocations(job.id)
    return JobDetail(
        **base.model_dump(), env=job.env,
        history=[HistoryEntry(state=h.state, at=h.at, reason=h.reason, attempt=h.attempt)
                 for h in history],
        allocations=[AllocationOut(**a.model_dump(exclude={"id", "job_id"}))
                     for a in allocations],
        usage=usage_out(ctl, job, allocations),
        cost=ctl.job_cost(job.id, int(time.time() * 1000)), notify_url=job.notify_url,
        idle_warning=ctl.idle_warning(job),
    )


def _figures(u: Usage) -> dict[str, Any]:
    return {"avg_utilization": u.avg_utilization, "peak_memory_bytes": u.peak_memory_bytes,
            "avg_power_watts": u.avg_power_watts, "energy_kwh": u.energy_kwh,
            "coverage": u.coverage, "energy_coverage": u.energy_coverage}


def usage_out(ctl: ControllerApi, job: Job, allocations: list[Allocation]) -> UsageOut | None:
    found = ctl.job_usage(allocations)
    if found is None:
        return None
    total, per_gpu = found
    figures = _figures(total)
    if total.avg_power_watts is not None:
        figures["avg_power_watts"] = total.avg_power_watts * job.gpus * job.nodes
    return UsageOut(
        **figures, gpu_hours=total.window_s / 3600,
        gpus=[GpuUsageOut(**_figures(g.usage), attempt=g.allocation.attempt,
                          rank=g.allocation.rank, node=g.allocation.node,
                          gpu_index=g.allocation.gpu_index, gpu_uuid=g.allocation.gpu_uuid)
              for g in per_gpu],
    )


@router.post("/v1/jobs/{job_id}/cancel", response_model=CancelOut)
def cancel(job_id: str, user: CurrentUser, ctl: ControllerDep) -> CancelOut:
    job = load_job(ctl, job_id)
    assert job.id is not None
    outcome, after = ctl.jobs.request_cancel(job.id, user.name, user.is_admin)
    if outcome == "forbidden":
        raise HTTPException(403, f"job {job.id} belongs to {job.user}; only they or an "
                            "admin can cancel it")
    if outcome == "ended":
        raise HTTPException(409, f"job {job.id} already ended ({job.state})")
    ctl.wake()
    final = after or job
    return CancelOut(id=job.id, outcome=outcome, state=final.state)


def _pending_of(ctl: ControllerApi, job_id: str, user: User, what: str) -> Job:
    job = load_job(ctl, job_id)
    if job.user != user.name and not user.is_admin:
        raise HTTPException(403, f"job {job.id} belongs to {job.user}; only they or an admin "
                            f"can {what} it")
    if job.state != "PENDING":
        done = {"hold": "held", "release": "released"}.get(what, f"{what}d")
        raise HTTPException(409, f"job {job.id} is {job.state}; only a pending job can be "
                            f"{done}")
    return job


def _changed(ctl: ControllerApi, job: Job, values: dict[str, Any]) -> JobOut:
    assert job.id is not None
    if not ctl.jobs.update_pending(job.id, values):
        raise HTTPException(409, f"job {job.id} started meanwhile; it can no longer change")
    ctl.wake()
    fresh = ctl.jobs.get(job.id)
    assert fresh is not None
    return job_out(fresh, node_names(ctl))


@router.post("/v1/jobs/{job_id}/hold", response_model=JobOut)
def hold(job_id: str, user: CurrentUser, ctl: ControllerDep) -> JobOut:
    """Keep a pending job from starting until it is released (Slurm's ``scontrol hold``)."""
    job = _pending_of(ctl, job_id, user, "hold")
    return _changed(ctl, job, {"held_by": job.held_by or user.name})


@router.post("/v1/jobs/{job_id}/release", response_model=JobOut)
def release(job_id: str, user: CurrentUser, ctl: ControllerDep) -> JobOut:
    """An admin's hold on someone's job is an admin's to release."""
    job = _pending_of(ctl, job_id, user, "release")
    if job.held_by and job.held_by != job.user and not user.is_admin:
        raise HTTPException(403, f"job {job.id} is held by the admin {job.held_by}; only an "
                            "admin can release it")
    return _changed(ctl, job, {"held_by": None})


@router.patch("/v1/jobs/{job_id}", response_model=JobOut)
def update(job_id: str, body: JobUpdate, user: CurrentUser, ctl: ControllerDep) -> JobOut:
    """Change a pending job: its owner within the limits a submit has, admins any."""
    job = _pending_of(ctl, job_id, user, "update")
    values: dict[str, Any] = {}
    if body.priority is not None:
        priority = parsing.parse_priority(body.priority)
        ctl.submissions.check_priority(user, priority, job.priority)
        values["priority"] = priority
    if body.time_limit is not None:
        text = str(body.time_limit).strip().lower()
        values["time_limit_s"] = None if text in ("none", "") else parsing.parse_duration(text)
    if body.gpus is not None:
        gpus, types, _ = parse_gpu_ask(body.gpus, None, None, parsing.MAX_GPUS_PER_NODE)
        types = types or job.gpu_types
        never = ctl.why_never(gpus, job.nodes, types, job.gpu_mem)
        if never:
            raise BadInput(*never)
        values.update(gpus=gpus, gpu_types=types or None)
    if not values:
        raise BadInput("update", "give --priority, --time-limit or --gpus")
    if user.is_admin and user.name != job.user:
        ctl.audit.record(user.name, "job.update", str(job.id),
                         ", ".join(f"{k} {v}" for k, v in values.items()))
    return _changed(ctl, job, values)
