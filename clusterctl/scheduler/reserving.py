"""Reservations (EASY backfill, one per group of nodes of a GPU model): when the GPUs a blocked
job needs come back (running jobs by their time limits, jobs being preempted after their grace,
jobs this pass started), the earliest start that gives it, and whether that start rests on time
limits people gave or on a guess."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from clusterctl.scheduler import explaining
from clusterctl.scheduler.fitting import groups
from clusterctl.scheduler.pass_state import NodeSet, PassState
from clusterctl.scheduler.records import Blocking, QueuedJob, Wait, WaitReason
from clusterctl.scheduler.reservation import Release, Reservation, reserve


def groups_to_reserve(p: PassState, job: QueuedJob) -> tuple[list[NodeSet], list[NodeSet]]:
    """(the groups ``job`` accepts, those of them no job holds a reservation on yet)."""
    if p.config.blocking is Blocking.RESERVE and \
            len(p.reserved) < max(1, len(p.fleet.groups)):
        tried = groups(p, job)  # a model is left without a reservation
        return tried, [g for g in tried if g not in p.reserved]
    return [None], []


def reserve_and_wait(p: PassState, job: QueuedJob, open_groups: list[NodeSet],
                     explain: bool) -> None:
    """``job`` gets the reservation of the group where it starts soonest among
    ``open_groups``, and waits for it (with the estimated start where it is known)."""
    found = reserve_for(p, job, future_free(p), among_only=open_groups)
    at = None
    if found is not None:
        res, among = found
        p.reserved[among] = res
        at = res.start
        if p.reservation is None:
            p.reservation = res
            p.decision.reserved = (job.id, at)
    unknown = False
    if explain and at is not None and not estimate_known(p, at):
        at, unknown = None, True
    p.decision.waiting[job.id] = Wait(  # the simulator (no explain) reads no words
        WaitReason.RESOURCES, explaining.short_of(p, job) if explain else "", at, unknown)


def reserve_for(p: PassState, job: QueuedJob, future: dict[str, int],
                victims: AbstractSet[int] | None = None,
                among_only: list[NodeSet] | None = None
                ) -> tuple[Reservation, NodeSet] | None:
    """The reservation of ``job`` and its group: the earliest start over the groups it
    accepts (``among_only``: over these); a shadow time per GPU model."""
    released = releases(p, victims)
    best: tuple[Reservation, NodeSet] | None = None
    for among in groups(p, job) if among_only is None else among_only:
        on = future if among is None else {n: f for n, f in future.items() if n in among}
        found = reserve(job, on, released, p.now)
        if found is not None and (best is None or found.start < best[0].start):
            best = (found, among)
    return best


def estimate_known(p: PassState, at: float) -> bool:
    """Whether a reserved start at ``at`` rests on time limits people gave: one that waits
    for a job without a limit (assumed to run ``default_time_limit_s``) is a guess, and a
    date a day away would mislead more than "unknown"."""
    default = p.config.default_time_limit_s
    for r in p.running:
        if (r.time_limit_s is None and not r.terminating and r.id not in p.victims
                and max(p.now, r.started_at + default) <= at):
            return False
    return all(j.time_limit_s is not None or p.now + default > at for j, _ in p.started)


def future_free(p: PassState) -> dict[str, int]:
    """The free GPUs per node less those promised from GPUs being freed."""
    claimed = p.promised_freeing
    if not claimed:  # the usual pass: nothing promised from GPUs being freed
        return dict(p.free.free)
    return {n: c - claimed.get(n, 0) for n, c in p.free.free.items()}


def releases(p: PassState, victims: AbstractSet[int] | None = None) -> list[Release]:
    """When the GPUs of running jobs (and of those this pass started) come back, in time
    order; the same list until the pass starts or preempts another job."""
    if victims is None:
        state = (len(p.victims), len(p.started))
        if p.releases_cache[0] != state:
            p.releases_cache = (state, sorted(_releases_with(p, p.victims)))
        return p.releases_cache[1]
    return sorted(_releases_with(p, victims))


def _releases_with(p: PassState, victims: AbstractSet[int]) -> list[Release]:
    now, default = p.now, p.config.default_time_limit_s
    exiting = now + p.config.preempt_grace_s
    out: list[Release] = [
        (exiting if r.terminating or r.id in victims
         else max(now, r.started_at + (r.time_limit_s or default)), r.node_ids, r.gpus)
        for r in p.running
    ]
    out.extend((now + p.limit(j), nodes, j.gpus) for j, nodes in p.started)
    return out
