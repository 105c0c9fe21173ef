"""One scheduling pass: which pending jobs start where, which running jobs are preempted, and why
the others wait. A pure function of (pending jobs, running jobs, nodes, recent usage, now), so
the live scheduler and the trace simulator run the same code.

The order (with ``fair_share``):

0. jobs for which borrowed GPUs were already reclaimed (they take them);
1. the oldest job pending longer than ``starve_after_s``: it goes first and so gets the
   reservation; when it starts, the next oldest follows. Nothing waits forever, and the rest of
   the queue keeps its order even when a long overload makes many jobs that old;
2. tier 0, each team's jobs that fit in its unused quota (taken in the order below): the
   guaranteed share. Such a job that does not fit the free GPUs reclaims borrowed
   ones by preemption. A team whose quota is per GPU type (``quotas.py``) has each job of
   tier 0 run within one of its types: first on GPUs of that type, reclaimed if need be, and
   only then, if it may borrow, on idle GPUs of another type;
3. tier 1, jobs that would borrow idle GPUs beyond their team's quota.

Within a tier: priority (higher first), then a Slurm-like multifactor score (the team's and the
user's fair-share factors from decayed recent usage, an age factor and a short-job factor from
the time limit), then submit time.

The first job that does not fit gets a reservation (EASY backfill): later jobs start only if they
fit the free GPUs and either end, by their time limit, before its reserved start or use GPUs it
will not need. Placement is best fit on the fewest nodes, all or nothing (``placement.py``).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet

from clusterctl.gpu_types import GIB, matches
from clusterctl.scheduler import fairshare, preemption
from clusterctl.scheduler.gpu_groups import Fleet, Group, accepts, ask_of
from clusterctl.scheduler.pending import LENGTH_CLASSES_S, PendingQueue
from clusterctl.scheduler.placement import FreeMap
from clusterctl.scheduler.quotas import Pool, pool_type, within_quota
from clusterctl.scheduler.reservation import Release, Reservation, reserve
from clusterctl.scheduler.running import RunningSet
from clusterctl.scheduler.state import (
    Blocking,
    Decision,
    NodeCapacity,
    Placement,
    PolicyConfig,
    Preemption,
    QueuedJob,
    RunningJob,
    Usage,
    Wait,
    WaitReason,
)

R = WaitReason
_EVERY_NODE: list[frozenset[str] | None] = [None]
NodeSet = frozenset[str] | None
"""The nodes a search is kept to (None: every node)."""
Shape = tuple[int, int, NodeSet]
"""(GPUs per node, nodes, the nodes tried: None for all)."""
STARVED, TIER0, TIER1 = 0, 1, 2


class _Pass:
    def __init__(self, queue: PendingQueue, running: RunningSet,
                 nodes: Sequence[NodeCapacity], now: float, config: PolicyConfig,
                 usage: Usage) -> None:
        self.queue, self.running, self.now, self.cfg = queue, running, now, config
        self.usage = usage
        self.free = FreeMap({n.id: n.free_gpus for n in nodes if n.schedulable})
        self.fleet = Fleet(n for n in nodes if n.schedulable)
        """Nodes by GPU model: each job's GPUs come from one group it accepts."""
        self.total_of = {n.id: n.total_gpus for n in nodes}
        self.drained = [n for n in nodes if n.drained]
        self.model_of = {n.id: n.gpu_model for n in nodes}
        self.typed = config.type_quotas
        self._pool_types: dict[tuple[str, str | None], str] = {}
        self._kinds: dict[tuple[str, tuple[str, ...], int | None], list[str]] = {}
        self._within: dict[tuple[tuple[str, ...], int | None, str], list[NodeSet]] = {}
        self._sets: dict[tuple[tuple[str, ...], int | None], list[NodeSet]] = {}
        self.only: dict[int, str] = {}
        """Tier-0 jobs of typed teams: the quota type they run within (``groups`` keeps them
        to its GPUs)."""
        schedulable = self.free.free
        self.soon: Counter[str] = Counter()
        typed = self.typed
        pool_used: dict[Pool, int] = {}
        if typed:  # a typed team's GPUs count against the type of each job's first node
            for (team, first), used in running.first_node_used.items():
                pool = self.pool(team, (first,)) if team in typed else (team, None)
                pool_used[pool] = pool_used.get(pool, 0) + used
        else:
            pool_used = {(team, None): used for team, used in running.team_used.items()}
        reclaiming: dict[Pool, float] = {}
        for r in running.terminating.values():
            pool = self.pool_for(r)
            reclaiming[pool] = reclaiming.get(pool, 0) + r.total_gpus
            for node in r.node_ids:
                if node in schedulable:
                    self.soon[node] += r.gpus
        self._pool_of: dict[int, Pool] | None = None
        self.team_used: Counter[str] = Counter(running.team_used)
        self.pool_used: Counter[Pool] = Counter(pool_used)
        self.user_used: Counter[tuple[str, str]] = Counter(running.user_used)
        self.array_running: Counter[int] = Counter(running.arrays)
        self.claimed_soon: Counter[str] = Counter()
        self.over_quota: dict[Pool, float] = {
            pool: used - self.quota_of(pool) - reclaiming.get(pool, 0.0)
            for pool, used in pool_used.items()
        }
        self._candidates: dict[str, list[RunningJob]] | None = None
        self.victims: set[int] = set()
        self.started: list[tuple[QueuedJob, tuple[str, ...]]] = []
        self.reservation: Reservation | None = None
        """The first reservation of the pass (the job next in line, for the explanations)."""
        self.reserved: dict[frozenset[str] | None, Reservation] = {}
        """The reservation on each group of nodes (a shadow time per GPU model: the first
        blocked job that accepts a model holds its reservation; ``None``: every node)."""
        self.d = Decision()
        self._releases: tuple[tuple[int, int], list[Release]] = ((-1, -1), [])
        self._no_plan: tuple[tuple[int, int, int], set[Shape]] = ((-1, 0, 0), set())
        self._misses: tuple[int, list[Shape], list[Shape]] = (-1, [], [])
        """(free map version, shapes that did not fit the free GPUs, shapes that did not fit
        beside the reservation): a larger shape cannot fit either until something changes, so
        the long tail of a busy queue is passed over without a placement search each. A shape
        holds the nodes it was tried on (None: all; a miss on all is a miss on any group)."""

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
            return self.cfg.quotas.get(team, 0.0)
        return self.typed.get(team, {}).get(kind, 0.0)

    def quota_kinds(self, job: QueuedJob) -> list[str]:
        """The quota types of ``job``'s team it could run on, in the order it tries groups."""
        ask = ask_of(job)
        key = (job.team, *ask)
        found = self._kinds.get(key)
        if found is None:
            found = []
            for g in self._accepted_groups(job):
                for kind in self.typed[job.team]:
                    if kind not in found and g.model and matches(kind, g.model):
                        found.append(kind)
            self._kinds[key] = found
        return found

    def _accepted_groups(self, job: QueuedJob) -> list[Group]:
        choices = self.fleet.choices(job, self.queue.asked)
        return self.fleet.accepted(ask_of(job)) if choices is None else choices

    # -- order --------------------------------------------------------------------------------

    def ordered(self) -> Iterator[tuple[QueuedJob, int]]:
        cfg, now = self.cfg, self.now
        if not cfg.fair_share:
            for job in self.queue.merged():
                yield job, TIER1
            return
        team_f = fairshare.team_factors(self.usage.team, cfg.quotas)
        per_team = self.usage.users_per_team
        user_f = fairshare.user_factors(self.usage.user, self.queue.users(),
                                        None if per_team is None else (self.usage.team, per_team))

        classes = len(LENGTH_CLASSES_S)
        w_team, w_user, w_age, w_short = (cfg.weight_team, cfg.weight_user, cfg.weight_age,
                                          cfg.weight_short)
        max_age = cfg.max_age_s
        shares: dict[tuple[str, str], float] = {}
        shorts: dict[int, float] = {}
        class_of = self.queue.length_classes

        keys: dict[int, tuple[int, float, float, int]] = {}

        def key(job: QueuedJob) -> tuple[int, float, float, int]:
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

        tier0 = within_quota(self.queue, cfg.quotas, self.pool_used, key,
                             lambda job: self.held_back(job) is not None, self.typed,
                             self.quota_kinds)
        self.only = {i: kind for i, kind in tier0.items() if kind is not None}
        done: set[int] = set()
        reclaiming = [j for j in map(self.queue.get, tier0) if j.reclaiming]
        for job in sorted(reclaiming, key=key):
            done.add(job.id)
            yield job, TIER0
        if cfg.starve_after_s is not None:  # the oldest starving job only: one at a time
            for job in self.queue.submitted_before(now - cfg.starve_after_s):
                if self.held_back(job) is None:
                    done.add(job.id)
                    yield job, STARVED
                    break
        for job in sorted((self.queue.get(i) for i in tier0 if i not in done), key=key):
            yield job, TIER0
        for job in self.queue.merged(key):
            if job.id not in tier0 and job.id not in done:
                yield job, TIER1

    # -- the pass -----------------------------------------------------------------------------

    def run(self, explain: bool) -> Decision:
        cfg = self.cfg
        looked_after = 0
        for job, tier in self.ordered():
            if self.reservation is not None:
                looked_after += 1
                if looked_after > cfg.backfill_depth:
                    break
            if self.free.total == 0 and tier != TIER0 and (
                    self.reservation is not None or cfg.blocking is not Blocking.RESERVE):
                break  # nothing more can start, and nothing after this reclaims
            held = self.held_back(job)
            if held is not None:
                self.d.waiting[job.id] = held
                continue
            if cfg.fair_share and not job.preemptible and tier != TIER0:
                self.d.waiting[job.id] = Wait(
                    R.QUOTA, f"--no-preempt: runs only within team {job.team}'s quota")
                continue
            if self.try_start(job):
                continue
            if tier == TIER0 and cfg.preempt and self.try_reclaim(job):
                continue
            if self.only.pop(job.id, None) is not None and job.preemptible \
                    and self.try_start(job):
                continue  # its type is full: it borrows idle GPUs of another
            if cfg.blocking is Blocking.STRICT:
                self.d.waiting[job.id] = Wait(R.RESOURCES, self.short_of(job))
                break
            open_groups: list[frozenset[str] | None] = []
            groups: list[frozenset[str] | None] = [None]
            if cfg.blocking is Blocking.RESERVE and \
                    len(self.reserved) < max(1, len(self.fleet.groups)):
                groups = self.groups(job)  # a model is left without a reservation
                open_groups = [g for g in groups if g not in self.reserved]
            if open_groups or not groups:
                found = self.reserve_for(job, self.future_free(), among_only=open_groups)
                at = None
                if found is not None:
                    res, among = found
                    self.reserved[among] = res
                    at = res.start
                    if self.reservation is None:
                        self.reservation = res
                        self.d.reserved = (job.id, at)
                unknown = False
                if explain and at is not None and not self.estimate_known(at):
                    at, unknown = None, True
                self.d.waiting[job.id] = Wait(  # the simulator (no explain) reads no words
                    R.RESOURCES, self.short_of(job) if explain else "", at, unknown)
                continue
            if explain:  # the simulator does not ask why, and this is most of a busy pass
                self.d.waiting[job.id] = self.blocked(job, tier)
        if explain:
            self.explain_rest()
        return self.d

    def held_back(self, job: QueuedJob) -> Wait | None:
        limit = self.cfg.user_gpu_limit
        if limit is not None and self.user_used[(job.team, job.user)] + job.total_gpus > limit:
            return Wait(R.USER_LIMIT, f"{job.user} may hold {limit} GPUs at once")
        if (job.array_id is not None and job.array_limit is not None
                and self.array_running[job.array_id] >= job.array_limit):
            return Wait(R.ARRAY_LIMIT, f"{job.array_limit} tasks of the array run at once")
        return None

    def _missed(self) -> tuple[list[Shape], list[Shape]]:
        if self._misses[0] != self.free.version:
            self._misses = (self.free.version, [], [])
        return self._misses[1], self._misses[2]

    @staticmethod
    def _known_miss(missed: list[Shape], gpus: int, nodes: int,
                    among: frozenset[str] | None) -> bool:
        for g, n, on in missed:  # noqa: SIM110 - a loop, not any(): called for most jobs of a pass
            if gpus >= g and nodes >= n and (on is None or on is among):
                return True
        return False

    def fits_free(self, gpus: int, nodes: int, among: frozenset[str] | None = None
                  ) -> tuple[str, ...] | None:
        missed = self._missed()[0]
        if self._known_miss(missed, gpus, nodes, among):
            return None
        chosen = self.free.best_fit(gpus, nodes, among)
        if chosen is None:
            missed.append((gpus, nodes, among))
        return chosen

    def groups(self, job: QueuedJob) -> list[frozenset[str] | None]:
        """The node sets to try for ``job``, in order (``[None]``: every node)."""
        kind = self.only.get(job.id) if self.only else None
        if kind is not None:
            key = (*ask_of(job), kind)
            found = self._within.get(key)
            if found is None:
                found = self._within[key] = [
                    g.nodes for g in self._accepted_groups(job)
                    if g.model and matches(kind, g.model)]
            return found
        if not self.fleet.mixed and not job.gpu_types and job.gpu_mem is None:
            return _EVERY_NODE  # one model, nothing asked: the common case, at no cost
        ask = (job.gpu_types, job.gpu_mem)
        found = self._sets.get(ask)
        if found is None:  # asked for each job the pass looks at, some several times
            choices = self.fleet.choices(job, self.queue.asked)
            found = self._sets[ask] = (_EVERY_NODE if choices is None
                                       else [g.nodes for g in choices])
        return found

    def try_start(self, job: QueuedJob) -> bool:
        groups = self.groups(job)
        found = None
        # What fits no node at all fits no group: one search over every node (its miss is
        # remembered for the shapes after) spares one per group on a busy mixed fleet.
        if len(groups) == 1 or self._fit(job, None) is not None:
            for among in groups:
                found = self._fit(job, among)
                if found is not None:
                    break
        if found is None:
            return False
        chosen, beside = found
        if beside is not None:
            for node in chosen:
                beside.extra[node] -= job.gpus
        for node in chosen:
            self.free.take(node, job.gpus)
        self.team_used[job.team] += job.total_gpus
        self.pool_used[self.pool(job.team, chosen)] += job.total_gpus
        self.user_used[(job.team, job.user)] += job.total_gpus
        if job.array_id is not None:
            self.array_running[job.array_id] += 1
        self.started.append((job, chosen))
        self.d.starts.append(Placement(job.id, chosen))
        return True

    def _fit(self, job: QueuedJob, among: frozenset[str] | None
             ) -> tuple[tuple[str, ...], Reservation | None] | None:
        """Where ``job`` may start now on the nodes ``among``: on the free GPUs, and once a
        job holds the reservation of these nodes, only on GPUs it will not need (then that
        reservation) or if it ends before it. Changes nothing but the caches of misses."""
        res = self.reserved.get(among) if self.reserved else None
        if res is None:
            chosen = self.fits_free(job.gpus, job.nodes, among)
            return None if chosen is None else (chosen, None)
        beside = self._missed()[1]
        if not self._known_miss(beside, job.gpus, job.nodes, among):
            chosen = self.free.best_fit_within(job.gpus, job.nodes, res.extra, among)
            if chosen is not None:
                return chosen, res
            beside.append((job.gpus, job.nodes, among))
        if self.now + self.limit(job) <= res.start:
            chosen = self.fits_free(job.gpus, job.nodes, among)
            return None if chosen is None else (chosen, None)
        return None

    def reserve_for(self, job: QueuedJob, future: dict[str, int],
                    victims: AbstractSet[int] | None = None,
                    among_only: list[frozenset[str] | None] | None = None
                    ) -> tuple[Reservation, frozenset[str] | None] | None:
        """The reservation of ``job`` and its group: the earliest start over the groups it
        accepts (``among_only``: over these); a shadow time per GPU model."""
        releases = self.releases(victims)
        best: tuple[Reservation, frozenset[str] | None] | None = None
        for among in self.groups(job) if among_only is None else among_only:
            on = future if among is None else {n: f for n, f in future.items() if n in among}
            found = reserve(job, on, releases, self.now)
            if found is not None and (best is None or found.start < best[0].start):
                best = (found, among)
        return best

    def try_reclaim(self, job: QueuedJob) -> bool:
        soon = {n: c - self.claimed_soon[n] for n, c in self.soon.items()
                if c > self.claimed_soon[n]}
        if not soon and not any(v > 0 for v in self.over_quota.values()):
            return False
        if self._candidates is None:
            self._candidates = preemption.by_node(self.running, self.over_quota,
                                                  self.cfg.starve_after_s, self.pool_of)
        state = (self.free.version, len(self.d.preemptions), len(self.d.waiting))
        if self._no_plan[0] != state:
            self._no_plan = (state, set())
        found, kept = None, None
        for among in self.groups(job):  # only GPUs of a model the job accepts are reclaimed
            shape = (job.gpus, job.nodes, among)
            if shape in self._no_plan[1]:
                continue  # the same shape found no plan, and nothing has changed since
            free = self.free.free if among is None else {
                n: c for n, c in self.free.free.items() if n in among}
            found = preemption.plan(job, free, soon, self._candidates, self.over_quota,
                                    self.victims, self.pool_of)
            res = self.reserved.get(among) if self.reserved else None
            kept = self.reservation_with(job, found, res, among) if found and res else None
            if found is None or (res is not None and kept is None):
                self._no_plan[1].add(shape)
                found = None
                continue
            break
        if found is None:
            return False
        if kept is not None:  # what the reserved job needs is the same or sooner: keep it so
            self.reserved[among] = kept
            if self.reservation is res:
                self.reservation = kept
                self.d.reserved = (kept.job_id, kept.start)
        for node in found.node_ids:  # promise the GPUs on these nodes to this job
            from_free = min(self.free.free[node], job.gpus)
            self.free.take(node, from_free)
            self.claimed_soon[node] += job.gpus - from_free
        for victim in found.victims:
            self.victims.add(victim.id)
            self.over_quota[self.pool_of[victim.id]] -= victim.total_gpus
            for node in victim.node_ids:
                if node in self.free.free:
                    self.soon[node] += victim.gpus
            self.d.preemptions.append(Preemption(
                victim.id, f"preempted to reclaim team {job.team}'s quota for job {job.id}",
                job.id))
        self.d.promised.append(Placement(job.id, found.node_ids))
        self.team_used[job.team] += job.total_gpus  # its quota room is spoken for
        self.pool_used[self.pool(job.team, found.node_ids)] += job.total_gpus
        detail = (f"reclaiming {sum(v.total_gpus for v in found.victims)} borrowed GPUs"
                  if found.victims else "GPUs being freed by preemption")
        self.d.waiting[job.id] = Wait(R.PREEMPTING, detail, self.now + self.cfg.preempt_grace_s)
        return True

    def reservation_with(self, job: QueuedJob, found: preemption.Plan, res: Reservation,
                         among: frozenset[str] | None) -> Reservation | None:
        """The reservation ``res`` of the nodes ``among`` again with ``job`` holding GPUs on
        ``found``'s nodes and its victims exiting, or None if that would start the reserved
        job later: a job further down the order may reclaim its quota, but not at the expense
        of the one ahead of it."""
        future = self.future_free()
        for node in found.node_ids:
            future[node] -= job.gpus
        victims = self.victims | {v.id for v in found.victims}
        again = self.reserve_for(self.queue.get(res.job_id), future, victims, [among])
        return again[0] if again is not None and again[0].start <= res.start else None

    def blocked(self, job: QueuedJob, tier: int) -> Wait:
        delayed = next((self.reserved[among] for among in self.groups(job)
                        if among in self.reserved
                        and self.fits_free(job.gpus, job.nodes, among) is not None), None)
        if delayed is not None:
            return Wait(R.PRIORITY, f"would delay job {delayed.job_id}, next in line")
        if self.cfg.fair_share and tier == TIER1:
            return self.quota_wait(job)
        return Wait(R.RESOURCES, self.short_of(job))

    def quota_wait(self, job: QueuedJob) -> Wait:
        kinds = self.typed.get(job.team)
        if kinds:
            held = ", ".join(f"{self.pool_used[(job.team, k)]:g} of {q:g} {k}"
                             for k, q in kinds.items())
            return Wait(R.QUOTA, f"team {job.team} holds {held} of its quota; no idle GPUs "
                                 "to borrow")
        quota = self.cfg.quotas.get(job.team, 0.0)
        return Wait(R.QUOTA, f"team {job.team} holds {self.team_used[job.team]} GPUs of its "
                             f"{quota:g}-GPU quota; no idle GPUs to borrow")

    def short_of(self, job: QueuedJob) -> str:
        shape = f"{job.nodes}x{job.gpus}" if job.nodes > 1 else f"{job.gpus}"
        groups = self.groups(job)
        if groups == [None]:
            return f"needs {shape} GPUs; {self.free.total} free" + self.drained_note(job)
        kind = " or ".join(job.gpu_types) if job.gpu_types else "GPUs of one model"
        if job.gpu_mem is not None:
            kind += f" with {job.gpu_mem / GIB:g} GiB"
        nodes = {n for g in groups if g is not None for n in g}
        free = sum(self.free.free.get(n, 0) for n in nodes)
        return (f"needs {shape} {kind}; {free} of {sum(self.total_of[n] for n in nodes)} "
                "free" + self.drained_note(job))

    def drained_note(self, job: QueuedJob) -> str:
        """``, 8 on drained nodes``: the GPUs of its kind an admin took out of service (a
        wait that said "0 of 0 free" left the user guessing)."""
        gpus = sum(n.total_gpus for n in self.drained
                   if not job.gpu_types or (n.gpu_model is not None and any(
                       matches(t, n.gpu_model) for t in job.gpu_types)))
        return f", {gpus} on drained nodes" if gpus else ""

    def explain_rest(self) -> None:
        """Reasons for the jobs the pass did not reach: one shared value per team, since the
        live scheduler explains 10,000 jobs a pass."""
        head = self.reservation.job_id if self.reservation is not None else None
        behind = Wait(R.PRIORITY, "jobs ahead of it come first"
                      + (f" (job {head} is next)" if head is not None else ""))
        by_team: dict[str, Wait] = {}
        started = {p.job_id for p in self.d.starts}
        waiting = self.d.waiting
        fair, quotas, used = self.cfg.fair_share, self.cfg.quotas, self.team_used
        limits = self.cfg.user_gpu_limit is not None
        for job in self.queue:
            if job.id in waiting or job.id in started:
                continue
            held = self.held_back(job) if limits or job.array_id is not None else None
            if held is not None:
                waiting[job.id] = held
            elif fair and used[job.team] + job.gpus * job.nodes > quotas.get(job.team, 0.0):
                if job.team not in by_team:
                    by_team[job.team] = self.quota_wait(job)
                waiting[job.id] = by_team[job.team]
            else:
                waiting[job.id] = behind

    # -- reservation inputs -------------------------------------------------------------------

    def estimate_known(self, at: float) -> bool:
        """Whether a reserved start at ``at`` rests on time limits people gave: one that waits
        for a job without a limit (assumed to run ``default_time_limit_s``) is a guess, and a
        date a day away would mislead more than "unknown"."""
        default = self.cfg.default_time_limit_s
        for r in self.running:
            if (r.time_limit_s is None and not r.terminating and r.id not in self.victims
                    and max(self.now, r.started_at + default) <= at):
                return False
        return all(j.time_limit_s is not None or self.now + default > at
                   for j, _ in self.started)

    def limit(self, job: QueuedJob | RunningJob) -> float:
        return job.time_limit_s or self.cfg.default_time_limit_s

    def future_free(self) -> dict[str, int]:
        claimed = self.claimed_soon
        if not claimed:  # the usual pass: nothing promised from GPUs being freed
            return dict(self.free.free)
        return {n: c - claimed.get(n, 0) for n, c in self.free.free.items()}

    def releases(self, victims: AbstractSet[int] | None = None) -> list[Release]:
        """When the GPUs of running jobs (and of those this pass started) come back, in time
        order; the same list until the pass starts or preempts another job."""
        if victims is None:
            state = (len(self.victims), len(self.started))
            if self._releases[0] != state:
                self._releases = (state, sorted(self._releases_with(self.victims)))
            return self._releases[1]
        return sorted(self._releases_with(victims))

    def _releases_with(self, victims: AbstractSet[int]) -> list[Release]:
        now, default = self.now, self.cfg.default_time_limit_s
        exiting = now + self.cfg.preempt_grace_s
        out: list[Release] = [
            (exiting if r.terminating or r.id in victims
             else max(now, r.started_at + (r.time_limit_s or default)), r.node_ids, r.gpus)
            for r in self.running
        ]
        out.extend((now + self.limit(j), nodes, j.gpus) for j, nodes in self.started)
        return out


def schedule(
    queue: PendingQueue | Sequence[QueuedJob],
    running: Sequence[RunningJob] | RunningSet,
    nodes: Sequence[NodeCapacity],
    *,
    now: float,
    config: PolicyConfig | None = None,
    usage: Usage | None = None,
    explain: bool = False,
) -> Decision:
    """One pass. ``nodes`` carry their free GPUs (total less what running jobs hold).
    ``explain`` gives every pending job that does not start a wait reason (the live scheduler
    shows them in ``clusterctl jobs``); without it only some get one (the simulator's case)."""
    if not isinstance(queue, PendingQueue):
        queue = PendingQueue(queue)
    if not isinstance(running, RunningSet):
        running = RunningSet(running)
    config = config or PolicyConfig()
    if not explain and _idle(queue, running, nodes, config):
        return Decision()
    return _Pass(queue, running, nodes, now, config, usage or Usage()).run(explain)


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
