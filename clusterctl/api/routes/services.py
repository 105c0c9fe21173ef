"""Model services (``clusterctl serve``): start one, list them, show one, scale, stop. Their
requests go through ``service_proxy.py``."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.controller.interface import ControllerApi
from clusterctl.parsing import BadInput
from clusterctl.serving.pricing import request_cost
from clusterctl.serving.request import ServiceRequest, parse_replicas, parse_service_name
from clusterctl.states import ACTIVE, LIVE, JobState
from clusterctl.store import Service, User

router = APIRouter()


class Replicas(BaseModel):
    running: int
    """Running replicas (started; ready or not)."""
    ready: int
    """Those whose health path answers 200: the ones the endpoint sends requests to."""
    pending: int
    min: int
    max: int
    desired: int


class ServiceOut(BaseModel):
    name: str
    user: str
    team: str
    endpoint: str
    """The path requests go to, on the controller's address."""
    replicas: Replicas
    replica_jobs: list[int]
    requests: int
    errors: int
    tokens: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    """Over the recent requests (the controller's memory; the counts above are kept)."""
    gpu_hours: float
    """GPU time its replicas held, every replica it ever had."""
    energy_kwh: float
    cost: float
    """What that GPU time cost: capacity and energy, as for any job."""
    currency: str
    cost_per_1k_requests: float | None
    cost_per_1m_tokens: float | None
    price_per_1k: float | None
    api_equivalent: float | None
    saving: float | None
    replica_hours: float
    """Ready replicas' time."""
    idle_share: float | None
    """Of which, the share with no request coming or in flight."""
    waste_cost: float
    created_at: datetime
    stopped_at: datetime | None
    request: dict[str, Any]


class ScaleIn(BaseModel):
    replicas: str
    """``MIN:MAX``, as ``serve scale`` takes it."""


def may_use(user: User, service: Service) -> bool:
    """Who may call a service, scale or stop it: its team, and admins."""
    return user.is_admin or service.team in user.teams


def service_out(ctl: ControllerApi, service: Service) -> ServiceOut:
    assert service.id is not None
    every = ctl.services.replicas(service.id, live_only=False)
    live = [j for j in every if j.state in LIVE]
    ready = {e.job_id for e in ctl.serving.ready(service.name)}
    counted = ctl.services.traffic(service.id)
    spent = ctl.jobs_cost([j.id for j in every if j.id is not None],
                          int(time.time() * 1000))
    cost = spent.total_cost if spent is not None else 0.0
    price = service.request.get("price_per_1k")
    p50, p99 = ctl.serving.latency(service.name)
    priced = request_cost(cost, counted.requests, counted.tokens, price, counted.replica_s,
                          counted.idle_replica_s)
    return ServiceOut(
        name=service.name, user=service.user, team=service.team,
        endpoint=f"/services/{service.name}/",
        replicas=Replicas(
            running=sum(j.state in ACTIVE for j in live),
            ready=sum(j.id in ready for j in live),
            pending=sum(j.state == JobState.PENDING for j in live),
            min=service.replicas_min, max=service.replicas_max, desired=service.desired),
        replica_jobs=[j.id for j in live if j.id is not None],
        requests=counted.requests, errors=counted.errors, tokens=counted.tokens,
        latency_p50_ms=p50, latency_p99_ms=p99,
        gpu_hours=spent.gpu_hours if spent else 0.0,
        energy_kwh=spent.energy_kwh if spent else 0.0, cost=round(cost, 4),
        currency=spent.currency if spent else "USD", price_per_1k=price,
        replica_hours=counted.replica_s / 3600, **asdict(priced),
        created_at=service.created_at, stopped_at=service.stopped_at,
        request=service.request)


def running(ctl: ControllerApi, name: str) -> Service:
    service = ctl.services.running(parse_service_name(name))
    if service is None:
        raise HTTPException(404, f"no running service named {name}")
    return service


