"""The replay: an event loop in simulated time that calls the live policy after every change.

Events at one instant (jobs ending, preempted jobs exiting, arrivals) are applied together, then
one pass decides. A preempted job holds its GPUs until its grace period ends and goes back to
the queue with its original submit time. What it keeps is what ``Resume`` says: the work up to
its last checkpoint (every ``checkpoint_s`` of progress, or all of it where it checkpoints when
told it is preempted, as ``CLUSTERCTL_PREEMPT_GRACE`` invites it to), and each resumed attempt
first pays ``restore_s`` (loading the checkpoint, warming up) before it makes progress again.
A job runs ``min(duration, time limit)`` of work.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from clusterctl.scheduler import fairshare
from clusterctl.scheduler.pending import PendingQueue, tally
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.records import (
    Decision,
    FairShareUsage,
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
)
from clusterctl.scheduler.running import RunningSet
from clusterctl.simulate.trace import FleetGroup, TraceJob

END, EXIT, ARRIVE, WAKE = 0, 1, 2, 3
"""Events at one instant apply in this order; a WAKE (no job) only runs a pass: when a
borrower grows past the minimum run time (``Decision.recheck_at``)."""


@dataclass(frozen=True)
class Resume:
    """What a preemption costs a job in the replay."""

    restore_s: float = 60.0
    """Each resumed attempt's start before it makes progress again."""
    checkpoint_s: float | None = 1800.0
    """Progress between two checkpoints: a preempted job loses what it did since its last
    one. None: it checkpoints when preempted, and loses nothing but the restore."""


@dataclass
class JobRecord:
    job: TraceJob
    first_start: float | None = None
    end: float | None = None
    preemptions: int = 0
    lost_s: float = 0.0
    """Run time that made no kept progress: work after its last checkpoint, and restores."""


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
    lost_gpu_s: float = 0.0
    """GPU-seconds preemptions cost: work done and not kept, and restores."""
    demotions: int = 0
    """Of the preemptions, those that demoted a job by attained service."""


def replay(jobs: list[TraceJob], fleet: Sequence[FleetGroup], config: PolicyConfig,
           resume: Resume = Resume()) -> Outcome:
    return _Replay(jobs, fleet, config, resume).run()


