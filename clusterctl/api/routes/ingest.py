"""The agents' samples (``POST /v1/agent/samples``), with a node token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from clusterctl.api.auth import CurrentNode
from clusterctl.api.deps import ControllerDep
from clusterctl.api.guard import decoded_body
from clusterctl.api.schemas import HolderOut, IngestOut, SampleBatch
from clusterctl.controller.interface import ControllerApi
from clusterctl.parsing import BadInput

router = APIRouter()


@router.post("/v1/agent/samples", response_model=IngestOut)
async def ingest(request: Request, node: CurrentNode, ctl: ControllerDep) -> IngestOut:
    """An agent's batch: stored once however often it is sent. The body is validated from the
    value the edge guard decoded (once: batches hold thousands of rows), off the event loop
    like the write."""
    decoded, value = decoded_body(request.scope)
    raw = b"" if decoded else await request.body()
    return await run_in_threadpool(_store_batch, ctl, decoded, value, raw, node)


def _store_batch(ctl: ControllerApi, decoded: bool, value: Any, raw: bytes, node: str
                 ) -> IngestOut:
    try:
        body = (SampleBatch.model_validate(value) if decoded
                else SampleBatch.model_validate_json(raw))
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
    if body.node != node:
        raise HTTPException(403, f"this token ships samples for node {node}, not {body.node}")
    if body.host is not None:
        ctl.memory.note(node, body.host.mem_total_bytes, body.host.mem_available_bytes)
    stored = ctl.ingest(node, body.samples)
    if body.samples and stored.refused == len(body.samples):
        raise BadInput("samples", f"all {stored.refused} are stamped outside the controller's "
                       "clock window (is this node's clock right?)")
    active = {j.id: j for j in ctl.jobs.active()}
    held = [HolderOut(gpu_index=a.gpu_index, job_id=a.job_id, user=active[a.job_id].user)
            for a in ctl.jobs.allocations(open_only=True, node=node) if a.job_id in active]
    return IngestOut(inserted=stored.inserted, duplicates=stored.duplicates,
                     refused=stored.refused, allocations=held)
