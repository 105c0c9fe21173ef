"""Attained service (Tiresias' discretized least-attained-service, #36): jobs without a time
limit are classed by the GPU-time they have had (``pending.length_class``), and a team's job
that does not fit takes the GPUs of the team's own running jobs without a limit that have had
more, by preemption: they are *demoted*, and queue again with what they had.

Only a team's own jobs are demoted for it (between teams, quotas and fair share decide), only
jobs without a limit (one with a limit keeps its limit's class), only past the minimum run
time, the most served first, and once a team per pass (its best-ranked job that does not
fit). The victims' GPUs are promised to the job as a reclaiming job's are.
"""

from __future__ import annotations

import math

from clusterctl.scheduler.pass_state import PassState
from clusterctl.scheduler.pending import LONGEST, PendingQueue
from clusterctl.scheduler.reclaiming import find, promise, unpromised_freeing
from clusterctl.scheduler.records import PolicyConfig, QueuedJob, RunningJob
from clusterctl.scheduler.running import RunningSet

RESUMED_RUN_S = 4 * 3600.0
"""A resumed job is not demoted again before its attempt has run as long as its earlier ones
together, up to this. Without it, a long job resumed after a demotion was demoted anew each
time, before its next checkpoint (a synthetic month of long jobs, 8 x 8 without limits: p99
561.8k s against 325.4k with attained service off, 5.75 % of GPU-hours lost); never again
after its first demotion cost the short jobs of Philly (24 x 8: 21.7k s against 15.8k). Four
hours was the best of 1, 2, 4, 8 hours and no cap on both (docs/scheduling.md)."""


def _need(job_class: int, thresholds: tuple[float, ...]) -> float | None:
    """The GPU-seconds past which a job without a limit ranks below a job of ``job_class``
    (None: none does, ``job_class`` is the longest)."""
    if job_class >= LONGEST or not thresholds:
        return None
    return thresholds[min(job_class, len(thresholds) - 1)]


def _ready_at(r: RunningJob, need: float, min_run_s: float) -> float:
    """When ``r`` may be demoted for a job whose class asks ``need``: once it has had that
    much, and its attempt has run the minimum run time and as long as its earlier attempts
    together (on as many GPUs; ``RESUMED_RUN_S`` at most)."""
    crossed = r.started_at + max(0.0, need - r.attained_gpu_s) / r.total_gpus
    earlier = min(RESUMED_RUN_S, r.attained_gpu_s / r.total_gpus)
    return max(crossed, r.started_at + max(min_run_s, earlier))


def try_demote(p: PassState, job: QueuedJob) -> bool:
    """Promise ``job`` the GPUs of its team's running jobs that have had more than its class
    allows; False if there are none it could use (with a pass asked for when the first
    such job becomes one)."""
    cfg = p.config
    own = p.running.unlimited.get(job.team, {})
    if not cfg.demote_after_gpu_s or not cfg.preempt or job.team in p.demote_tried or not (
            own or job.demoting) or not _may_demote(p, job):
        return False
    p.demote_tried.add(job.team)
    ready: list[tuple[float, RunningJob]] = []
    later = math.inf
    for at, r in _by_ready(p.running, job.team, p.queue.own_class(job), cfg):
        if at > p.now:
            later = at
            break
        if r.id not in p.victims:
            ready.append((r.attained(p.now), r))
    freeing = unpromised_freeing(p)
    if not ready and not freeing:
        _later(p, later)
        return False
    candidates: dict[str, list[RunningJob]] = {}
    for _, r in sorted(ready, key=lambda v: (-v[0], v[1].id)):  # the most served first
        for node in dict.fromkeys(r.node_ids):
            candidates.setdefault(node, []).append(r)
    found = find(p, job, freeing, candidates, {job.team: math.inf}, None, set())
    if found is None:
        _later(p, later)
        return False
    had = {r.id: h for h, r in ready}
    promise(p, job, found,
            lambda victim: f"demoted: it has had {had[victim.id] / 3600:.1f} GPU-hours "
                           f"without a time limit; job {job.id} of team {job.team} has had "
                           "less",
            f"demoting {sum(v.total_gpus for v in found.victims)} GPUs of team {job.team}'s "
            "longer-served jobs", demotion=True)
    return True


def demote_rest(p: PassState) -> None:
    """The pass stops early (nothing is free, and what follows only borrows): the teams not
    reached yet whose jobs without a limit run still get their best-ranked job's demotion."""
    cfg = p.config
    if not cfg.demote_after_gpu_s or not cfg.preempt or p.key is None:
        return
    started = {s.job_id for s in p.decision.starts}
    for team in sorted(p.running.unlimited.keys() - p.demote_tried):
        best = next((j for j in p.queue.team_order(team, p.key)
                     if j.id not in started and j.id not in p.decision.waiting
                     and _may_demote(p, j)), None)
        if best is not None and best.preemptible and p.held_back(best) is None:
            try_demote(p, best)


def _may_demote(p: PassState, job: QueuedJob) -> bool:
    """False for a promoted job whose own class (before the promotion) is too long to demote
    anyone: it ranks high, and would otherwise use up its team's turn each pass."""
    return job.id not in p.queue.promoted or _need(
        p.queue.own_class(job), p.config.demote_after_gpu_s) is not None


def _later(p: PassState, at: float) -> None:
    if at < math.inf:
        p.recheck(at)


def demotion_at(queue: PendingQueue, running: RunningSet, now: float,
                config: PolicyConfig) -> float | None:
    """When a pass could first demote a running job (now or later; None: not before the
    queue or the running jobs change): a necessary condition, asked by a pass that would
    otherwise be skipped as idle."""
    if not config.demote_after_gpu_s or not config.preempt:
        return None
    first = math.inf
    for team in running.unlimited:
        order = _by_ready(running, team, queue.best_class(team), config)
        if order:
            first = min(first, order[0][0])
            if first <= now:
                return first
    return first if first < math.inf else None


def _by_ready(running: RunningSet, team: str, job_class: int, config: PolicyConfig
              ) -> list[tuple[float, RunningJob]]:
    """``team``'s running jobs without a limit by when each may be demoted for a job of
    ``job_class`` (kept while they stay the same)."""
    need = _need(job_class, config.demote_after_gpu_s)
    if need is None:
        return []

    def build() -> list[tuple[float, RunningJob]]:
        own = running.unlimited.get(team, {}).values()
        return sorted(((_ready_at(r, need, config.preempt_min_run_s), r) for r in own),
                      key=lambda v: (v[0], v[1].id))

    return running.unlimited_memo(team, (need, config.preempt_min_run_s), build)