class _Replay:
    """The replay's state: the fleet's free GPUs, the queue, the running jobs and every
    integral the figures need."""

    def __init__(self, jobs: list[TraceJob], fleet: Sequence[FleetGroup],
                 config: PolicyConfig, resume: Resume) -> None:
        self.resume = resume
        machines: list[tuple[str, int, str | None]] = []
        for nodes, gpus, model in fleet:
            machines += [(f"n{len(machines) + i:03d}", gpus, model) for i in range(nodes)]
        self.config = config
        self.size = {m[0]: m[1] for m in machines}
        self.model_of = {m[0]: m[2] or "" for m in machines}
        self.free = dict(self.size)
        self.index = {m[0]: i for i, m in enumerate(machines)}
        self.busy_by_node = [0.0] * len(machines)
        self.busy_by_model: dict[str, float] = dict.fromkeys(self.model_of.values(), 0.0)
        self.gpus_by_model: Counter[str] = Counter()
        for _, gpus, model in machines:
            self.gpus_by_model[model or ""] += gpus
        self.records = {j.id: JobRecord(j) for j in jobs}
        self.events: list[tuple[float, int, int, int]] = [
            (j.submit_s, ARRIVE, j.id, 0) for j in jobs]
        heapq.heapify(self.events)
        self.queue = PendingQueue(demote_after_gpu_s=config.demote_after_gpu_s,
                                  promote_after_slowdown=config.promote_after_slowdown)
        self.running = RunningSet()
        self.work = {j.id: j.run_s for j in jobs}
        self.done: dict[int, float] = dict.fromkeys(self.work, 0.0)
        """Work kept (checkpointed) so far, per job."""
        self.attempt: Counter[int] = Counter()
        self.attained: dict[int, float] = dict.fromkeys(self.work, 0.0)
        """GPU-seconds each job's ended attempts held (attained service)."""
        self.demand: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.held_user: Counter[tuple[str, str]] = Counter()
        self.owed: dict[str, float] = {}
        self.given: dict[str, float] = {}
        self.held_s: dict[str, float] = {}
        self.busy = 0.0
        self.passes = 0
        self.preemptions = 0
        self.demotions = 0
        self.now = jobs[0].submit_s if jobs else 0.0
        self.first = self.now
        self.usage_team: fairshare.DecayingUsage[str] = fairshare.DecayingUsage(
            config.half_life_s, self.now)
        self.usage_user: fairshare.DecayingUsage[tuple[str, str]] = fairshare.DecayingUsage(
            config.half_life_s, self.now)
        self.users_per_team: dict[str, int] = {}
        self.users_counted = 0
        self.caps = {n: NodeCapacity(n, g, g, gpu_model=self.model_of[n] or None)
                     for n, g in self.size.items()}
        self.changed: set[str] = set()
        self.wakes: set[float] = set()
        """The instants a WAKE is queued for (one each)."""

    def run(self) -> Outcome:
        events = self.events
        while events:
            t = events[0][0]
            self.integrate(t)
            while events and events[0][0] == t:
                self.apply_event(heapq.heappop(events), t)
            if self.queue:
                self.apply_decision(self.decide(t), t)
        last = max((r.end for r in self.records.values() if r.end is not None),
                   default=self.first)
        return Outcome(list(self.records.values()), sum(self.size.values()), self.busy,
                       self.first, last, dict(self.owed), dict(self.given), dict(self.held_s),
                       self.passes, self.preemptions, dict(self.busy_by_model),
                       dict(self.gpus_by_model), self.busy_by_node,
                       sum(r.lost_s * r.job.total_gpus for r in self.records.values()),
                       self.demotions)

    def integrate(self, t: float) -> None:
        """Everything that was constant since the last instant, integrated up to ``t``."""
        dt = t - self.now
        if dt <= 0:
            return
        quotas, demand, held = self.config.quotas, self.demand, self.held
        owed, given, held_s = self.owed, self.given, self.held_s
        for team in demand.keys() | held.keys():
            q = quotas.get(team, 0.0)
            owed[team] = owed.get(team, 0.0) + min(q, demand[team]) * dt
            given[team] = given.get(team, 0.0) + min(q, held[team]) * dt
            held_s[team] = held_s.get(team, 0.0) + held[team] * dt
        self.usage_team.accrue(held, t)
        self.usage_user.accrue(self.held_user, t)
        self.now = t

    def apply_event(self, event: tuple[float, int, int, int], t: float) -> None:
        _, kind, job_id, att = event
        if kind == WAKE:
            self.wakes.discard(t)
            return
        rec = self.records[job_id]
        job = rec.job
        if kind == ARRIVE:
            self.queue.add(_queued(job, 0.0))
            self.demand[job.team] += job.total_gpus
        elif att != self.attempt[job_id] or job_id not in self.running:
            return  # an end overtaken by a preemption, or the reverse
        elif kind == END:
            self.release(job_id, t)
            self.demand[job.team] -= job.total_gpus
            rec.end = t
            rec.lost_s += self.resume.restore_s if self.attempt[job_id] else 0.0
        else:  # EXIT: a preempted job leaves its GPUs and queues again
            r = self.release(job_id, t)
            self.keep_progress(rec, t - r.started_at)
            self.attempt[job_id] += 1
            self.attained[job_id] += r.total_gpus * (t - r.started_at)
            self.queue.add(_queued(job, self.attained[job_id]))

    def keep_progress(self, rec: JobRecord, ran: float) -> None:
        """A preempted run of ``ran`` seconds: the progress it keeps, and what it lost."""
        restore = self.resume.restore_s if self.attempt[rec.job.id] else 0.0
        before = self.done[rec.job.id]
        reached = min(self.work[rec.job.id], before + max(0.0, ran - restore))
        every = self.resume.checkpoint_s
        kept = reached if every is None else max(before, reached // every * every)
        self.done[rec.job.id] = kept
        rec.lost_s += ran - (kept - before)

    def release(self, job_id: int, t: float) -> RunningJob:
        r = self.running.remove(job_id)
        self.changed.update(r.node_ids)
        for node in r.node_ids:
            self.free[node] += r.gpus
            self.busy_by_node[self.index[node]] += r.gpus * (t - r.started_at)
        tally(self.held, r.team, -r.total_gpus)  # gone at zero: the decay walks what is held
        tally(self.held_user, (r.team, r.user), -r.total_gpus)
        self.busy += r.total_gpus * (t - r.started_at)
        self.busy_by_model[self.model_of[r.node_ids[0]]] += r.total_gpus * (t - r.started_at)
        return r

    def decide(self, t: float) -> Decision:
        caps, size, free, model_of = self.caps, self.size, self.free, self.model_of
        for n in self.changed:  # only the machines whose free GPUs moved since the last pass
            caps[n] = NodeCapacity(n, size[n], free[n], gpu_model=model_of[n] or None)
        self.changed.clear()
        # Scaled by a common factor (DecayingUsage), which the pass's shares do not see.
        users = self.usage_user.values
        if len(users) != self.users_counted:  # a user's first GPU-second: count again
            self.users_per_team = dict(Counter(team for team, _ in users))
            self.users_counted = len(users)
        usage = FairShareUsage(self.usage_team.values, users, self.users_per_team)
        self.passes += 1
        return schedule(self.queue, self.running, list(caps.values()), now=t,
                        config=self.config, usage=usage)

    def apply_decision(self, decision: Decision, t: float) -> None:
        queue, records, events, attempt = self.queue, self.records, self.events, self.attempt
        for p in decision.starts:
            qj = queue.remove(p.job_id)
            rec = records[p.job_id]
            r = RunningJob(qj.id, qj.team, qj.user, p.node_ids, qj.gpus, t, qj.time_limit_s,
                           qj.preemptible, submitted_at=qj.submitted_at,
                           attained_gpu_s=qj.attained_gpu_s)
            self.running.add(r)
            self.changed.update(p.node_ids)
            for node in p.node_ids:
                self.free[node] -= qj.gpus
            self.held[qj.team] += r.total_gpus
            self.held_user[(qj.team, qj.user)] += r.total_gpus
            if rec.first_start is None:
                rec.first_start = t
            restore = self.resume.restore_s if attempt[qj.id] else 0.0
            left = self.work[qj.id] - self.done[qj.id]
            heapq.heappush(events, (t + restore + left, END, qj.id, attempt[qj.id]))
        for pre in decision.preemptions:
            if pre.for_job in queue:
                claim = queue.get(pre.for_job)
                if pre.demotion and not claim.demoting:
                    queue.add(replace(queue.remove(pre.for_job), demoting=True))
                elif not pre.demotion and not claim.reclaiming:
                    queue.add(replace(queue.remove(pre.for_job), reclaiming=True))
            self.running.replace(replace(self.running.get(pre.job_id), terminating=True))
            records[pre.job_id].preemptions += 1
            self.preemptions += 1
            self.demotions += pre.demotion
            heapq.heappush(events, (t + self.config.preempt_grace_s, EXIT, pre.job_id,
                                    attempt[pre.job_id]))
        at = decision.recheck_at
        if at is not None and at > t and at not in self.wakes:
            self.wakes.add(at)
            heapq.heappush(events, (at, WAKE, -1, 0))


def _queued(job: TraceJob, attained_gpu_s: float) -> QueuedJob:
    """A trace job as the queue holds it; a preempted one comes back with its submit time and
    the GPU-time its attempts had."""
    return QueuedJob(job.id, 0, job.submit_s, job.gpus, job.nodes, job.team, job.user,
                     job.time_limit_s,
                     gpu_types=(job.gpu_type,) if job.gpu_type is not None else (),
                     attained_gpu_s=attained_gpu_s)
