"""The replay: an event loop in simulated time that calls the live policy after every change.

Events at one instant (jobs ending, preempted jobs exiting, arrivals) are applied together, then
one pass decides. A preempted job keeps the work it did (it checkpoints in its grace period, as
``CLUSTERCTL_PREEMPT_GRACE`` invites it to) and goes back to the queue with its original submit
time; it holds its GPUs until the grace period ends. A job runs ``min(duration, time limit)``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from clusterctl.scheduler import fairshare
from clusterctl.scheduler.pending import PendingQueue, tally
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.running import RunningSet
from clusterctl.scheduler.state import (
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    Usage,
)
from clusterctl.simulate.trace import FleetGroup, TraceJob

END, EXIT, ARRIVE = 0, 1, 2


@dataclass
class JobRecord:
    job: TraceJob
    first_start: float | None = None
    end: float | None = None
    preemptions: int = 0


@dataclass
class Outcome:
    records: list[JobRecord]
    gpus: int
    busy_gpu_s: float
    """GPU-seconds held by jobs (preempted runs included)."""
    first_submit: float
    last_end: float
    quota_owed_gpu_s: dict[str, float] = field(default_factory=dict)
    """Per team, ∫ min(quota, demand) dt: what its guarantee entitled it to."""
    quota_given_gpu_s: dict[str, float] = field(default_factory=dict)
    """Per team, ∫ min(quota, held) dt: what it got of that."""
    held_gpu_s: dict[str, float] = field(default_factory=dict)
    passes: int = 0
    preemptions: int = 0
    busy_by_model: dict[str, float] = field(default_factory=dict)
    """GPU-seconds held on each GPU model of the fleet ("" for machines of no model)."""
    gpus_by_model: dict[str, int] = field(default_factory=dict)
    busy_by_node: list[float] = field(default_factory=list)
    """GPU-seconds held on each machine, in the fleet's order (groups expanded)."""


