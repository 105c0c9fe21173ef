"""Nodes: every GPU with its holder and live reading, and drains (admins only)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from fastapi import APIRouter, HTTPException

from clusterctl import parsing
from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.api.schemas import DrainIn, DrainOut, GpuOut, NodeOut
from clusterctl.controller.interface import ControllerApi
from clusterctl.notifications import node_drained
from clusterctl.parsing import BadInput
from clusterctl.store import User

router = APIRouter()


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


@router.get("/v1/nodes", response_model=list[NodeOut])
def nodes(user: CurrentUser, ctl: ControllerDep) -> list[NodeOut]:
    holders: dict[tuple[str, int], tuple[int, str]] = {}
    active = {j.id: j for j in ctl.jobs.active()}
    for a in ctl.jobs.allocations(open_only=True):
        if a.job_id in active:
            holders[(a.node_id, a.gpu_index)] = (a.job_id, active[a.job_id].user)
    free = ctl.free_gpus(list(active.values()))
    live = {(d.node, d.gpu_index): d for d in ctl.samples.devices()}
    drains = ctl.drains.drained()
    suspects = ctl.suspect_nodes()
    rates = ctl.gpu_hour_costs()
    by_node: dict[str, list[GpuOut]] = defaultdict(list)
    out = []
    for n in ctl.cluster():
        for i in range(n.gpus):
            job_id, owner = holders.get((n.id, i), (None, None))
            d = live.get((n.name, i))
            by_node[n.id].append(GpuOut(index=i, job_id=job_id, user=owner) if d is None
                                 else GpuOut(
                index=i, job_id=job_id, user=owner, uuid=d.gpu_uuid, model=d.model,
                utilization=d.utilization, memory_used_bytes=d.memory_used,
                memory_total_bytes=d.memory_total, power_watts=d.power_w,
                temperature_celsius=d.temperature_c, sampled_at=_ms_time(d.last_ms),
                error=d.error, processes=d.processes,
                stray_processes=(d.processes or 0) if job_id is None else 0))
        drain = drains.get(n.name)
        out.append(NodeOut(id=n.id, name=n.name, address=n.address, gpus=n.gpus,
                           gpu_model=n.gpu_model, free_gpus=free.get(n.id, 0),
                           alive=n.alive, gpu_jobs=by_node[n.id], drained=drain is not None,
                           drain_reason=drain.reason if drain else None,
                           drained_by=drain.by if drain else None,
                           drained_at=drain.at if drain else None,
                           suspect=n.id in suspects, gpu_hour_cost=rates.get(n.name),
                           memory_used=ctl.memory.used(n.name)))
    return out


def _drain_target(ctl: ControllerApi, node: str, user: User) -> str:
    if not user.is_admin:
        raise HTTPException(403, "only an admin can drain or undrain nodes")
    name = parsing.parse_node_name(node)
    known = {n.name for n in ctl.cluster()} | set(ctl.drains.drained())
    if name not in known:
        raise BadInput("NODE", f"no node named {name}; nodes: "
                       + (", ".join(sorted(known)) or "none"))
    return name


def _running_on(ctl: ControllerApi, name: str) -> list[int]:
    ids = {n.id for n in ctl.cluster() if n.name == name}
    return sorted(j.id for j in ctl.jobs.active()
                  if j.id is not None and ids & set(j.placement or []))


@router.post("/v1/nodes/{node}/drain", response_model=DrainOut)
def drain(node: str, body: DrainIn, user: CurrentUser, ctl: ControllerDep) -> DrainOut:
    name = _drain_target(ctl, node, user)
    reason = body.reason.strip()[:200] if body.reason else None
    ctl.drains.drain(name, user.name, reason)
    ctl.audit.record(user.name, "node.drain", name, reason)
    ctl.announce(node_drained(name, reason, user.name))
    ctl.wake()
    return DrainOut(node=name, drained=True, running_jobs=_running_on(ctl, name))


@router.post("/v1/nodes/{node}/undrain", response_model=DrainOut)
def undrain(node: str, user: CurrentUser, ctl: ControllerDep) -> DrainOut:
    name = _drain_target(ctl, node, user)
    ctl.drains.undrain(name)
    ctl.audit.record(user.name, "node.undrain", name)
    ctl.wake()
    return DrainOut(node=name, drained=False, running_jobs=_running_on(ctl, name))
