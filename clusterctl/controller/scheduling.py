"""The scheduling loop: load state, ask the pure policy (``scheduler/``), apply the decision
through the executor. The attempts it starts are watched by :class:`Attempts`.

One thread runs it. No database transaction is ever held across an executor (Ray) call: each
pass reads rows, lets the transactions close, talks to Ray, then writes guarded updates whose
"0 rows" answer means someone else got there first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from clusterctl.controller.attempts import Attempts, at
from clusterctl.controller.node_facts import NodeFacts
from clusterctl.executor.types import Executor, NodeInfo, RayUnavailable
from clusterctl.scheduler import dependencies, fairshare, gpu_groups, mixed_nodes, policy
from clusterctl.scheduler.quotas import resolve_quotas, unknown_types
from clusterctl.scheduler.records import (
    SETTINGS,
    Decision,
    FairShareUsage,
    NodeCapacity,
    PolicyConfig,
    Preemption,
    QueuedJob,
    RunningJob,
    Wait,
    WaitReason,
    from_settings,
)
from clusterctl.settings import Settings
from clusterctl.states import JobState
from clusterctl.store import UNAVAILABLE, Job, JobStore

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class OutOfService:
    """The drained nodes by name, and those of them drained for a GPU fault with the reason
    (read together, once a pass)."""

    drained: Collection[str]
    failing: Mapping[str, str]


class Scheduler:
    def __init__(
        self,
        jobs: JobStore,
        executor: Executor,
        attempts: Attempts,
        *,
        interval_s: float = 0.5,
        min_gap_s: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        policy_config: PolicyConfig | None = None,
        out_of_service: Callable[[], OutOfService] = lambda: OutOfService(frozenset(), {}),
        facts: NodeFacts | None = None,
        fair_share_by_rate: bool = False,
        budget_holds: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.jobs = jobs
        self.executor = executor
        self.interval_s = interval_s
        self.min_gap_s = min_gap_s
        self.monotonic = monotonic
        self.clock = clock
        self.policy_config = policy_config or PolicyConfig()
        """Quotas here are the configured ones; teams without one share the rest each pass."""
        self.attempts = attempts
        """What the passes start; it signals preempted jobs with the policy's grace."""
        self.usage_refresh_s = 60.0
        """Fair share reads the allocation records this often (usage moves over days)."""
        self._usage: tuple[float, FairShareUsage] | None = None
        self._reclaiming: set[int] = set()
        """Pending jobs for which borrowed GPUs were preempted: they go first (see
        ``QueuedJob.reclaiming``). In memory only: after a restart the next pass plans anew."""
        self._demoting: set[int] = set()
        """Pending jobs for which their team's jobs were demoted (``QueuedJob.demoting``)."""
        self._warned_types: set[str] = set()
        self.busy_pass_interval_s = 2.0
        """With no GPU free, passes (reclaim by preemption, wait reasons) run this often."""
        self._full_pass_at = -1e18
        self.waiting: dict[int, Wait] = {}
        """Why each pending job waits, as of the last pass (shown by ``clusterctl jobs``)."""
        self.nodes: list[NodeInfo] = []
        self._out_of_service = out_of_service
        self.facts = facts or NodeFacts(monotonic=monotonic)
        """The GPUs' models and memory, and the nodes' GPU-hour costs (read as often as
        usage)."""
        self.fair_share_by_rate = fair_share_by_rate
        self.budget_holds = budget_holds
        """Teams over an enforced budget → why their pending jobs wait."""
        """Fair share weighs each GPU-hour by its node's rate (``fairshare.rate_weights``)."""
        self.drained: Collection[str] = frozenset()
        """Names of drained nodes: nothing new starts there (read every pass)."""
        self.failing: Mapping[str, str] = {}
        """Nodes drained for a GPU fault, with the reason: their jobs are ended each pass."""
        self.passes = 0
        """Passes completed since start (``clusterctl_scheduler_passes_total``): a pass that
        ends after a change has seen it, which is how to know "nothing started" is final."""
        self.database_down = False
        self.database_retry_s = 5.0
        self.ray_down: str | None = None
        """Why Ray does not answer, while it does not: nothing starts or ends meanwhile, and
        the API says so (``/healthz``, a warning on every answer)."""
        self.ray_down_since: float | None = None
        self.ray_retry_s = 2.0
        self._reconciled = False
        """Whether the active jobs of the database were matched with Ray's runners since
        start: nothing moves or starts before (Ray may not answer when we start)."""
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.refresh_nodes()
            self._reconcile_once()
        except RayUnavailable as e:  # serve anyway; the loop reconciles once Ray answers
            self._ray_unavailable(e)
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                if self.database_down:
                    log.warning("the database is back; scheduling again")
                    self.database_down = False
                if self.ray_down is not None:
                    self._ray_back()
            except RayUnavailable as e:
                self._ray_unavailable(e)
                self._stop.wait(self.ray_retry_s)
                continue
            except UNAVAILABLE as e:  # hold off, and say so once, until it answers again
                if not self.database_down:
                    log.warning("database unavailable (%s); the scheduler holds off", e)
                self.database_down = True
                self._stop.wait(self.database_retry_s)
                continue
            except Exception as e:  # keep scheduling through a transient Ray error
                self.attempts.repeats.error("scheduler pass failed", e)
            # A burst of submissions wakes us many times: one pass per min_gap_s serves them all.
            self._stop.wait(self.min_gap_s)
            self.wake.wait(max(0.0, self.interval_s - self.min_gap_s))
            self.wake.clear()

    def _ray_unavailable(self, e: RayUnavailable) -> None:
        if self.ray_down is None:
            self.ray_down_since = self.clock()
            log.error("Ray unavailable (%s): jobs stay as last seen and new ones queue until "
                      "it answers", e)
        self.ray_down = str(e)

    def _ray_back(self) -> None:
        """Ray answers again: runners that lived through it were found by name; what a launch
        cut short left behind is removed."""
        down = self.clock() - (self.ray_down_since or self.clock())
        log.warning("Ray is back after %.0fs; scheduling again", down)
        self.ray_down = self.ray_down_since = None
        self.attempts.sweep()

    def _reconcile_once(self) -> None:
        if not self._reconciled:
            self.attempts.reconcile()
            self._reconciled = True

    def step(self) -> None:
        self.refresh_nodes()
        self._reconcile_once()
        active = self.jobs.active()
        if self.failing:
            self.attempts.lose_on(self.failing, active)
        self.attempts.progress(active)
        self.schedule()
        self.passes += 1

    def refresh_nodes(self) -> None:
        self.nodes = self.executor.nodes()
        self.facts.refresh(self.nodes, self.usage_refresh_s)
        self.attempts.nodes = self.nodes
        out = self._out_of_service()
        self.drained, self.failing = out.drained, out.failing

    # -- capacity -----------------------------------------------------------------------------

    def capacity(self, active: list[Job] | None = None,
                 with_drained: bool = False) -> list[NodeCapacity]:
        """Each node's GPUs, free and held (``NodeFacts.capacity``); drained and suspect
        nodes not schedulable unless ``with_drained``."""
        return self.facts.capacity(self.jobs.active() if active is None else active,
                                   () if with_drained else self.drained,
                                   () if with_drained else self.attempts.suspected())

    def why_never(self, gpus: int, nodes: int, gpu_types: list[str] | None = None,
                  gpu_mem: int | None = None) -> tuple[str, str] | None:
        """Why a request can never fit this cluster (for refusal at submit) as (field, why),
        or None. A drained node counts: draining is for maintenance, and it comes back."""
        ask = (tuple(gpu_types or ()), gpu_mem)
        return self.facts.refused_after_reading(lambda: gpu_groups.why_never(
            gpus, nodes, ask, self.capacity(active=[], with_drained=True)))

    # -- pending jobs -------------------------------------------------------------------------

    def schedule(self) -> None:
        active = self.jobs.active()
        capacity = self.capacity(active)
        if not any(c.schedulable and c.free_gpus > 0 for c in capacity) and \
                self.monotonic() - self._full_pass_at < self.busy_pass_interval_s:
            return  # a burst of submissions to a full cluster: do not re-read the queue each time
        self._full_pass_at = self.monotonic()
        pending, held_back = self.ready(self.jobs.pending())
        self._reclaiming &= {j.id for j in pending}
        self._demoting &= {j.id for j in pending}
        if not pending:
            self.waiting = held_back
            return
        by_id = {j.id: j for j in pending}
        now = self.clock()
        decision = self.decide(pending, active, capacity, now)
        self.waiting = {**decision.waiting, **held_back}
        self.preempt(decision.preemptions, active)
        for start in decision.starts:
            self._reclaiming.discard(start.job_id)
            self._demoting.discard(start.job_id)
            job = by_id[start.job_id]
            try:
                node_ids, devices = self.facts.place(job, start.node_ids, active)
            except ValueError as e:  # the agent's list changed under the pass: next pass
                log.warning("job %s not started: %s", job.id, e)
                continue
            self.attempts.launch(job, node_ids, devices)
            if devices is not None:  # later starts of this pass see these devices taken
                active.append(job.model_copy(update={
                    "placement": list(node_ids), "gpu_devices": [list(d) for d in devices]}))

    def ready(self, pending: list[Job]) -> tuple[list[Job], dict[int, Wait]]:
        """The pending jobs whose dependencies are met, and why the others wait. A job whose
        dependency can no longer be met (``:ok`` on a job that failed) is cancelled."""
        held_back: dict[int, Wait] = {}
        over = self.budget_holds()
        if over or any(j.held_by for j in pending):
            for j in pending:
                if j.id is None:
                    continue
                if j.held_by:
                    held_back[j.id] = Wait(WaitReason.HELD, f"held by {j.held_by}; "
                                                            f"`clusterctl release {j.id}`")
                elif j.team in over:
                    held_back[j.id] = Wait(WaitReason.BUDGET, over[j.team])
            pending = [j for j in pending if j.id not in held_back]
        deps = {d for j in pending for d in dependencies.ids(j.after)}
        if not deps:
            return pending, held_back
        states = self.jobs.states(deps)
        ready = []
        for job in pending:
            assert job.id is not None
            blocked = dependencies.check(job.after, states)
            if blocked.ready:
                ready.append(job)
            elif blocked.broken:
                self.jobs.transition(job.id, JobState.PENDING, JobState.CANCELLED, blocked.detail,
                                     values={"ended_at": at(self.clock())})
            else:
                held_back[job.id] = Wait(WaitReason.DEPENDENCY, blocked.detail)
        return ready, held_back

    def preempt(self, preemptions: list[Preemption], active: list[Job]) -> None:
        """Mark each victim in the database first (so a restart knows its end is a preemption,
        not a failure), then signal it; it goes back to PENDING when it exits."""
        rows = {j.id: j for j in active}
        for p in preemptions:
            victim = rows.get(p.job_id)
            if victim is None or not self.jobs.request_preempt(p.job_id, victim.attempt,
                                                               p.reason):
                continue
            log.info("preempting job %s for job %s: %s", p.job_id, p.for_job, p.reason)
            (self._demoting if p.demotion else self._reclaiming).add(p.for_job)
            self.attempts.terminate(p.job_id, self.policy_config.preempt_grace_s)

    def usage(self, now: float) -> FairShareUsage:
        """Decayed recent GPU use per team and user, from the allocation records (cached)."""
        if self._usage is not None and now - self._usage[0] < self.usage_refresh_s:
            return self._usage[1]
        half_life = self.policy_config.half_life_s
        rows = self.jobs.usage_intervals(at(now - 4 * half_life))  # older use weighs < 1/16
        weights = (fairshare.rate_weights(self.facts.gpu_hour_costs) if self.fair_share_by_rate
                   else None)
        usage = fairshare.usage_from_intervals(
            ((t, u, n, a.timestamp(), b.timestamp() if b else None) for t, u, n, a, b in rows),
            now, half_life, weights)
        self._usage = (now, usage)
        return usage

    def warn_unknown_types(self, capacity: list[NodeCapacity]) -> None:
        """A typed quota no node's model matches is a warning once (the machines may be on
        their way), not an error: the quota simply cannot be used yet."""
        typed = self.policy_config.type_quotas
        if not typed or not capacity:
            return
        for missing in unknown_types(typed, (c.gpu_model for c in capacity)):
            if missing not in self._warned_types:
                self._warned_types.add(missing)
                log.warning("quota %s: no node reports GPUs of that type; it guarantees "
                            "nothing until one does", missing)

    def decide(self, pending: list[Job], active: list[Job], capacity: list[NodeCapacity],
               now: float) -> Decision:
        had = self._attained(pending, active)
        queued = [
            QueuedJob(j.id, j.priority, j.submitted_at.timestamp(), j.gpus, j.nodes, j.team,
                      j.user, j.time_limit_s, preemptible=not j.no_preempt,
                      array_id=j.array_id, array_limit=j.array_limit,
                      reclaiming=j.id in self._reclaiming, demoting=j.id in self._demoting,
                      gpu_types=tuple(j.gpu_types or ()), gpu_mem=j.gpu_mem,
                      attained_gpu_s=had.get(j.id, 0.0))
            for j in pending if j.id is not None
        ]
        mixed = self.facts.mixed()
        running = [
            RunningJob(j.id, j.team, j.user,
                       mixed_nodes.parts_of(j.placement or (), j.gpu_devices, mixed), j.gpus,
                       j.started_at.timestamp() if j.started_at else now, j.time_limit_s,
                       preemptible=not j.no_preempt,
                       terminating=j.cancel_requested or j.preempt_requested,
                       array_id=j.array_id, submitted_at=j.submitted_at.timestamp(),
                       attained_gpu_s=had.get(j.id, 0.0),
                       demotable=j.service_id is None and not j.interactive)
            for j in active if j.id is not None and j.placement
        ]
        cfg = self.policy_config
        self.warn_unknown_types(capacity)
        teams = {j.team for j in pending} | {j.team for j in active}
        total = sum(c.total_gpus for c in capacity if c.schedulable)
        quotas = resolve_quotas(cfg.quotas, teams, total)
        usage = self.usage(now) if cfg.fair_share else None
        return policy.schedule(queued, running, capacity, now=now, usage=usage,
                               config=replace(cfg, quotas=quotas), explain=True)

    def _attained(self, pending: list[Job], active: list[Job]) -> dict[int, float]:
        """GPU-seconds the earlier attempts of the jobs without a time limit held (only those
        are ranked by it; a job on its first attempt has had none before it)."""
        if not self.policy_config.demote_after_gpu_s:
            return {}
        def ranked(j: Job) -> bool:  # services and sessions run until stopped: not ranked
            return j.time_limit_s is None and j.service_id is None and not j.interactive

        earlier = [j.id for j in pending if ranked(j) and j.attempt > 0]
        earlier += [j.id for j in active if ranked(j) and j.attempt > 1]
        return self.jobs.attained(i for i in earlier if i is not None)


def scheduling_settings(s: Settings) -> dict[str, Any]:
    """The settings that shape the pass beyond the quotas (``records.SETTINGS``), as
    ``/v1/quotas`` shows them to ``clusterctl plan``."""
    return {name: getattr(s, name) for name in SETTINGS}


def policy_config(s: Settings) -> PolicyConfig:
    """The scheduling pass's settings from the controller's (``records.from_settings``), with
    its quotas."""
    return replace(from_settings(scheduling_settings(s)), quotas=s.team_quotas,
                   type_quotas=s.type_quotas)