def _owned(ctl: ControllerApi, name: str, user: User) -> Service:
    service = running(ctl, name)
    if not may_use(user, service):
        raise HTTPException(403, f"service {name} belongs to team {service.team}")
    return service


@router.post("/v1/services", response_model=ServiceOut, status_code=201)
def create(body: ServiceRequest, user: CurrentUser, ctl: ControllerDep) -> ServiceOut:
    """A new service: its replicas are started as jobs of its team, by the controller."""
    team = ctl.submissions.check(user, body.replica)
    service = ctl.services.create(body.name, user.name, team, body.wire(), body.replicas_min,
                                  body.replicas_max)
    ctl.audit.record(user.name, "service.create", body.name, f"team {team}")
    ctl.serving.wake.set()
    return service_out(ctl, service)


@router.get("/v1/services", response_model=list[ServiceOut])
def listing(user: CurrentUser, ctl: ControllerDep, all: bool = False) -> list[ServiceOut]:
    return [service_out(ctl, s) for s in ctl.services.listing(include_stopped=all)]


@router.get("/v1/services/{name}", response_model=ServiceOut)
def show(name: str, user: CurrentUser, ctl: ControllerDep) -> ServiceOut:
    return service_out(ctl, running(ctl, name))


@router.post("/v1/services/{name}/scale", response_model=ServiceOut)
def scale(name: str, body: ScaleIn, user: CurrentUser, ctl: ControllerDep) -> ServiceOut:
    service = _owned(ctl, name, user)
    low, high = parse_replicas(body.replicas)
    ctl.services.scale(service.id or 0, low, high)
    ctl.serving.wake.set()
    return service_out(ctl, running(ctl, name))


@router.post("/v1/services/{name}/stop", response_model=ServiceOut)
def stop(name: str, user: CurrentUser, ctl: ControllerDep) -> ServiceOut:
    """Stopped: its replicas are cancelled, its name is free again."""
    service = _owned(ctl, name, user)
    if not ctl.services.stop(service.id or 0):
        raise BadInput("NAME", f"service {name} was stopped meanwhile")
    ctl.audit.record(user.name, "service.stop", name, "")
    ctl.serving.wake.set()
    stopped = ctl.services.get(service.id or 0)
    assert stopped is not None
    return service_out(ctl, stopped)


class KeyOut(BaseModel):
    service: str
    key: str
    """Shown once: only its hash is kept."""


@router.post("/v1/services/{name}/keys", response_model=KeyOut, status_code=201)
def new_key(name: str, user: CurrentUser, ctl: ControllerDep) -> KeyOut:
    """A key for applications: it opens this service's endpoint and nothing else."""
    service = _owned(ctl, name, user)
    key = ctl.services.new_key(service.id or 0, user.name)
    ctl.audit.record(user.name, "service.key", name, "")
    return KeyOut(service=name, key=key)


LOG_TAIL = 64 * 1024
"""The end of each replica's output a service's logs give (its job's log has the whole)."""


class ReplicaLog(BaseModel):
    job: int
    state: str
    log: str
    """The end of its output (stdout and stderr together), at most ``LOG_TAIL`` bytes."""


@router.get("/v1/services/{name}/logs", response_model=list[ReplicaLog])
def logs(name: str, user: CurrentUser, ctl: ControllerDep) -> list[ReplicaLog]:
    """The end of each live replica's output, for the service's team and admins."""
    service = _owned(ctl, name, user)
    out = []
    for job in ctl.services.replicas(service.id or 0):
        attempt = max(job.attempt, 1)
        size = ctl.logs.size(job.id or 0, attempt, 0)
        data = ctl.logs.read(job.id or 0, attempt, 0, max(0, size - LOG_TAIL), LOG_TAIL)
        out.append(ReplicaLog(job=job.id or 0, state=job.state,
                              log=data.decode("utf-8", "replace")))
    return out
