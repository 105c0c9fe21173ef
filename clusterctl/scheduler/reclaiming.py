"""Reclaiming a team's quota: a job within its team's quota that does not fit the free GPUs
takes GPUs that other teams borrow, by preempting them (``preemption.py`` picks the victims),
unless that would start the job next in line later."""

from __future__ import annotations

from clusterctl.scheduler import preemption
from clusterctl.scheduler.fitting import groups
from clusterctl.scheduler.pass_state import NodeSet, PassState
from clusterctl.scheduler.records import Placement, Preemption, QueuedJob, Wait, WaitReason
from clusterctl.scheduler.reservation import Reservation
from clusterctl.scheduler.reserving import future_free, reserve_for


def try_reclaim(p: PassState, job: QueuedJob) -> bool:
    """Promise ``job`` GPUs freed by preempting borrowers; False if no plan works."""
    freeing = {n: c - p.promised_freeing[n] for n, c in p.freeing.items()
               if c > p.promised_freeing[n]}
    if not freeing and not any(v > 0 for v in p.over_quota.values()):
        return False
    cfg = p.config
    if p.candidates is None:
        p.candidates = preemption.by_node(p.running, p.over_quota, cfg.starve_after_s,
                                          p.pool_of, p.now - cfg.preempt_min_run_s)
    state = (p.free.version, len(p.decision.preemptions), len(p.decision.waiting))
    if p.no_plan[0] != state:
        p.no_plan = (state, set())
    found, kept, res, among = None, None, None, None
    for among in groups(p, job):  # only GPUs of a model the job accepts are reclaimed
        shape = (job.gpus, job.nodes, among)
        if shape in p.no_plan[1]:
            continue  # the same shape found no plan, and nothing has changed since
        free = p.free.free if among is None else {
            n: c for n, c in p.free.free.items() if n in among}
        found = preemption.plan(job, free, freeing, p.candidates, p.over_quota, p.victims,
                                p.pool_of)
        res = p.reserved.get(among) if p.reserved else None
        kept = _reservation_with(p, job, found, res, among) if found and res else None
        if found is None or (res is not None and kept is None):
            p.no_plan[1].add(shape)
            found = None
            continue
        break
    if found is None:
        _recheck(p, job)
        return False
    if kept is not None:  # what the reserved job needs is the same or sooner: keep it so
        p.reserved[among] = kept
        if p.reservation is res:
            p.reservation = kept
            p.decision.reserved = (kept.job_id, kept.start)
    _promise(p, job, found)
    return True


def _recheck(p: PassState, job: QueuedJob) -> None:
    """No plan now: a pass when the first borrower too young to preempt grows old enough."""
    cfg = p.config
    if cfg.preempt_min_run_s <= 0:
        return
    if p.grown_at is None:  # once a pass: the running jobs do not change within it
        p.grown_at = (preemption.first_grown(
            p.running, p.over_quota, cfg.starve_after_s, p.pool_of,
            p.now - cfg.preempt_min_run_s, cfg.preempt_min_run_s),)
    p.decision.recheck_at = p.grown_at[0]
    if p.decision.recheck_at is not None:
        p.reclaim_later.add(job.id)


def _promise(p: PassState, job: QueuedJob, found: preemption.Plan) -> None:
    """The GPUs of ``found``'s nodes go to ``job``, its victims are preempted."""
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
        p.decision.preemptions.append(Preemption(
            victim.id, f"preempted to reclaim team {job.team}'s quota for job {job.id}",
            job.id))
    p.decision.promised.append(Placement(job.id, found.node_ids))
    p.team_used[job.team] += job.total_gpus  # its quota room is spoken for
    p.pool_used[p.pool(job.team, found.node_ids)] += job.total_gpus
    detail = (f"reclaiming {sum(v.total_gpus for v in found.victims)} borrowed GPUs"
              if found.victims else "GPUs being freed by preemption")
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
