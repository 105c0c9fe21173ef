"""Reclaiming a team's quota: a job within its team's quota that does not fit the free GPUs
takes GPUs that other teams borrow, by preempting them (``preemption.py`` picks the victims),
unless that would start the job next in line later."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from clusterctl.scheduler import preemption
from clusterctl.scheduler.fitting import groups
from clusterctl.scheduler.pass_state import NodeSet, PassState, Shape
from clusterctl.scheduler.records import (
    Placement,
    Preemption,
    QueuedJob,
    RunningJob,
    Wait,
    WaitReason,
)
from clusterctl.scheduler.reservation import Reservation
from clusterctl.scheduler.reserving import future_free, reserve_for


def try_reclaim(p: PassState, job: QueuedJob) -> bool:
    """Promise ``job`` GPUs freed by preempting borrowers; False if no plan works."""
    freeing = unpromised_freeing(p)
    if not freeing and not any(v > 0 for v in p.over_quota.values()):
        return False
    cfg = p.config
    if p.candidates is None:
        p.candidates = preemption.by_node(p.running, p.over_quota, cfg.starve_after_s,
                                          p.pool_of, p.now - cfg.preempt_min_run_s)
    state = (p.free.version, len(p.decision.preemptions), len(p.decision.waiting))
    if p.no_plan[0] != state:
        p.no_plan = (state, set())
    found = find(p, job, freeing, p.candidates, p.over_quota, p.pool_of, p.no_plan[1])
    if found is None:
        _recheck(p, job)
        return False
    why = f"preempted to reclaim team {job.team}'s quota for job {job.id}"
    promise(p, job, found, lambda _: why,
            f"reclaiming {sum(v.total_gpus for v in found.victims)} borrowed GPUs")
    return True


def unpromised_freeing(p: PassState) -> dict[str, int]:
    """GPUs per node that jobs being preempted give back and no job was promised yet."""
    return {n: c - p.promised_freeing[n] for n, c in p.freeing.items()
            if c > p.promised_freeing[n]}


def find(p: PassState, job: QueuedJob, freeing: Mapping[str, int],
         candidates: Mapping[str, Sequence[RunningJob]], over_quota: Mapping[Any, float],
         pools: Mapping[int, Hashable] | None, no_plan: set[Shape]) -> preemption.Plan | None:
    """A plan (``preemption.plan``) on a node group ``job`` accepts (only GPUs of a model it
    accepts are taken) that does not start the reserved job later, or None; the shapes that
    found none go into ``no_plan``, and are not tried again."""
    for among in groups(p, job):
        shape = (job.gpus, job.nodes, among)
        if shape in no_plan:
            continue  # the same shape found no plan, and nothing has changed since
        free = p.free.free if among is None else {
            n: c for n, c in p.free.free.items() if n in among}
        found = preemption.plan(job, free, freeing, candidates, over_quota, p.victims, pools)
        res = p.reserved.get(among) if p.reserved else None
        kept = _reservation_with(p, job, found, res, among) if found and res else None
        if found is None or (res is not None and kept is None):
            no_plan.add(shape)
            continue
        if kept is not None:  # what the reserved job needs is the same or sooner: keep it so
            p.reserved[among] = kept
            if p.reservation is res:
                p.reservation = kept
                p.decision.reserved = (kept.job_id, kept.start)
        return found
    return None


def _recheck(p: PassState, job: QueuedJob) -> None:
    """No plan now: a pass when the first borrower too young to preempt grows old enough."""
    cfg = p.config
    if cfg.preempt_min_run_s <= 0:
        return
    if p.grown_at is None:  # once a pass: the running jobs do not change within it
        p.grown_at = (preemption.first_grown(
            p.running, p.over_quota, cfg.starve_after_s, p.pool_of,
            p.now - cfg.preempt_min_run_s, cfg.preempt_min_run_s),)
    if p.grown_at[0] is not None:
        p.recheck(p.grown_at[0])
        p.reclaim_later.add(job.id)


def promise(p: PassState, job: QueuedJob, found: preemption.Plan,
            why: Callable[[RunningJob], str], detail: str, demotion: bool = False) -> None:
    """The GPUs of ``found``'s nodes go to ``job``, its victims are preempted (``why``: each
    one's reason) and it waits on them (``detail``)."""
    for node in found.node_ids:  # promise the GPUs on these nodes to this job
        from_free = min(p.free.free[node], job.gpus)
        p.free.take(node, from_free)
        p.promised_freeing[node] += job.gpus - from_free
    for victim in found.victims:
        p.victims.add(victim.id)
        p.over_quota[p.pool_of[victim.id]] -= victim.total_gpus
        for node in victim.node_ids:
            if node in p.free.free:
                p.freeing[node] += victim.gpus
        p.decision.preemptions.append(Preemption(victim.id, why(victim), job.id, demotion))
    p.decision.promised.append(Placement(job.id, found.node_ids))
    p.team_used[job.team] += job.total_gpus  # its quota room is spoken for
    p.pool_used[p.pool(job.team, found.node_ids)] += job.total_gpus
    if not found.victims:
        detail = "GPUs being freed by preemption"
    p.decision.waiting[job.id] = Wait(WaitReason.PREEMPTING, detail,
                                      p.now + p.config.preempt_grace_s)


def _reservation_with(p: PassState, job: QueuedJob, found: preemption.Plan, res: Reservation,
                      among: NodeSet) -> Reservation | None:
    """The reservation ``res`` of the nodes ``among`` again with ``job`` holding GPUs on
    ``found``'s nodes and its victims exiting, or None if that would start the reserved
    job later: a job further down the order may reclaim its quota, but not at the expense
    of the one ahead of it."""
    future = future_free(p)
    for node in found.node_ids:
        future[node] -= job.gpus
    victims = p.victims | {v.id for v in found.victims}
    again = reserve_for(p, p.queue.get(res.job_id), future, victims, [among])
    return again[0] if again is not None and again[0].start <= res.start else None
