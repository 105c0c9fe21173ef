"""``report waste``: jobs that held GPUs and left them idle (under the site's utilization
threshold, default 10%, for an unbroken stretch of at least ``min_idle_s``, default 30 min), and
what those idle GPU-hours cost."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from clusterctl.reports.inputs import Inputs

DEFAULT_MIN_IDLE_S = 1800.0


@dataclass
class WasteRow:
    job_id: int
    name: str
    user: str
    team: str
    gpus: set[tuple[str, int]] = field(default_factory=set)
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
class WasteReport:
    rows: list[WasteRow]
    threshold: float
    min_idle_s: float
    by_user: dict[str, Decimal]
    by_team: dict[str, Decimal]

    @property
    def cost(self) -> Decimal:
        return sum((r.cost for r in self.rows), Decimal(0))


def is_wasteful(longest_idle_s: float, min_idle_s: float = DEFAULT_MIN_IDLE_S) -> bool:
    return longest_idle_s >= min_idle_s


def waste_report(inputs: Inputs, min_idle_s: float = DEFAULT_MIN_IDLE_S) -> WasteReport:
    jobs: dict[int, WasteRow] = {}
    p = inputs.period
    for h in inputs.held:
        a, b = p.clip(h.start_ms, h.end_ms)
        if b <= a:
            continue
        row = jobs.get(h.job_id)
        if row is None:
            row = jobs[h.job_id] = WasteRow(h.job_id, h.job_name, h.user, h.team)
        share = h.share(a, b)
        row.gpus.add((h.node, h.gpu_index))
        row.held_ms += b - a
        row.idle_s += h.idle_s * share
        row.longest_idle_s = max(row.longest_idle_s, h.longest_idle_s)
        if h.util_avg is not None:
            row.covered_s += h.covered_s * share
            row.busy_s += h.util_avg * h.covered_s * share
        priced = inputs.machines.get(h.node)
        if priced is not None and h.length_ms:
            idle_fraction = Decimal(repr(min(1.0, h.idle_s * 1000 / h.length_ms)))
            row.cost += priced.cost(*priced.split(a, b)) * idle_fraction
    rows = sorted((r for r in jobs.values() if is_wasteful(r.longest_idle_s, min_idle_s)),
                  key=lambda r: (-r.cost, -r.idle_s, r.job_id))
    by_user: dict[str, Decimal] = defaultdict(Decimal)
    by_team: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        by_user[r.user] += r.cost
        by_team[r.team] += r.cost
    return WasteReport(rows, inputs.waste_threshold, min_idle_s, dict(by_user), dict(by_team))

