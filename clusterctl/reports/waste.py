"""``report waste``: jobs that held GPUs and left them idle (under the site's utilization
threshold, default 10%, for an unbroken stretch of at least ``min_idle_s``, default 30 min), and
what those idle GPU-hours cost."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from clusterctl.reports.cost import node_arrays, split
from clusterctl.reports.inputs import Inputs

DEFAULT_MIN_IDLE_S = 1800.0


@dataclass
class WasteRow:
    job_id: int
    name: str
    user: str
    team: str
    gpus: int = 0
    held_ms: int = 0
    idle_s: float = 0.0
    longest_idle_s: float = 0.0
    covered_s: float = 0.0
    busy_s: float = 0.0
    cost: Decimal = Decimal(0)
    """Capacity cost of the idle GPU-hours."""

    @property
    def idle_gpu_hours(self) -> float:
        return self.idle_s / 3600

    @property
    def avg_utilization(self) -> float | None:
        return self.busy_s / self.covered_s if self.covered_s else None


@dataclass
class Reclaimed:
    """What idle reclaim gave back in the period: the jobs it ended and their GPUs, and the
    GPU-hours they would still have held up to their time limits, at their machines' capacity
    rate. A job without a time limit could have held its GPUs for ever: it is counted in
    ``jobs`` and ``gpus`` and in ``without_limit``, not in the hours."""

    jobs: int = 0
    gpus: int = 0
    gpu_ms: int = 0
    cost: Decimal = Decimal(0)
    without_limit: int = 0

    @property
    def gpu_hours(self) -> float:
        return self.gpu_ms / 3_600_000


@dataclass
class WasteReport:
    rows: list[WasteRow]
    threshold: float
    min_idle_s: float
    by_user: dict[str, Decimal]
    by_team: dict[str, Decimal]
    reclaimed: Reclaimed = field(default_factory=Reclaimed)

    @property
    def cost(self) -> Decimal:
        return sum((r.cost for r in self.rows), Decimal(0))


def is_wasteful(longest_idle_s: float, min_idle_s: float = DEFAULT_MIN_IDLE_S) -> bool:
    return longest_idle_s >= min_idle_s


def waste_report(inputs: Inputs, min_idle_s: float = DEFAULT_MIN_IDLE_S) -> WasteReport:
    t, p, machines = inputs.table, inputs.period, inputs.machines
    rows: list[WasteRow] = []
    if len(t):
        s = np.maximum(t.start, p.start_ms)
        e = np.maximum(np.minimum(t.end, p.end_ms), s)
        held = (e - s).astype(np.float64)
        length = t.end - t.start
        share = np.divide(held, length, out=np.zeros(len(t)), where=length > 0)
        in_life, after = split(s, e, t.node, node_arrays(t.nodes, machines))
        rate_life = np.array([float(machines[n].rate_in_life) if n in machines else 0.0
                              for n in t.nodes])
        rate_after = np.array([float(machines[n].rate_after_life) if n in machines else 0.0
                               for n in t.nodes])
        idle_fraction = np.clip(np.divide(t.idle * 1000, length, out=np.zeros(len(t)),
                                          where=length > 0), 0, 1)
        cost = (in_life * rate_life[t.node] + after * rate_after[t.node]) * idle_fraction
        read = ~np.isnan(t.util)
        covered = np.where(read, t.covered * share, 0.0)
        uniq, first, key = np.unique(t.job, return_index=True, return_inverse=True)
        n = len(uniq)
        longest = np.zeros(n)
        np.maximum.at(longest, key, np.where(held > 0, t.longest, 0.0))
        sums = [np.bincount(key, weights=x, minlength=n) for x in (
            held, t.idle * share, covered, np.nan_to_num(t.util) * covered, cost)]
        width = int(t.gpu.max()) + 1
        gpu_keys = np.unique(key * (len(t.nodes) * width) + t.node * width + t.gpu)
        gpus = np.bincount(gpu_keys // (len(t.nodes) * width), minlength=n)
        for k in np.flatnonzero((longest >= min_idle_s) & (sums[0] > 0)):
            f = int(first[k])
            job = int(uniq[k])
            labels = t.job_labels(f)
            rows.append(WasteRow(
                job, labels["name"], labels["user"], labels["team"],
                gpus=int(gpus[k]), held_ms=round(sums[0][k]), idle_s=float(sums[1][k]),
                longest_idle_s=float(longest[k]), covered_s=float(sums[2][k]),
                busy_s=float(sums[3][k]), cost=Decimal(repr(float(sums[4][k])))))
    rows.sort(key=lambda r: (-r.cost, -r.idle_s, r.job_id))
    by_user: dict[str, Decimal] = defaultdict(Decimal)
    by_team: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        by_user[r.user] += r.cost
        by_team[r.team] += r.cost
    return WasteReport(rows, inputs.waste_threshold, min_idle_s, dict(by_user), dict(by_team),
                       reclaimed(inputs))


def reclaimed(inputs: Inputs) -> Reclaimed:
    out = Reclaimed()
    for j in inputs.idle_ended:
        out.jobs += 1
        out.gpus += j.gpus
        if j.limit_end_ms is None:
            out.without_limit += 1
            continue
        ms = max(0, j.limit_end_ms - j.ended_ms)
        out.gpu_ms += ms * j.gpus
        priced = inputs.machines.get(j.node)
        if priced is not None and ms:
            in_life, after = split(np.array([j.ended_ms]), np.array([j.limit_end_ms]),
                                   np.array([0]), node_arrays([j.node], inputs.machines))
            out.cost += priced.cost(int(in_life[0]) * j.gpus, int(after[0]) * j.gpus)
    return out