def replay(jobs: list[TraceJob], fleet: Sequence[FleetGroup], config: PolicyConfig) -> Outcome:
    machines: list[tuple[str, int, str | None]] = []
    for nodes, gpus, model in fleet:
        machines += [(f"n{len(machines) + i:03d}", gpus, model) for i in range(nodes)]
    node_ids = [m[0] for m in machines]
    size = {m[0]: m[1] for m in machines}
    model_of = {m[0]: m[2] or "" for m in machines}
    free = dict(size)
    index = {m[0]: i for i, m in enumerate(machines)}
    busy_by_node = [0.0] * len(machines)
    busy_by_model: dict[str, float] = dict.fromkeys(model_of.values(), 0.0)
    gpus_by_model: Counter[str] = Counter()
    for _, gpus, model in machines:
        gpus_by_model[model or ""] += gpus
    records = {j.id: JobRecord(j) for j in jobs}
    events: list[tuple[float, int, int, int]] = [(j.submit_s, ARRIVE, j.id, 0) for j in jobs]
    heapq.heapify(events)
    queue = PendingQueue()
    running = RunningSet()
    work_left = {j.id: min(j.duration_s, j.time_limit_s) for j in jobs}
    attempt: Counter[int] = Counter()
    demand: Counter[str] = Counter()
    held: Counter[str] = Counter()
    held_user: Counter[tuple[str, str]] = Counter()
    quotas = config.quotas
    owed: dict[str, float] = {}
    given: dict[str, float] = {}
    held_s: dict[str, float] = {}
    busy = 0.0
    passes = preemptions = 0
    now = jobs[0].submit_s if jobs else 0.0
    first = now
    usage_team: fairshare.DecayingUsage[str] = fairshare.DecayingUsage(config.half_life_s, now)
    usage_user: fairshare.DecayingUsage[tuple[str, str]] = fairshare.DecayingUsage(
        config.half_life_s, now)
    users_per_team: dict[str, int] = {}
    users_counted = 0

    caps = {n: NodeCapacity(n, size[n], free[n], gpu_model=model_of[n] or None)
            for n in node_ids}
    changed: set[str] = set()

    def release(r: RunningJob, t: float) -> None:
        changed.update(r.node_ids)
        for node in r.node_ids:
            free[node] += r.gpus
            busy_by_node[index[node]] += r.gpus * (t - r.started_at)
        tally(held, r.team, -r.total_gpus)  # gone at zero: the decay walks what is held
        tally(held_user, (r.team, r.user), -r.total_gpus)

    while events:
        t = events[0][0]
        dt = t - now
        if dt > 0:  # integrate everything that was constant since the last instant
            for team in demand.keys() | held.keys():
                q = quotas.get(team, 0.0)
                owed[team] = owed.get(team, 0.0) + min(q, demand[team]) * dt
                given[team] = given.get(team, 0.0) + min(q, held[team]) * dt
                held_s[team] = held_s.get(team, 0.0) + held[team] * dt
            usage_team.accrue(held, t)
            usage_user.accrue(held_user, t)
            now = t
        while events and events[0][0] == t:
            _, kind, job_id, att = heapq.heappop(events)
            rec = records[job_id]
            job = rec.job
            if kind == ARRIVE:
                queue.add(_queued(job))
                demand[job.team] += job.total_gpus
            elif att != attempt[job_id] or job_id not in running:
                continue  # an end overtaken by a preemption, or the reverse
            elif kind == END:
                r = running.remove(job_id)
                release(r, t)
                busy += r.total_gpus * (t - r.started_at)
                busy_by_model[model_of[r.node_ids[0]]] += r.total_gpus * (t - r.started_at)
                demand[job.team] -= job.total_gpus
                rec.end = t
            else:  # EXIT: a preempted job leaves its GPUs and queues again
                r = running.remove(job_id)
                release(r, t)
                busy += r.total_gpus * (t - r.started_at)
                busy_by_model[model_of[r.node_ids[0]]] += r.total_gpus * (t - r.started_at)
                work_left[job_id] -= min(work_left[job_id], t - r.started_at)
                attempt[job_id] += 1
                queue.add(_queued(job))
        if not queue:
            continue
        for n in changed:  # only the machines whose free GPUs moved since the last pass
            caps[n] = NodeCapacity(n, size[n], free[n], gpu_model=model_of[n] or None)
        changed.clear()
        # Scaled by a common factor (DecayingUsage), which the pass's shares do not see.
        if len(usage_user.values) != users_counted:  # a user's first GPU-second: count again
            users_per_team = dict(Counter(team for team, _ in usage_user.values))
            users_counted = len(usage_user.values)
        usage = Usage(usage_team.values, usage_user.values, users_per_team)
        decision = schedule(queue, running, list(caps.values()), now=t,
                            config=config, usage=usage)
        passes += 1
        for p in decision.starts:
            qj = queue.remove(p.job_id)
            rec = records[p.job_id]
            r = RunningJob(qj.id, qj.team, qj.user, p.node_ids, qj.gpus, t, qj.time_limit_s,
                           qj.preemptible, submitted_at=qj.submitted_at)
            running.add(r)
            changed.update(p.node_ids)
            for node in p.node_ids:
                free[node] -= qj.gpus
            held[qj.team] += r.total_gpus
            held_user[(qj.team, qj.user)] += r.total_gpus
            if rec.first_start is None:
                rec.first_start = t
            heapq.heappush(events, (t + work_left[qj.id], END, qj.id, attempt[qj.id]))
        for pre in decision.preemptions:
            if pre.for_job in queue and not queue.get(pre.for_job).reclaiming:
                queue.add(replace(queue.remove(pre.for_job), reclaiming=True))
            running.replace(replace(running.get(pre.job_id), terminating=True))
            records[pre.job_id].preemptions += 1
            preemptions += 1
            heapq.heappush(events, (t + config.preempt_grace_s, EXIT, pre.job_id,
                                    attempt[pre.job_id]))
    last = max((r.end for r in records.values() if r.end is not None), default=first)
    return Outcome(list(records.values()), sum(size.values()), busy, first, last,
                   dict(owed), dict(given), dict(held_s), passes, preemptions,
                   dict(busy_by_model), dict(gpus_by_model), busy_by_node)


def _queued(job: TraceJob) -> QueuedJob:
    """A trace job as the queue holds it; a preempted one comes back with its submit time."""
    return QueuedJob(job.id, 0, job.submit_s, job.gpus, job.nodes, job.team, job.user,
                     job.time_limit_s,
                     gpu_types=(job.gpu_type,) if job.gpu_type is not None else ())
