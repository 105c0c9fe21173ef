"""The HTTP API (FastAPI). Handlers validate, write through the store, and wake the scheduler;
they never call Ray, so the API stays responsive while the cluster is slow or away."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from clusterctl import parsing
from clusterctl.api.auth import CurrentNode, CurrentUser
from clusterctl.api.cost_routes import router as cost_router
from clusterctl.api.report_routes import router as report_router
from clusterctl.api.schemas import (
    AllocationOut,
    CancelOut,
    CostOut,
    DrainIn,
    DrainOut,
    GpuOut,
    GpuUsageOut,
    HistoryEntry,
    HolderOut,
    IngestOut,
    JobDetail,
    JobOut,
    JobSubmit,
    NodeOut,
    NodeTokenOut,
    PackageOut,
    SampleBatch,
    SubmitOut,
    UsageOut,
    UserCreate,
    UserCreated,
    UserOut,
)
from clusterctl.controller.files import LogStore, PackageStore
from clusterctl.controller.metrics import ControllerCollector
from clusterctl.controller.reports import ReportService
from clusterctl.controller.telemetry import job_usage
from clusterctl.parsing import BadInput
from clusterctl.reports.waste import DEFAULT_MIN_IDLE_S
from clusterctl.scheduler.loop import Scheduler
from clusterctl.scheduler.state import Wait
from clusterctl.states import JobState
from clusterctl.store import (
    Allocation,
    CostStore,
    Job,
    JobStore,
    NewJob,
    NodeStore,
    SampleStore,
    UserExists,
    UserStore,
)
from clusterctl.usage import Usage

LOG_CHUNK = 1 << 20
WASTE_MIN_IDLE_S = DEFAULT_MIN_IDLE_S


@dataclass
class Services:
    jobs: JobStore
    users: UserStore
    scheduler: Scheduler
    logs: LogStore
    packages: PackageStore
    max_package_bytes: int
    samples: SampleStore
    costs: CostStore
    reports: ReportService
    nodes: NodeStore
    raw_retention_s: float = 14 * 86400




def _figures(u: Usage) -> dict[str, Any]:
    return {"avg_utilization": u.avg_utilization, "peak_memory_bytes": u.peak_memory_bytes,
            "avg_power_watts": u.avg_power_watts, "energy_kwh": u.energy_kwh,
            "coverage": u.coverage, "energy_coverage": u.energy_coverage}


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def job_out(job: Job, node_names: dict[str, str], idle_gpus: bool = False,
            wait: Wait | None = None) -> JobOut:
    assert job.id is not None
    if job.state != JobState.PENDING:
        wait = None
    estimate = wait.estimated_start if wait is not None else None
    return JobOut(
        id=job.id, name=job.name, user=job.user, team=job.team, state=job.state,
        reason=job.reason, command=job.command, gpus=job.gpus, nodes=job.nodes,
        priority=job.priority, time_limit_s=job.time_limit_s, retries=job.retries,
        requeues=job.requeues, attempt=job.attempt, exit_code=job.exit_code,
        cancel_requested=job.cancel_requested, workdir=job.workdir,
        node_names=[node_names.get(n, n[:12]) for n in job.placement or []],
        submitted_at=job.submitted_at, started_at=job.started_at, ended_at=job.ended_at,
        idle_gpus=idle_gpus, no_preempt=job.no_preempt, preemptions=job.preemptions,
        after=job.after, array_id=job.array_id, array_index=job.array_index,
        array_limit=job.array_limit,
        wait_reason=str(wait.reason) if wait else None, wait_detail=wait.detail if wait else None,
        estimated_start=datetime.fromtimestamp(estimate, timezone.utc) if estimate else None,
    )


def create_app(svc: Services) -> FastAPI:
    app = FastAPI(title="clusterctl", version="0.1.0")
    app.state.services = svc

    @app.exception_handler(BadInput)
    async def _bad_input(_: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc), "field": exc.field})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return JSONResponse(status_code=422,
                            content={"detail": f"{where}: {first.get('msg', 'invalid')}",
                                     "field": where})


    def names() -> dict[str, str]:
        return {n.id: n.name for n in svc.scheduler.nodes}

    def load_job(job_id: str) -> Job:
        job = svc.jobs.get(parsing.parse_job_id(job_id))
        if job is None:
            raise HTTPException(404, f"no such job: {job_id}")
        return job

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControllerCollector(
        svc.jobs, svc.costs, svc.nodes, lambda: svc.scheduler.nodes,
        svc.scheduler.policy_config.quotas, lambda: svc.scheduler.passes))

    @app.get("/metrics")
    def metrics() -> Response:
        """For Prometheus, unauthenticated like the agents' (serve it on the private network)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/whoami", response_model=UserOut)
    def whoami(user: CurrentUser) -> UserOut:
        return UserOut(name=user.name, team=user.team, is_admin=user.is_admin)

    @app.post("/v1/packages", response_model=PackageOut)
    async def upload_package(request: Request, user: CurrentUser) -> PackageOut:
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > svc.max_package_bytes:
                raise BadInput("working directory", f"is larger than the controller's limit "
                               f"of {svc.max_package_bytes // (1 << 20)} MiB")
        sha = svc.packages.put(bytes(data))
        return PackageOut(sha256=sha, size=len(data))

    @app.post("/v1/jobs", response_model=SubmitOut, status_code=201)
    def submit(body: JobSubmit, user: CurrentUser) -> SubmitOut:
        command = parsing.parse_command(body.command)
        gpus = parsing.parse_gpus(body.gpus)
        nodes = parsing.parse_nodes(body.nodes)
        priority = parsing.parse_priority(body.priority)
        retries = parsing.parse_retries(body.retries)
        limit = None
        if body.time_limit not in (None, ""):
            limit = parsing.parse_duration(str(body.time_limit))
        env = parsing.parse_env([f"{k}={v}" for k, v in body.env.items()])
        team = parsing.parse_name(body.team, "--team") if body.team else user.team
        name = parsing.parse_name(body.name, "--name") if body.name else _default_name(command)
        if body.package and not svc.packages.exists(body.package):
            raise BadInput("package", "is not an uploaded package id")
        if body.workdir and not body.workdir.startswith("/"):
            raise BadInput("--workdir", f"{body.workdir!r} must be an absolute path")
        after = parsing.parse_after(
            [body.after] if isinstance(body.after, str) else list(body.after or []))
        known = svc.jobs.states(d["job"] for d in after)
        missing = [d["job"] for d in after if d["job"] not in known]
        if missing:
            raise BadInput("--after", f"job {missing[0]} does not exist")
        indices, array_limit = parsing.parse_array(body.array) if body.array else (None, None)
        never = svc.scheduler.why_never(gpus, nodes)
        if never:
            field = "--gpus" if "per node" in never else "--nodes"
            raise BadInput(field, never)
        jobs = svc.jobs.submit_all(NewJob(
            name=name, user=user.name, team=team, command=command, gpus=gpus, nodes=nodes,
            priority=priority, time_limit_s=limit, retries=retries, env=env,
            workdir=body.workdir, package=body.package, no_preempt=body.no_preempt,
            after=after or None, array_indices=indices, array_limit=array_limit,
        ))
        svc.scheduler.wake.set()
        first = job_out(jobs[0], names())
        return SubmitOut(**first.model_dump(),
                         array_job_ids=[j.id for j in jobs if j.id is not None]
                         if indices is not None else None)

    @app.get("/v1/jobs", response_model=list[JobOut])
    def list_jobs(user: CurrentUser, all: bool = False, owner: str | None = None,
                  state: str | None = None, limit: int = 1000) -> list[JobOut]:
        states = None
        if state:
            states = [s.strip().upper() for s in state.split(",")]
            bad = [s for s in states if s not in JobState.__members__]
            if bad:
                raise BadInput("--state", f"{bad[0]!r} is not one of "
                               + ", ".join(JobState.__members__))
        if not 1 <= limit <= 100_000:
            raise BadInput("limit", "must be from 1 to 100000")
        rows = svc.jobs.search(include_finished=all, user=owner, states=states, limit=limit)
        nm = names()
        idle = svc.reports.store.idle_jobs([j.id for j in rows if j.id is not None],
                                           WASTE_MIN_IDLE_S)
        waiting = svc.scheduler.waiting
        return [job_out(j, nm, j.id in idle, waiting.get(j.id or 0)) for j in rows]

    @app.get("/v1/jobs/{job_id}", response_model=JobDetail)
    def show(job_id: str, user: CurrentUser) -> JobDetail:
        job = load_job(job_id)
        assert job.id is not None
        base = job_out(job, names(), bool(svc.reports.store.idle_jobs([job.id],
                                                                      WASTE_MIN_IDLE_S)),
                       svc.scheduler.waiting.get(job.id))
        allocations = svc.jobs.allocations(job.id)
        cost = svc.reports.job_cost(job.id, int(time.time() * 1000))
        return JobDetail(
            **base.model_dump(), env=job.env,
            history=[HistoryEntry(state=h.state, at=h.at, reason=h.reason, attempt=h.attempt)
                     for h in svc.jobs.history(job.id)],
            allocations=[AllocationOut(**a.model_dump(exclude={"id", "job_id"}))
                         for a in allocations],
            usage=usage_out(job, allocations),
            cost=CostOut(**cost) if cost else None,
        )

    def usage_out(job: Job, allocations: list[Allocation]) -> UsageOut | None:
        now = time.time()
        found = job_usage(allocations, svc.samples, now, now - svc.raw_retention_s)
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

    @app.post("/v1/jobs/{job_id}/cancel", response_model=CancelOut)
    def cancel(job_id: str, user: CurrentUser) -> CancelOut:
        job = load_job(job_id)
        assert job.id is not None
        outcome, after = svc.jobs.request_cancel(job.id, user.name, user.is_admin)
        if outcome == "forbidden":
            raise HTTPException(403, f"job {job.id} belongs to {job.user}; only they or an "
                                "admin can cancel it")
        if outcome == "ended":
            raise HTTPException(409, f"job {job.id} already ended ({job.state})")
        svc.scheduler.wake.set()
        final = after or job
        return CancelOut(id=job.id, outcome=outcome, state=final.state)

    @app.get("/v1/jobs/{job_id}/logs")
    def logs(job_id: str, user: CurrentUser, offset: int = 0, rank: int = 0,
             attempt: int | None = None) -> Response:
        job = load_job(job_id)
        assert job.id is not None
        if rank < 0 or rank >= max(job.nodes, 1):
            raise BadInput("--rank", f"must be from 0 to {job.nodes - 1}")
        att = attempt if attempt is not None else max(job.attempt, 1)
        data = svc.logs.read(job.id, att, rank, max(0, offset), LOG_CHUNK)
        return Response(content=data, media_type="application/octet-stream", headers={
            "X-Next-Offset": str(max(0, offset) + len(data)),
            "X-Job-State": job.state,
            "X-Attempt": str(att),
        })

    @app.get("/v1/nodes", response_model=list[NodeOut])
    def nodes(user: CurrentUser) -> list[NodeOut]:
        holders: dict[tuple[str, int], tuple[int, str]] = {}
        active = {j.id: j for j in svc.jobs.active()}
        for a in svc.jobs.allocations(open_only=True):
            if a.job_id in active:
                holders[(a.node_id, a.gpu_index)] = (a.job_id, active[a.job_id].user)
        free = {c.id: c.free_gpus for c in svc.scheduler.capacity(list(active.values()))}
        live = {(d.node, d.gpu_index): d for d in svc.samples.devices()}
        drains = svc.nodes.drained()
        by_node: dict[str, list[GpuOut]] = defaultdict(list)
        out = []
        for n in svc.scheduler.nodes:
            for i in range(n.gpus):
                job_id, owner = holders.get((n.id, i), (None, None))
                d = live.get((n.name, i))
                by_node[n.id].append(GpuOut(index=i, job_id=job_id, user=owner) if d is None
                                     else GpuOut(
                    index=i, job_id=job_id, user=owner, uuid=d.gpu_uuid, model=d.model,
                    utilization=d.utilization, memory_used_bytes=d.memory_used,
                    memory_total_bytes=d.memory_total, power_watts=d.power_w,
                    temperature_celsius=d.temperature_c, sampled_at=_ms_time(d.last_ms),
                    error=d.error))
            drain = drains.get(n.name)
            out.append(NodeOut(id=n.id, name=n.name, address=n.address, gpus=n.gpus,
                               gpu_model=n.gpu_model, free_gpus=free.get(n.id, 0),
                               alive=n.alive, gpu_jobs=by_node[n.id], drained=drain is not None,
                               drain_reason=drain.reason if drain else None,
                               drained_by=drain.by if drain else None,
                               drained_at=drain.at if drain else None))
        return out

    def _drain_target(node: str, user: Any) -> str:
        if not user.is_admin:
            raise HTTPException(403, "only an admin can drain or undrain nodes")
        name = parsing.parse_node_name(node)
        known = {n.name for n in svc.scheduler.nodes} | set(svc.nodes.drained())
        if name not in known:
            raise BadInput("NODE", f"no node named {name}; nodes: "
                           + (", ".join(sorted(known)) or "none"))
        return name

    def _running_on(name: str) -> list[int]:
        ids = {n.id for n in svc.scheduler.nodes if n.name == name}
        return sorted(j.id for j in svc.jobs.active()
                      if j.id is not None and ids & set(j.placement or []))

    @app.post("/v1/nodes/{node}/drain", response_model=DrainOut)
    def drain(node: str, body: DrainIn, user: CurrentUser) -> DrainOut:
        name = _drain_target(node, user)
        reason = body.reason.strip()[:200] if body.reason else None
        svc.nodes.drain(name, user.name, reason)
        svc.scheduler.wake.set()
        return DrainOut(node=name, drained=True, running_jobs=_running_on(name))

    @app.post("/v1/nodes/{node}/undrain", response_model=DrainOut)
    def undrain(node: str, user: CurrentUser) -> DrainOut:
        name = _drain_target(node, user)
        svc.nodes.undrain(name)
        svc.scheduler.wake.set()
        return DrainOut(node=name, drained=False, running_jobs=_running_on(name))

    @app.post("/v1/agent/samples", response_model=IngestOut)
    async def ingest(request: Request, node: CurrentNode) -> IngestOut:
        """An agent's batch: stored once however often it is sent. The body is validated
        straight from its JSON bytes (pydantic's fast path; batches hold thousands of rows),
        off the event loop like the write."""
        return await run_in_threadpool(_store_batch, await request.body(), node)

    def _store_batch(raw: bytes, node: str) -> IngestOut:
        try:
            body = SampleBatch.model_validate_json(raw)
        except ValidationError as e:
            raise RequestValidationError(
                [{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
        if body.node != node:
            raise HTTPException(403, f"this token ships samples for node {node}, "
                                f"not {body.node}")
        stored = svc.samples.ingest(node, [s.model_dump() for s in body.samples])
        active = {j.id: j for j in svc.jobs.active()}
        held = [HolderOut(gpu_index=a.gpu_index, job_id=a.job_id, user=active[a.job_id].user)
                for a in svc.jobs.allocations(open_only=True, node=node) if a.job_id in active]
        return IngestOut(inserted=stored.inserted, duplicates=stored.duplicates,
                         allocations=held)

    @app.post("/v1/nodes/{node}/token", response_model=NodeTokenOut, status_code=201)
    def node_token(node: str, user: CurrentUser) -> NodeTokenOut:
        if not user.is_admin:
            raise HTTPException(403, "only an admin can issue node tokens")
        name = parsing.parse_node_name(node)
        return NodeTokenOut(node=name, token=svc.users.issue_node_token(name))

    @app.post("/v1/users", response_model=UserCreated, status_code=201)
    def add_user(body: UserCreate, user: CurrentUser) -> UserCreated:
        if not user.is_admin:
            raise HTTPException(403, "only an admin can add users")
        name = parsing.parse_name(body.name, "NAME")
        team = parsing.parse_name(body.team, "--team")
        try:
            created, token = svc.users.add(name, team, body.admin)
        except UserExists:
            raise HTTPException(409, f"user {name} already exists") from None
        return UserCreated(name=created.name, team=created.team, is_admin=created.is_admin,
                           token=token)

    @app.get("/v1/users", response_model=list[UserOut])
    def list_users(user: CurrentUser) -> list[UserOut]:
        return [UserOut(name=u.name, team=u.team, is_admin=u.is_admin) for u in svc.users.all()]

    app.include_router(cost_router)
    app.include_router(report_router)
    return app


def _default_name(command: list[str]) -> str:
    base = command[0].rsplit("/", 1)[-1]
    if base.startswith("python") and len(command) > 1:
        base = command[1].rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).strip("-.")
    return (cleaned or "job")[:64]
