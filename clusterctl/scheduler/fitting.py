"""Fitting a job on GPUs now: the node groups a job may use, the search for free GPUs (best fit
on the fewest nodes, ``placement.py``) with a memory of the shapes that did not fit, the rule
that a job may pass a reservation only on GPUs it will not need or by ending before it, and the
start itself (the pass's tallies updated)."""

from __future__ import annotations

from clusterctl.gpu_types import matches
from clusterctl.scheduler.gpu_groups import ask_of
from clusterctl.scheduler.pass_state import NodeSet, PassState, Shape
from clusterctl.scheduler.records import Placement, QueuedJob
from clusterctl.scheduler.reservation import Reservation

EVERY_NODE: list[NodeSet] = [None]


def groups(p: PassState, job: QueuedJob) -> list[NodeSet]:
    """The node sets to try for ``job``, in order (``[None]``: every node)."""
    kind = p.within_type.get(job.id) if p.within_type else None
    if kind is not None:
        key = (*ask_of(job), kind)
        found = p.within_cache.get(key)
        if found is None:
            found = p.within_cache[key] = [
                g.nodes for g in p.accepted_groups(job) if g.model and matches(kind, g.model)]
        return found
    if not p.fleet.mixed and not job.gpu_types and job.gpu_mem is None:
        return EVERY_NODE  # one model, nothing asked: the common case, at no cost
    ask = (job.gpu_types, job.gpu_mem)
    found = p.groups_cache.get(ask)
    if found is None:  # asked for each job the pass looks at, some several times
        choices = p.fleet.choices(job, p.queue.asked)
        found = p.groups_cache[ask] = (EVERY_NODE if choices is None
                                       else [g.nodes for g in choices])
    return found


def _missed(p: PassState) -> tuple[list[Shape], list[Shape]]:
    if p.misses[0] != p.free.version:
        p.misses = (p.free.version, [], [])
    return p.misses[1], p.misses[2]


def _known_miss(missed: list[Shape], gpus: int, nodes: int, among: NodeSet) -> bool:
    for g, n, on in missed:  # noqa: SIM110 - a loop, not any(): called for most jobs of a pass
        if gpus >= g and nodes >= n and (on is None or on is among):
            return True
    return False


def fits_free(p: PassState, gpus: int, nodes: int, among: NodeSet = None
              ) -> tuple[str, ...] | None:
    """The nodes where ``nodes`` x ``gpus`` free GPUs are, among ``among``; None if none."""
    missed = _missed(p)[0]
    if _known_miss(missed, gpus, nodes, among):
        return None
    chosen = p.free.best_fit(gpus, nodes, among)
    if chosen is None:
        missed.append((gpus, nodes, among))
    return chosen


def try_start(p: PassState, job: QueuedJob) -> bool:
    """Start ``job`` now if it fits (a placement in the decision); False if it does not."""
    tried = groups(p, job)
    found = None
    # What fits no node at all fits no group: one search over every node (its miss is
    # remembered for the shapes after) spares one per group on a busy mixed fleet.
    if len(tried) == 1 or _fit(p, job, None) is not None:
        for among in tried:
            found = _fit(p, job, among)
            if found is not None:
                break
    if found is None:
        return False
    chosen, beside = found
    if beside is not None:
        for node in chosen:
            beside.extra[node] -= job.gpus
    for node in chosen:
        p.free.take(node, job.gpus)
    p.team_used[job.team] += job.total_gpus
    p.pool_used[p.pool(job.team, chosen)] += job.total_gpus
    p.user_used[(job.team, job.user)] += job.total_gpus
    if job.array_id is not None:
        p.array_running[job.array_id] += 1
    p.started.append((job, chosen))
    p.decision.starts.append(Placement(job.id, chosen))
    return True


def _fit(p: PassState, job: QueuedJob, among: NodeSet
         ) -> tuple[tuple[str, ...], Reservation | None] | None:
    """Where ``job`` may start now on the nodes ``among``: on the free GPUs, and once a
    job holds the reservation of these nodes, only on GPUs it will not need (then that
    reservation) or if it ends before it. Changes nothing but the caches of misses."""
    res = p.reserved.get(among) if p.reserved else None
    if res is None:
        chosen = fits_free(p, job.gpus, job.nodes, among)
        return None if chosen is None else (chosen, None)
    beside = _missed(p)[1]
    if not _known_miss(beside, job.gpus, job.nodes, among):
        chosen = p.free.best_fit_within(job.gpus, job.nodes, res.extra, among)
        if chosen is not None:
            return chosen, res
        beside.append((job.gpus, job.nodes, among))
    if p.now + p.limit(job) <= res.start:
        chosen = fits_free(p, job.gpus, job.nodes, among)
        return None if chosen is None else (chosen, None)
    return None
