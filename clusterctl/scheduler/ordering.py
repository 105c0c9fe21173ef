"""The order a pass looks at pending jobs in, each with its tier (``policy``'s docstring has
the rules): jobs that already reclaimed GPUs, the oldest starving job, each team's jobs within
its quota, then the jobs that would borrow. Within a tier: priority, then the multifactor score
(fair share, age, shortness), then submit time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from clusterctl.scheduler import fairshare
from clusterctl.scheduler.pass_state import PassState
from clusterctl.scheduler.pending import LENGTH_CLASSES_S
from clusterctl.scheduler.quotas import within_quota
from clusterctl.scheduler.records import QueuedJob

STARVED, TIER0, TIER1 = 0, 1, 2
"""The tiers: the starving job, jobs within their team's quota, jobs that would borrow."""

SortKey = tuple[int, float, float, int]


def ordered(p: PassState) -> Iterator[tuple[QueuedJob, int]]:
    """The pending jobs in the order the pass takes them, each with its tier. Sets
    ``p.within_type`` (tier-0 jobs of typed teams) before the first job comes out."""
    if not p.config.fair_share:
        for job in p.queue.merged():
            yield job, TIER1
        return
    key = p.key = _sort_key(p)
    tier0 = within_quota(p.queue, p.config.quotas, p.pool_used, key,
                         lambda job: p.held_back(job) is not None, p.typed, p.quota_kinds)
    p.within_type = {i: kind for i, kind in tier0.items() if kind is not None}
    done: set[int] = set()
    # GPUs were preempted for these (its quota reclaimed, or its team's jobs demoted):
    # they take them before anyone else
    first = [j for j in map(p.queue.get, tier0) if j.reclaiming]
    first += [j for j in map(p.queue.get, p.queue.demoting) if not j.reclaiming]
    for job in sorted(first, key=key):
        done.add(job.id)
        yield job, TIER0 if job.id in tier0 else TIER1
    starve_after = p.config.starve_after_s
    if starve_after is not None:  # the oldest starving job only: one at a time
        for job in p.queue.submitted_before(p.now - starve_after):
            if job.id in done:
                break  # it reclaimed GPUs, so it went first already: never twice
            if p.held_back(job) is None:
                done.add(job.id)
                yield job, STARVED
                break
    for job in sorted((p.queue.get(i) for i in tier0 if i not in done), key=key):
        yield job, TIER0
    for job in p.queue.merged(key):
        if job.id not in tier0 and job.id not in done:
            yield job, TIER1


def _sort_key(p: PassState) -> Callable[[QueuedJob], SortKey]:
    """The key within a tier, remembered per job for the pass."""
    cfg, now = p.config, p.now
    team_f = fairshare.team_factors(p.usage.team, cfg.quotas)
    per_team = p.usage.users_per_team
    user_f = fairshare.user_factors(p.usage.user, p.queue.users(),
                                    None if per_team is None else (p.usage.team, per_team))
    classes = len(LENGTH_CLASSES_S)
    w_team, w_user, w_age, w_short = (cfg.weight_team, cfg.weight_user, cfg.weight_age,
                                      cfg.weight_short)
    max_age = cfg.max_age_s
    shares: dict[tuple[str, str], float] = {}
    shorts: dict[int, float] = {}
    class_of = p.queue.length_classes
    keys: dict[int, SortKey] = {}

    def key(job: QueuedJob) -> SortKey:
        # Called for every job a pass looks at, some twice (tier 0, then the queue): the
        # per-user and per-limit terms are computed once per pass, and added in the same
        # order as the formula.
        found = keys.get(job.id)
        if found is not None:
            return found
        who = (job.team, job.user)
        share = shares.get(who)
        if share is None:
            share = shares[who] = (w_team * team_f.get(job.team, 0.0)
                                   + w_user * user_f.get(who, 0.0))
        c = class_of[job.id]
        short = shorts.get(c)
        if short is None:
            short = shorts[c] = w_short * (1.0 - c / classes)
        age = (now - job.submitted_at) / max_age
        if age > 1.0:
            age = 1.0
        found = keys[job.id] = (-job.priority, -(share + w_age * age + short),
                                job.submitted_at, job.id)
        return found

    return key
