"""EASY backfill's reservation: when and where the first blocked job will start.

Running jobs are assumed to end at their time limit (the default limit where they have none).
Walking those ends in time order, the first moment the blocked job fits is its reserved start
(the "shadow time"); the GPUs free then beyond what it needs are the "extra" GPUs. A later job
may start now ahead of it if it ends by the shadow time, or if it uses extra GPUs only, so the
reserved start never moves later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clusterctl.scheduler.placement import best_fit
from clusterctl.scheduler.records import QueuedJob

Release = tuple[float, tuple[str, ...], int]
"""(expected end, nodes, GPUs per node) of a running job."""


@dataclass
class Reservation:
    job_id: int
    start: float
    node_ids: tuple[str, ...]
    extra: dict[str, int]
    """GPUs per node that are free at ``start`` and not needed by the reservation."""


def reserve(
    job: QueuedJob, free: Mapping[str, int], releases: Iterable[Release], now: float
) -> Reservation | None:
    """The earliest start of ``job`` as running jobs end; None if it never fits (the nodes it
    needs are drained or gone). ``free`` may be negative on a node whose coming GPUs are already
    promised to another job. ``releases`` in any order (sorted here: cheap when they come
    sorted, as from a pass)."""
    future = dict(free)
    fitting = sum(1 for f in future.values() if f >= job.gpus)
    at = now
    if fitting < job.nodes:
        for end, node_ids, gpus in sorted(releases):
            for node in node_ids:
                if node in future:
                    before = future[node]
                    future[node] = before + gpus
                    if before < job.gpus <= future[node]:
                        fitting += 1
            if fitting >= job.nodes:
                at = max(end, now)
                break
        else:
            return None
    chosen = best_fit(future, job.gpus, job.nodes)
    if chosen is None:  # pragma: no cover - fitting counted exactly these nodes
        return None
    for node in chosen:
        future[node] -= job.gpus
    extra = {node: count for node, count in future.items() if count > 0}
    return Reservation(job.id, at, chosen, extra)
