"""Which borrowed GPUs to reclaim for a job of a team under its quota.

Only jobs of teams above their quota are candidates (they run on borrowed GPUs), never a
``--no-preempt`` job, and only where the victim's team stays at or above its quota afterwards:
only borrowed GPUs are reclaimed, and a team is never pushed below its guarantee (which would let
it reclaim in turn from a third), and never a job that has run less than the minimum run time in
its attempt. On each node the newest candidates go first (the least work lost); the job's nodes
are those where the fewest GPUs must be preempted.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Container, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusterctl.scheduler.records import QueuedJob, RunningJob
from clusterctl.scheduler.running import RunningSet


@dataclass(frozen=True)
class Plan:
    node_ids: tuple[str, ...]
    victims: tuple[RunningJob, ...]


def by_node(running: Iterable[RunningJob], over_quota: Mapping[Any, float],
            starve_after_s: float | None = None, pools: Mapping[int, Hashable] | None = None,
            started_by: float = math.inf) -> dict[str, list[RunningJob]]:
    """The preemption candidates on each node, newest first (built once per pass). A job that
    started only after ``starve_after_s`` of waiting is not one: preempted, it would starve
    again, over and over; nor is one that started after ``started_by`` (now less the
    minimum run time). ``over_quota`` is keyed by each job's quota pool (``pools``: by job
    id; without it, its team)."""
    on_node: dict[str, list[RunningJob]] = {}
    for r in sorted(running, key=lambda r: (-r.started_at, -r.id)):
        if r.started_at <= started_by and candidate(r, over_quota, starve_after_s,
                                                    _pool(r, pools)):
            for node in set(r.node_ids):
                on_node.setdefault(node, []).append(r)
    return on_node


def first_grown(running: Iterable[RunningJob], over_quota: Mapping[Any, float],
                starve_after_s: float | None, pools: Mapping[int, Hashable] | None,
                started_by: float, min_run_s: float) -> float | None:
    """When the first candidate kept out by the minimum run time (started after
    ``started_by``) may be preempted; None if there is none."""
    return min((r.started_at + min_run_s for r in running if r.started_at > started_by
                and candidate(r, over_quota, starve_after_s, _pool(r, pools))),
               default=None)


def _pool(r: RunningJob, pools: Mapping[int, Hashable] | None) -> Hashable:
    return r.team if pools is None else pools[r.id]


def candidate(r: RunningJob, over_quota: Mapping[Any, float],
              starve_after_s: float | None, pool: Hashable | None = None) -> bool:
    """May ``r`` be preempted at all: preemptible, not already ending, its pool (its team
    unless given) above its quota, and not a job that only started after starving."""
    starved = (starve_after_s is not None and r.submitted_at is not None
               and r.started_at - r.submitted_at >= starve_after_s)
    return r.preemptible and not r.terminating and not starved \
        and over_quota.get(r.team if pool is None else pool, 0.0) > 0


def plan(
    job: QueuedJob,
    free: Mapping[str, int],
    soon: Mapping[str, int],
    on_node: Mapping[str, Sequence[RunningJob]],
    over_quota: Mapping[Any, float],
    taken: Container[int] = (),
    pools: Mapping[int, Hashable] | None = None,
) -> Plan | None:
    """Nodes for ``job`` and the jobs to preempt there, or None if reclaiming cannot make room.

    ``soon`` holds GPUs already being freed (terminating jobs) and not promised to anyone;
    ``on_node`` the candidates (``by_node``), less ``taken`` (chosen earlier in the pass);
    ``over_quota`` how many GPUs each team holds beyond its quota, less what is already being
    reclaimed from it (keyed as :func:`by_node` says). An empty ``victims`` means the GPUs
    coming free suffice."""
    options: list[tuple[int, int, str, list[RunningJob]]] = []
    for node, count in free.items():
        have = count + soon.get(node, 0)
        need = job.gpus - have
        victims: list[RunningJob] = []
        spent: dict[Hashable, float] = {}
        for r in on_node.get(node, ()) if need > 0 else ():
            pool = _pool(r, pools)
            if r.id in taken or over_quota[pool] - spent.get(pool, 0.0) < r.total_gpus:
                continue
            victims.append(r)
            spent[pool] = spent.get(pool, 0.0) + r.total_gpus
            need -= r.gpus
            if need <= 0:
                break
        if need <= 0:
            options.append((sum(v.total_gpus for v in victims), count, node, victims))
    if len(options) < job.nodes:
        return None
    options.sort(key=lambda o: (o[0], o[1], o[2]))
    chosen = options[: job.nodes]
    victims_all: dict[int, RunningJob] = {}
    for *_, victims in chosen:
        victims_all.update((v.id, v) for v in victims)
    spent_all: dict[Hashable, float] = {}
    for v in victims_all.values():
        pool = _pool(v, pools)
        spent_all[pool] = spent_all.get(pool, 0.0) + v.total_gpus
    if any(gpus > over_quota[pool] for pool, gpus in spent_all.items()):
        return None  # each node was checked alone; together they would take too much
    return Plan(tuple(node for *_, node, _ in chosen), tuple(victims_all.values()))


def reclaim_possible(teams: Collection[str], running: RunningSet,
                     quotas: Mapping[str, float], starve_after_s: float | None) -> bool:
    """Could a pass reclaim anything for jobs of these ``teams``: one of them has a GPU of its
    quota left, and some running job could be preempted (a preemptible borrower, counted as
    :func:`by_node` counts them)."""
    used = running.team_used
    if all(quotas.get(t, 0.0) - used.get(t, 0) < 1 for t in teams):
        return False
    kept = dict(used)  # less what is already being reclaimed, as the pass counts it
    for r in running.terminating.values():
        kept[r.team] -= r.total_gpus
    over = {t: k - quotas.get(t, 0.0) for t, k in kept.items()}
    if not any(v > 0 for v in over.values()):
        return False  # no team borrows: no running job is a candidate
    return any(candidate(r, over, starve_after_s) for r in running)
