"""One scheduling pass: which pending jobs start where, which running jobs are preempted, and why
the others wait. A pure function of (pending jobs, running jobs, nodes, recent usage, now), so
the live scheduler and the trace simulator run the same code.

The order (with ``fair_share``):

0. jobs for which GPUs were already preempted (borrowed ones reclaimed, or their team's jobs
   demoted): they take them;
1. with ``starve_after_s`` set (the ``guarded`` policy; off by default), the oldest job pending
   longer than that: it goes first and so gets the reservation; when it starts, the next oldest
   follows. In a long overload that made the queue first come, first served (``records``);
2. tier 0, each team's jobs that fit in its unused quota (taken in the order below): the
   guaranteed share. Such a job that does not fit the free GPUs reclaims borrowed
   ones by preemption. A team whose quota is per GPU type (``quotas.py``) has each job of
   tier 0 run within one of its types: first on GPUs of that type, reclaimed if need be, and
   only then, if it may borrow, on idle GPUs of another type;
3. tier 1, jobs that would borrow idle GPUs beyond their team's quota.

Within a tier: priority (higher first), then a Slurm-like multifactor score (the team's and the
user's fair-share factors from decayed recent usage, an age factor and a short-job factor from
the time limit, which weighs most: shortest limit first; for a job without a limit, from the
GPU-time it has had: attained service), then submit time.

The first job that does not fit gets a reservation (EASY backfill): later jobs start only if they
fit the free GPUs and either end, by their time limit, before its reserved start or use GPUs it
will not need. Placement is best fit on the fewest nodes, all or nothing (``placement.py``).

A team's job that fits nowhere may demote the team's own running jobs without a limit that
have had more GPU-time than its class (``demoting``).

The parts, each a module: ``ordering`` (the tiers and the order within them), ``fitting``
(starting a job now), ``reclaiming`` (taking back a team's quota), ``demoting`` (attained
service), ``reserving`` (backfill reservations), ``explaining`` (why the others wait), over
``pass_state`` (what the pass keeps).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from clusterctl.scheduler import explaining, preemption
from clusterctl.scheduler.demoting import demote_rest, demotion_at, try_demote
from clusterctl.scheduler.fitting import try_start
from clusterctl.scheduler.gpu_groups import Group, accepts
from clusterctl.scheduler.ordering import TIER0, ordered
from clusterctl.scheduler.pass_state import PassState
from clusterctl.scheduler.pending import PendingQueue
from clusterctl.scheduler.reclaiming import try_reclaim
from clusterctl.scheduler.records import (
    Blocking,
    Decision,
    FairShareUsage,
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    Wait,
    WaitReason,
)
from clusterctl.scheduler.reserving import groups_to_reserve, reserve_and_wait
from clusterctl.scheduler.running import RunningSet


def run(p: PassState, explain: bool) -> Decision:
    """The pass: each pending job in order starts, reclaims its quota, takes a reservation
    or waits, until nothing more can start."""
    cfg = p.config
    looked_after = 0
    for job, tier in ordered(p):
        if p.reservation is not None:
            looked_after += 1
            if looked_after > cfg.backfill_depth:
                break
        if p.free.total == 0 and tier != TIER0 and not job.demoting and (
                p.reservation is not None or cfg.blocking is not Blocking.RESERVE):
            demote_rest(p)
            break  # nothing more can start, and nothing after this reclaims
        held = p.held_back(job)
        if held is not None:
            p.decision.waiting[job.id] = held
            continue
        if cfg.fair_share and not job.preemptible and tier != TIER0:
            p.decision.waiting[job.id] = Wait(
                WaitReason.QUOTA, f"--no-preempt: runs only within team {job.team}'s quota")
            continue
        if try_start(p, job):
            continue
        if tier == TIER0 and cfg.preempt and try_reclaim(p, job):
            continue
        if try_demote(p, job):
            continue
        if p.within_type.pop(job.id, None) is not None and job.preemptible \
                and try_start(p, job):
            continue  # its type is full: it borrows idle GPUs of another
        if cfg.blocking is Blocking.STRICT:
            p.decision.waiting[job.id] = Wait(WaitReason.RESOURCES,
                                              explaining.short_of(p, job))
            break
        accepted, open_groups = groups_to_reserve(p, job)
        if open_groups or not accepted:
            reserve_and_wait(p, job, open_groups, explain)
        elif explain:  # the simulator does not ask why, and this is most of a busy pass
            p.decision.waiting[job.id] = explaining.blocked(p, job, tier)
        if explain and job.id in p.reclaim_later:
            explaining.reclaim_later(p, job)
    if explain:
        explaining.explain_rest(p)
    return p.decision


def schedule(
    queue: PendingQueue | Sequence[QueuedJob],
    running: Sequence[RunningJob] | RunningSet,
    nodes: Sequence[NodeCapacity],
    *,
    now: float,
    config: PolicyConfig | None = None,
    usage: FairShareUsage | None = None,
    explain: bool = False,
) -> Decision:
    """One pass. ``nodes`` carry their free GPUs (total less what running jobs hold).
    ``explain`` gives every pending job that does not start a wait reason (the live scheduler
    shows them in ``clusterctl jobs``); without it only some get one (the simulator's case).
    A ``PendingQueue`` passed in has its jobs due for promotion promoted (``promote``)."""
    config = config or PolicyConfig()
    if not isinstance(queue, PendingQueue):
        queue = PendingQueue(queue, config.demote_after_gpu_s, config.promote_after_slowdown)
    elif (queue.demote_after_gpu_s, queue.promote_after_slowdown) != (
            config.demote_after_gpu_s, config.promote_after_slowdown):
        raise ValueError("the queue classes jobs without a limit by other thresholds than the "
                         "config's demote_after_gpu_s and promote_after_slowdown")
    queue.promote(now)
    if not isinstance(running, RunningSet):
        running = RunningSet(running)
    if not explain and _idle(queue, running, nodes, config):
        demote_at = demotion_at(queue, running, now, config)
        if demote_at is None or demote_at > now:
            return Decision(recheck_at=demote_at)
    return run(PassState(queue, running, nodes, now, config, usage or FairShareUsage()), explain)


def _idle(queue: PendingQueue, running: RunningSet, nodes: Sequence[NodeCapacity],
          config: PolicyConfig) -> bool:
    """Nothing can start (no pending job has the free GPUs it asks, of a type it accepts, on
    enough nodes) and nothing can be reclaimed: the common case of a busy cluster, decided
    without the pass."""
    if not queue:
        return True
    open_nodes = [n for n in nodes if n.schedulable and n.free_gpus > 0]
    if open_nodes and _any_may_fit(queue, open_nodes):
        return False
    if not (config.fair_share and config.preempt):
        return True
    if config.type_quotas:
        return False  # quotas per type: who borrows is per type, which the pass works out
    return not preemption.reclaim_possible(queue.teams(), running, config.quotas,
                                           config.starve_after_s)


def _any_may_fit(queue: PendingQueue, open_nodes: list[NodeCapacity]) -> bool:
    """Whether some pending job may start on the nodes with free GPUs: a necessary condition
    only (``job.nodes`` nodes it accepts, each with ``job.gpus`` free; one model for a gang
    and the backfill reservation are the pass's to check). Asked of the queue's distinct
    shapes, not of each job."""
    for gpus, nodes, types, mem in queue.shapes():
        count = 0
        for n in open_nodes:
            if n.free_gpus >= gpus and _node_accepts(n.gpu_model, n.gpu_mem, types, mem):
                count += 1
                if count >= nodes:
                    return True
    return False


@functools.lru_cache(maxsize=4096)
def _node_accepts(model: str | None, gpu_mem: int | None, types: tuple[str, ...],
                  mem: int | None) -> bool:
    return accepts(Group(model, frozenset(), gpu_mem), (types, mem))
