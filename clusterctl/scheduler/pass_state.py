"""What one scheduling pass knows and keeps as it goes: the free GPUs, what each team, quota
pool, user and array holds (updated as the pass starts and promises jobs), the reservations, the
decision being built, and the caches that spare a busy pass repeated searches. The parts of the
pass (``ordering``, ``fitting``, ``reserving``, ``reclaiming``, ``explaining``) read and update
it; ``policy`` runs them.

Quota pools are here too: which pool a job's GPUs count against is asked by every part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from clusterctl.gpu_types import matches
from clusterctl.scheduler.gpu_groups import Fleet, Group, ask_of
from clusterctl.scheduler.pending import PendingQueue
from clusterctl.scheduler.placement import FreeMap
from clusterctl.scheduler.quotas import Pool, pool_type
from clusterctl.scheduler.records import (
    Decision,
    FairShareUsage,
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    Wait,
    WaitReason,
)
from clusterctl.scheduler.reservation import Release, Reservation
from clusterctl.scheduler.running import RunningSet

NodeSet = frozenset[str] | None
"""The nodes a search is kept to (None: every node)."""
Shape = tuple[int, int, NodeSet]
"""(GPUs per node, nodes, the nodes tried: None for all)."""


class PassState:
    def __init__(self, queue: PendingQueue, running: RunningSet,
                 nodes: Sequence[NodeCapacity], now: float, config: PolicyConfig,
                 usage: FairShareUsage) -> None:
        self.queue, self.running, self.now, self.config = queue, running, now, config
        self.usage = usage
        self.free = FreeMap({n.id: n.free_gpus for n in nodes if n.schedulable})
        self.fleet = Fleet(n for n in nodes if n.schedulable)
        """Nodes by GPU model: each job's GPUs come from one group it accepts."""
        self.total_of = {n.id: n.total_gpus for n in nodes}
        self.drained = [n for n in nodes if n.drained]
        self.model_of = {n.id: n.gpu_model for n in nodes}
        self.typed = config.type_quotas
        self.decision = Decision()
        """What the pass returns: starts, preemptions, promises and wait reasons."""
        self.within_type: dict[int, str] = {}
        """Tier-0 jobs of typed teams: the quota type they run within (``fitting.groups``
        keeps them to its GPUs)."""
        self.freeing: Counter[str] = Counter()
        """GPUs per node that jobs being preempted will give back."""
        self.promised_freeing: Counter[str] = Counter()
        """Of ``freeing``, GPUs per node already promised to a job that reclaimed them."""
        self._pool_types: dict[tuple[str, str | None], str] = {}
        self._kinds: dict[tuple[str, tuple[str, ...], int | None], list[str]] = {}
        self.within_cache: dict[tuple[tuple[str, ...], int | None, str], list[NodeSet]] = {}
        self.groups_cache: dict[tuple[tuple[str, ...], int | None], list[NodeSet]] = {}
        pool_used = self._pools_in_use(running)
        reclaiming: dict[Pool, float] = {}
        schedulable = self.free.free
        for r in running.terminating.values():
            pool = self.pool_for(r)
            reclaiming[pool] = reclaiming.get(pool, 0) + r.total_gpus
            for node in r.node_ids:
                if node in schedulable:
                    self.freeing[node] += r.gpus
        self._pool_of: dict[int, Pool] | None = None
        self.team_used: Counter[str] = Counter(running.team_used)
        self.pool_used: Counter[Pool] = Counter(pool_used)
        self.user_used: Counter[tuple[str, str]] = Counter(running.user_used)
        self.array_running: Counter[int] = Counter(running.arrays)
        self.over_quota: dict[Pool, float] = {
            pool: used - self.quota_of(pool) - reclaiming.get(pool, 0.0)
            for pool, used in pool_used.items()
        }
        self.candidates: dict[str, list[RunningJob]] | None = None
        """Running jobs that may be preempted, by node (``reclaiming`` builds it once)."""
        self.victims: set[int] = set()
        self.grown_at: tuple[float | None] | None = None
        """When the first borrower too young to preempt grows old enough (``reclaiming``
        asks once a pass, if a claim found no plan)."""
        self.key: Callable[[QueuedJob], Any] | None = None
        """The order within a tier (``ordering``), once the pass has one."""
        self.demote_tried: set[str] = set()
        """Teams whose first blocked job looked for jobs to demote this pass (once a team)."""
        self.reclaim_later: set[int] = set()
        """Jobs that found no borrowed GPUs to reclaim while some borrower was too young to
        preempt (``preempt_min_run_s``): their wait says when that changes."""
        self.started: list[tuple[QueuedJob, tuple[str, ...]]] = []
        self.reservation: Reservation | None = None
        """The first reservation of the pass (the job next in line, for the explanations)."""
        self.reserved: dict[frozenset[str] | None, Reservation] = {}
        """The reservation on each group of nodes (a shadow time per GPU model: the first
        blocked job that accepts a model holds its reservation; ``None``: every node)."""
        self.releases_cache: tuple[tuple[int, int], list[Release]] = ((-1, -1), [])
        self.no_plan: tuple[tuple[int, int, int], set[Shape]] = ((-1, 0, 0), set())
        """(the pass's state, shapes for which reclaiming found no plan in that state)."""
        self.misses: tuple[int, list[Shape], list[Shape]] = (-1, [], [])
        """(free map version, shapes that did not fit the free GPUs, shapes that did not fit
        beside the reservation): a larger shape cannot fit either until something changes, so
        the long tail of a busy queue is passed over without a placement search each. A shape
        holds the nodes it was tried on (None: all; a miss on all is a miss on any group)."""

    def _pools_in_use(self, running: RunningSet) -> dict[Pool, int]:
        if not self.typed:
            return {(team, None): used for team, used in running.team_used.items()}
        pool_used: dict[Pool, int] = {}
        # a typed team's GPUs count against the type of each job's first node
        for (team, first), used in running.first_node_used.items():
            pool = self.pool(team, (first,)) if team in self.typed else (team, None)
            pool_used[pool] = pool_used.get(pool, 0) + used
        return pool_used

    def recheck(self, at: float) -> None:
        """Ask for a pass at ``at`` (the earliest asked of this pass wins)."""
        d = self.decision
        if d.recheck_at is None or at < d.recheck_at:
            d.recheck_at = at

    # -- quota pools --------------------------------------------------------------------------

    def pool(self, team: str, node_ids: Sequence[str]) -> Pool:
        """The pool GPUs on these nodes count against for ``team`` (``quotas.py``)."""
        kinds = self.typed.get(team)
        if not kinds:
            return team, None
        model = self.model_of.get(node_ids[0]) if node_ids else None
        found = self._pool_types.get((team, model))
        if found is None:
            found = self._pool_types[(team, model)] = pool_type(list(kinds), model)
        return team, found

    def pool_for(self, r: RunningJob) -> Pool:
        return self.pool(r.team, r.node_ids) if r.team in self.typed else (r.team, None)

    @property
    def pool_of(self) -> dict[int, Pool]:
        """Each running job's pool, for preemption (built on first use: most passes reclaim
        nothing)."""
        if self._pool_of is None:
            self._pool_of = {r.id: self.pool_for(r) for r in self.running}
        return self._pool_of

    def quota_of(self, pool: Pool) -> float:
        team, kind = pool
        if kind is None:
            return self.config.quotas.get(team, 0.0)
        return self.typed.get(team, {}).get(kind, 0.0)

    def quota_kinds(self, job: QueuedJob) -> list[str]:
        """The quota types of ``job``'s team it could run on, in the order it tries groups."""
        ask = ask_of(job)
        key = (job.team, *ask)
        found = self._kinds.get(key)
        if found is None:
            found = []
            for g in self.accepted_groups(job):
                for kind in self.typed[job.team]:
                    if kind not in found and g.model and matches(kind, g.model):
                        found.append(kind)
            self._kinds[key] = found
        return found

    def accepted_groups(self, job: QueuedJob) -> list[Group]:
        choices = self.fleet.choices(job, self.queue.asked)
        return self.fleet.accepted(ask_of(job)) if choices is None else choices

    # -- limits -------------------------------------------------------------------------------

    def held_back(self, job: QueuedJob) -> Wait | None:
        """The limit that keeps ``job`` back whatever is free: its user's GPUs, its array's
        tasks at once."""
        limit = self.config.user_gpu_limit
        if limit is not None and self.user_used[(job.team, job.user)] + job.total_gpus > limit:
            return Wait(WaitReason.USER_LIMIT, f"{job.user} may hold {limit} GPUs at once")
        if (job.array_id is not None and job.array_limit is not None
                and self.array_running[job.array_id] >= job.array_limit):
            return Wait(WaitReason.ARRAY_LIMIT,
                        f"{job.array_limit} tasks of the array run at once")
        return None

    def limit(self, job: QueuedJob | RunningJob) -> float:
        return job.time_limit_s or self.config.default_time_limit_s
