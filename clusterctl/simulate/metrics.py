"""Figures of a replay, side by side for each policy. Pure arithmetic over the outcome.

- wait: first start less submit; JCT (job completion time): end less submit, averaged and at
  its 50th, 95th and 99th percentiles;
- bounded slowdown: mean of max(1, JCT / max(run time, 10 s)) (Feitelson's bound, so that
  seconds-long jobs do not dominate);
- utilization: GPU-seconds held over GPUs x makespan;
- what preemption cost: GPU-hours of work not kept (since the last checkpoint) and of restores,
  and their share of the GPU-hours held;
- each team's quota satisfaction: ∫ min(quota, held) / ∫ min(quota, demand), i.e. how much of
  what its guarantee entitled it to (its quota, or its demand when that was less) it got; Jain's
  index over those (1 = every team got the same fraction of its due).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clusterctl.gpu_types import matches
from clusterctl.simulate.engine import JobRecord, Outcome

BOUND_S = 10.0


@dataclass(frozen=True)
class TeamFigures:
    team: str
    quota: float
    quota_share: float
    gpu_share: float
    """Its share of all GPU-hours held."""
    satisfaction: float
    avg_wait_s: float
    jobs: int


@dataclass(frozen=True)
class TypeFigures:
    """One GPU model of a mixed fleet: the jobs that asked for it (a type that names it, such
    as ``4090`` for ``RTX-4090``) and how they waited, and how busy its GPUs were. ``any``:
    the jobs that named no type; a type that names several models has a row of its own."""

    gpu_type: str
    jobs: int
    avg_wait_s: float
    p95_wait_s: float
    gpus: int
    """GPUs of this model in the fleet (0 for ``any``, or a type asked that names a family)."""
    utilization: float


@dataclass(frozen=True)
class Figures:
    policy: str
    jobs: int
    unfinished: int
    avg_wait_s: float
    p50_wait_s: float
    p95_wait_s: float
    p99_wait_s: float
    avg_jct_s: float
    p50_jct_s: float
    p95_jct_s: float
    p99_jct_s: float
    bounded_slowdown: float
    makespan_s: float
    utilization: float
    jain: float
    preemptions: int
    demotions: int
    """Of the preemptions, the jobs demoted by attained service."""
    lost_gpu_h: float
    """GPU-hours preemptions cost (work not kept since the last checkpoint, and restores)."""
    lost_share: float
    """Of the GPU-hours held."""
    teams: list[TeamFigures]
    types: list[TypeFigures]
    """Per GPU type, on a fleet of more than one model (empty otherwise)."""


def jain(values: list[float]) -> float:
    if not values or not any(values):
        return 1.0
    x = np.asarray(values, dtype=float)
    return float(x.sum() ** 2 / (len(x) * (x**2).sum()))


def figures(policy: str, out: Outcome, quotas: dict[str, float]) -> Figures:
    done = [r for r in out.records if r.end is not None and r.first_start is not None]
    submit = np.array([r.job.submit_s for r in done])
    start = np.array([r.first_start for r in done], dtype=float)
    end = np.array([r.end for r in done], dtype=float)
    run = np.array([r.job.run_s for r in done])
    wait = start - submit
    jct = end - submit
    slowdown = np.maximum(1.0, jct / np.maximum(run, BOUND_S))
    makespan = out.last_end - out.first_submit
    teams = sorted({r.job.team for r in out.records})
    total_quota = sum(quotas.get(t, 0.0) for t in teams) or 1.0
    total_held = sum(out.held_gpu_s.values()) or 1.0
    per_team = []
    for team in teams:
        waits = [w for r, w in zip(done, wait, strict=True) if r.job.team == team]
        owed = out.quota_owed_gpu_s.get(team, 0.0)
        per_team.append(TeamFigures(
            team, quotas.get(team, 0.0), quotas.get(team, 0.0) / total_quota,
            out.held_gpu_s.get(team, 0.0) / total_held,
            out.quota_given_gpu_s.get(team, 0.0) / owed if owed > 0 else 1.0,
            float(np.mean(waits)) if waits else 0.0,
            sum(1 for r in out.records if r.job.team == team)))

    def pct(q: float, of: np.ndarray = wait) -> float:
        return float(np.percentile(of, q)) if len(of) else 0.0

    return Figures(
        policy=policy, jobs=len(out.records), unfinished=len(out.records) - len(done),
        avg_wait_s=float(wait.mean()) if len(wait) else 0.0,
        p50_wait_s=pct(50), p95_wait_s=pct(95), p99_wait_s=pct(99),
        avg_jct_s=float(jct.mean()) if len(jct) else 0.0,
        p50_jct_s=pct(50, jct), p95_jct_s=pct(95, jct), p99_jct_s=pct(99, jct),
        bounded_slowdown=float(slowdown.mean()) if len(slowdown) else 0.0,
        makespan_s=makespan,
        utilization=out.busy_gpu_s / (out.gpus * makespan) if makespan > 0 else 0.0,
        jain=jain([t.satisfaction for t in per_team]),
        preemptions=out.preemptions, demotions=out.demotions, lost_gpu_h=out.lost_gpu_s / 3600,
        lost_share=out.lost_gpu_s / out.busy_gpu_s if out.busy_gpu_s else 0.0, teams=per_team,
        types=_per_type(done, wait, out, makespan),
    )


def _per_type(done: list[JobRecord], wait: np.ndarray, out: Outcome,
              makespan: float) -> list[TypeFigures]:
    models = [m for m in sorted(out.gpus_by_model) if m]
    if len(out.gpus_by_model) <= 1 and not any(r.job.gpu_type for r in out.records):
        return []
    resolved: dict[str | None, str] = {None: "any"}

    def row_of(asked: str | None) -> str:
        """The fleet's model a type names, where it names one (``4090``: ``RTX-4090``)."""
        if asked not in resolved:
            named = [m for m in models if matches(asked or "", m)]
            resolved[asked] = named[0] if len(named) == 1 else asked or "any"
        return resolved[asked]

    by_type: dict[str, list[float]] = {}
    for r, w in zip(done, wait, strict=True):
        by_type.setdefault(row_of(r.job.gpu_type), []).append(float(w))
    counts: dict[str, int] = {}
    for r in out.records:
        counts[row_of(r.job.gpu_type)] = counts.get(row_of(r.job.gpu_type), 0) + 1
    names = models + sorted(t for t in counts if t not in models and t != "any") + ["any"]
    rows = []
    for name in names:
        waits = by_type.get(name, [])
        gpus = out.gpus_by_model.get(name, 0)
        rows.append(TypeFigures(
            name, counts.get(name, 0), float(np.mean(waits)) if waits else 0.0,
            float(np.percentile(waits, 95)) if waits else 0.0, gpus,
            out.busy_by_model.get(name, 0.0) / (gpus * makespan)
            if gpus and makespan > 0 else 0.0))
    return rows


def waits(out: Outcome) -> np.ndarray:
    return np.array([r.first_start - r.job.submit_s for r in out.records
                     if r.first_start is not None])
