"""Why a job waits, in words ``clusterctl jobs`` shows: short of GPUs of its kind (and how many
sit on drained nodes), kept by its team's quota, or behind the job next in line. The simulator
asks for none of it (``explain=False``)."""

from __future__ import annotations

from dataclasses import replace

from clusterctl.gpu_types import GIB, matches
from clusterctl.parsing import format_duration
from clusterctl.scheduler.fitting import fits_free, groups
from clusterctl.scheduler.ordering import TIER1
from clusterctl.scheduler.pass_state import PassState
from clusterctl.scheduler.pending import LONGEST
from clusterctl.scheduler.records import QueuedJob, Wait, WaitReason

R = WaitReason


def blocked(p: PassState, job: QueuedJob, tier: int) -> Wait:
    """The wait of a job that neither started nor got a reservation."""
    delayed = next((p.reserved[among] for among in groups(p, job)
                    if among in p.reserved
                    and fits_free(p, job.gpus, job.nodes, among) is not None), None)
    if delayed is not None:
        return Wait(R.PRIORITY, f"would delay job {delayed.job_id}, next in line")
    if p.config.fair_share and tier == TIER1:
        return quota_wait(p, job)
    return Wait(R.RESOURCES, short_of(p, job))


def reclaim_later(p: PassState, job: QueuedJob) -> None:
    """A job of its team's quota whose claim waits on borrowers' minimum run time: when."""
    wait, at = p.decision.waiting.get(job.id), p.grown_at[0] if p.grown_at else None
    if wait is None or at is None:
        return
    run = format_duration(p.config.preempt_min_run_s)
    start = at + p.config.preempt_grace_s
    p.decision.waiting[job.id] = replace(
        wait, detail=f"{wait.detail}; borrowed GPUs can be reclaimed from jobs that have run "
                     f"{run}, the first in {format_duration(at - p.now)}",
        estimated_start=start if wait.estimated_start is None else min(
            wait.estimated_start, start))


def quota_wait(p: PassState, job: QueuedJob) -> Wait:
    kinds = p.typed.get(job.team)
    if kinds:
        held = ", ".join(f"{p.pool_used[(job.team, k)]:g} of {q:g} {k}"
                         for k, q in kinds.items())
        return Wait(R.QUOTA, f"team {job.team} holds {held} of its quota; no idle GPUs "
                             "to borrow")
    quota = p.config.quotas.get(job.team, 0.0)
    return Wait(R.QUOTA, f"team {job.team} holds {p.team_used[job.team]} GPUs of its "
                         f"{quota:g}-GPU quota; no idle GPUs to borrow")


def short_of(p: PassState, job: QueuedJob) -> str:
    shape = f"{job.nodes}x{job.gpus}" if job.nodes > 1 else f"{job.gpus}"
    tried = groups(p, job)
    if tried == [None]:
        return f"needs {shape} GPUs; {p.free.total} free" + drained_note(p, job)
    kind = " or ".join(job.gpu_types) if job.gpu_types else "GPUs of one model"
    if job.gpu_mem is not None:
        kind += f" with {job.gpu_mem / GIB:g} GiB"
    nodes = {n for g in tried if g is not None for n in g}
    free = sum(p.free.free.get(n, 0) for n in nodes)
    return (f"needs {shape} {kind}; {free} of {sum(p.total_of[n] for n in nodes)} "
            "free" + drained_note(p, job))


def drained_note(p: PassState, job: QueuedJob) -> str:
    """``, 8 on drained nodes``: the GPUs of its kind an admin took out of service (a
    wait that said "0 of 0 free" left the user guessing)."""
    gpus = sum(n.total_gpus for n in p.drained
               if not job.gpu_types or (n.gpu_model is not None and any(
                   matches(t, n.gpu_model) for t in job.gpu_types)))
    return f", {gpus} on drained nodes" if gpus else ""


NO_LIMIT = "; it has no time limit, and shorter limits go first (--time-limit)"
"""What a job without a time limit is told while it waits behind others: the limit is what
orders a team's jobs, and one without a limit ranks last among them (without attained
service, ``PolicyConfig.demote_after_gpu_s``)."""


def no_limit(thresholds: tuple[float, ...], attained_gpu_s: float, job_class: int,
             promoted: float | None = None) -> str:
    """What a job without a time limit is told, with attained service: how it ranks now (its
    queue's ``length_class``), and why (it was demoted: it has had more GPU-time than the
    class it started in; or, ``promoted`` by that slowdown, it waited long enough to be
    promoted back)."""
    if not thresholds:
        return NO_LIMIT
    had = attained_gpu_s / 3600
    if promoted is not None:
        return (f"; promoted: it has had {had:.1f} GPU-hours without a time limit, and has "
                f"waited {promoted:g} times as long as it ran, so it ranks as one that has had "
                f"under {thresholds[min(job_class, len(thresholds) - 1)] / 3600:g}")
    if job_class == 0:
        return (f"; it has no time limit, and ranks as a short job until it has had "
                f"{thresholds[0] / 3600:g} GPU-hours")
    if job_class < LONGEST:
        return (f"; demoted: it has had {had:.1f} GPU-hours without a time limit, and ranks "
                f"as a longer job until {thresholds[job_class] / 3600:g}")
    return (f"; demoted: it has had {had:.1f} GPU-hours without a time limit, and ranks as "
            "the longest jobs do (--time-limit)")


def explain_rest(p: PassState) -> None:
    """Reasons for the jobs the pass did not reach: one shared value per team, since the
    live scheduler explains 10,000 jobs a pass."""
    head = p.reservation.job_id if p.reservation is not None else None
    ahead = "jobs ahead of it come first" + (f" (job {head} is next)" if head is not None else "")
    thresholds = p.config.demote_after_gpu_s
    behind = {True: Wait(R.PRIORITY, ahead),
              False: Wait(R.PRIORITY, ahead + no_limit(thresholds, 0.0, 0))}
    by_team: dict[str, Wait] = {}
    started = {s.job_id for s in p.decision.starts}
    waiting = p.decision.waiting
    fair, quotas, used = p.config.fair_share, p.config.quotas, p.team_used
    limits = p.config.user_gpu_limit is not None
    classes, promoted = p.queue.length_classes, p.queue.promoted
    slowdown = p.queue.promote_after_slowdown
    for job in p.queue:
        up = slowdown if job.id in promoted else None
        demoted = bool(thresholds) and job.time_limit_s is None and (
            classes[job.id] > 0 or up is not None)
        if job.id in waiting or job.id in started:
            if job.id in waiting and demoted:  # whatever it waits on, say so
                waiting[job.id] = replace(waiting[job.id], detail=waiting[job.id].detail
                                          + no_limit(thresholds, job.attained_gpu_s,
                                                     classes[job.id], up))
            continue
        held = p.held_back(job) if limits or job.array_id is not None else None
        if held is not None:
            waiting[job.id] = held
        elif fair and used[job.team] + job.gpus * job.nodes > quotas.get(job.team, 0.0):
            if job.team not in by_team:
                by_team[job.team] = quota_wait(p, job)
            waiting[job.id] = by_team[job.team]
        elif not demoted:
            waiting[job.id] = behind[job.time_limit_s is not None]
        else:  # a few jobs: each says what it had
            waiting[job.id] = Wait(R.PRIORITY, ahead + no_limit(thresholds, job.attained_gpu_s,
                                                                 classes[job.id], up))
