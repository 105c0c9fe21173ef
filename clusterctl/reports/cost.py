"""``report cost``: what each job, user, team or month cost on the owned hardware, the idle
capacity of the period as its own row, and what the same GPU-hours would have cost in the cloud.

Capacity cost is GPU-milliseconds times each machine's rate (split where a machine's life ends),
summed as integers first, so for any period the rows add up exactly to the machines' capacity
cost plus the measured energy cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from clusterctl.reports.inputs import (
    MS_PER_HOUR,
    Held,
    Inputs,
    energy_cost,
    kwh,
    month_start,
    months,
    ms_iso,
)

BY = ("job", "user", "team", "month")
IDLE = "(idle)"


@dataclass
class CostRow:
    key: str
    gpu_ms: int = 0
    energy_mj: float = 0.0
    capacity_cost: Decimal = Decimal(0)
    energy_cost: Decimal = Decimal(0)
    idle_cost: Decimal = Decimal(0)
    """The row's share of the idle cost, with ``--loaded``."""
    cloud_equivalent: Decimal = Decimal(0)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def total_cost(self) -> Decimal:
        return self.capacity_cost + self.energy_cost + self.idle_cost

    @property
    def gpu_hours(self) -> float:
        return self.gpu_ms / MS_PER_HOUR


@dataclass
class CostReport:
    by: str
    rows: list[CostRow]
    idle: CostRow
    capacity_cost: Decimal
    """All machines' capacity cost over the period, held or not."""
    energy_cost: Decimal
    """All measured GPU energy of the period, jobs' and idle GPUs'."""
    loaded: bool
    warnings: list[str]


def _pieces(h: Held, by: str, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    if by == "month":
        for a, b in months(start, end):
            yield ms_iso(month_start(a))[:7], a, b
    elif by == "job":
        yield str(h.job_id), start, end
    else:
        yield (h.user if by == "user" else h.team), start, end


def cost_report(inputs: Inputs, by: str = "job", loaded: bool = False) -> CostReport:
    if by not in BY:
        raise ValueError(by)
    period, machines, prices = inputs.period, inputs.machines, inputs.prices
    # (key, node) -> [ms in life, ms after life, all ms]
    spans: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    node_spans: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows: dict[str, CostRow] = {}
    node_job_energy: dict[str, float] = defaultdict(float)
    for h in inputs.held:
        start, end = period.clip(h.start_ms, h.end_ms)
        if end <= start:
            continue
        priced = machines.get(h.node)
        for key, a, b in _pieces(h, by, start, end):
            row = rows.get(key)
            if row is None:
                row = rows[key] = CostRow(key)
                if by == "job":
                    row.labels = {"name": h.job_name, "user": h.user, "team": h.team}
            span = spans[(key, h.node)]
            in_life, after = priced.split(a, b) if priced else (0, 0)
            span[0] += in_life
            span[1] += after
            span[2] += b - a
            node_spans[h.node][0] += in_life
            node_spans[h.node][1] += after
            if h.energy_mj is not None:
                e = h.energy_mj * h.share(a, b)
                row.energy_mj += e
                node_job_energy[h.node] += e

    warnings = []
    for (key, node), (in_life, after, total) in spans.items():
        row = rows[key]
        row.gpu_ms += total
        priced = machines.get(node)
        if priced is not None:
            row.capacity_cost += priced.cost(in_life, after)
            if priced.cloud_rate is not None:
                row.cloud_equivalent += total * priced.cloud_rate / MS_PER_HOUR
    for row in rows.values():
        row.energy_cost = energy_cost(row.energy_mj, prices)

    idle = CostRow(IDLE)
    capacity = Decimal(0)
    for node, priced in machines.items():
        avail_life, avail_after = priced.split(period.start_ms, period.end_ms)
        g = priced.machine.gpus
        capacity += priced.cost(avail_life * g, avail_after * g)
        used_life, used_after = node_spans.get(node, (0, 0))
        idle_life, idle_after = avail_life * g - used_life, avail_after * g - used_after
        idle.gpu_ms += idle_life + idle_after
        idle.capacity_cost += priced.cost(idle_life, idle_after)
    energy_by_node: dict[str, float] = defaultdict(float)
    for (node, hour_ms), mj in inputs.node_energy_mj.items():
        if period.start_ms <= hour_ms < period.end_ms:
            energy_by_node[node] += mj
    for node, mj in energy_by_node.items():
        idle.energy_mj += max(0.0, mj - node_job_energy.get(node, 0.0))
    idle.energy_cost = energy_cost(idle.energy_mj, prices)

    unpriced = sorted({h.node for h in inputs.held if h.node not in machines})
    if unpriced:
        warnings.append(f"no hardware record for {', '.join(unpriced)}: their GPU-hours count "
                        "at no capacity cost (add them with `clusterctl hardware add`)")
    no_rate = sorted({p.gpu_model for p in machines.values() if p.cloud_rate is None})
    if no_rate:
        warnings.append(f"no cloud rate for {', '.join(no_rate)}: no cloud equivalent "
                        "(set one with `clusterctl hardware rate`)")

    ordered = sorted(rows.values(), key=lambda r: (-r.total_cost, r.key))
    if by == "month":
        ordered.sort(key=lambda r: r.key)
    held_ms = sum(r.gpu_ms for r in ordered)
    if loaded and held_ms:
        spread = idle.total_cost
        for r in ordered:
            r.idle_cost = spread * r.gpu_ms / held_ms
    total_energy = sum((r.energy_cost for r in ordered), idle.energy_cost)
    return CostReport(by=by, rows=ordered, idle=idle, capacity_cost=capacity,
                      energy_cost=total_energy, loaded=loaded and bool(held_ms),
                      warnings=warnings)


def accounted(report: CostReport) -> Decimal:
    """What the rows add up to: with ``--loaded`` the idle cost is inside them."""
    rows = sum((r.total_cost for r in report.rows), Decimal(0))
    return rows if report.loaded else rows + report.idle.total_cost


__all__ = ["BY", "IDLE", "CostReport", "CostRow", "accounted", "cost_report", "kwh"]
