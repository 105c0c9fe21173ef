"""Which pending jobs start now, and on which nodes: a pure function of the queue and free GPUs.

This is the simple policy of the job-lifecycle milestone: highest priority first, then submit
order, strictly (a job that does not fit blocks those behind it, so a large job is never starved
by a stream of small ones). Each job goes on the node(s) with the fewest free GPUs that still fit
it (best fit), which keeps whole nodes free for large jobs. The live scheduler and the trace
simulator call the same function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class QueuedJob:
    id: int
    priority: int
    submitted_at: float
    gpus: int
    """GPUs per node."""
    nodes: int


@dataclass(frozen=True)
class NodeCapacity:
    id: str
    total_gpus: int
    free_gpus: int
    schedulable: bool = True
    """False for a node that is drained, dead or has no GPUs."""


@dataclass(frozen=True)
class Placement:
    job_id: int
    node_ids: tuple[str, ...]
    """One node per rank; rank 0 is first."""


def queue_order(jobs: Iterable[QueuedJob]) -> list[QueuedJob]:
    return sorted(jobs, key=lambda j: (-j.priority, j.submitted_at, j.id))


def fits_ever(gpus: int, nodes: int, capacity: Sequence[NodeCapacity]) -> str | None:
    """Why a request can never run on this cluster (None if it can), for refusal at submit."""
    usable = [n for n in capacity if n.total_gpus > 0]
    if not usable:
        return None  # the cluster has not reported yet; do not refuse what may fit later
    largest = max(n.total_gpus for n in usable)
    if gpus > largest:
        return f"{gpus} GPUs per node is more than any node has (the largest has {largest})"
    big_enough = sum(1 for n in usable if n.total_gpus >= gpus)
    if nodes > big_enough:
        return (
            f"{nodes} nodes with {gpus} GPUs each is more than the cluster has "
            f"({big_enough} such nodes)"
        )
    return None


def place(job: QueuedJob, free: dict[str, int]) -> tuple[str, ...] | None:
    """Best fit: the ``job.nodes`` nodes with the fewest free GPUs that still hold ``job.gpus``."""
    candidates = sorted(
        (count, node_id) for node_id, count in free.items() if count >= job.gpus
    )
    if len(candidates) < job.nodes:
        return None
    return tuple(node_id for _, node_id in candidates[: job.nodes])


def schedule(pending: Iterable[QueuedJob], nodes: Sequence[NodeCapacity]) -> list[Placement]:
    """Start jobs in queue order until the first that does not fit."""
    free = {n.id: n.free_gpus for n in nodes if n.schedulable and n.free_gpus > 0}
    placements: list[Placement] = []
    for job in queue_order(pending):
        chosen = place(job, free)
        if chosen is None:
            break
        for node_id in chosen:
            free[node_id] -= job.gpus
        placements.append(Placement(job.id, chosen))
    return placements
