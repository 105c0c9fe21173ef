"""Policies side by side: one replay of the same jobs per policy, with its figures, its waits
(for the CDF plot) and how long the replay took (the benchmarks' figure)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import baselines, engine, metrics
from clusterctl.simulate.trace import FleetGroup, TraceJob


@dataclass(frozen=True)
class PolicyRun:
    figures: metrics.Figures
    waits: np.ndarray
    seconds: float


def compare(jobs: list[TraceJob], fleet: Sequence[FleetGroup], quotas: dict[str, float],
            names: Iterable[str] = baselines.POLICIES,
            type_quotas: dict[str, dict[str, float]] | None = None,
            resume: engine.Resume = engine.Resume(),
            preempt_min_run_s: float = PolicyConfig.preempt_min_run_s) -> Iterable[PolicyRun]:
    """Each named policy in turn, with ``quotas`` (a typed team's: its types' sum),
    ``type_quotas``, what a preemption costs and when a job may be preempted (yielded as
    each replay ends)."""
    base = PolicyConfig(quotas=quotas, type_quotas=type_quotas or {},
                        preempt_min_run_s=preempt_min_run_s)
    for name in names:
        t0 = time.perf_counter()
        out = engine.replay(jobs, fleet, baselines.config(name, base), resume)
        seconds = time.perf_counter() - t0
        yield PolicyRun(metrics.figures(name, out, quotas), metrics.waits(out), seconds)
