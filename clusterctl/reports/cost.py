"""``report cost``: what each job, user, team or month cost on the owned hardware, the idle
capacity of the period as its own row (and the capacity before a machine was tracked as
another), and what the same GPU-hours would have cost in the cloud.

Capacity cost is GPU-milliseconds times each machine's rate (split where a machine's life ends),
summed as integers first, so for any period the rows add up exactly to the machines' capacity
cost plus the measured energy cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray

from clusterctl.reports.inputs import (
    MS_PER_HOUR,
    Inputs,
    Priced,
    energy_cost,
    model_keys,
    month_start,
    months,
    ms_iso,
)

BY = ("job", "user", "team", "gpu-type", "month", "service")
IDLE = "(idle)"
NOT_TRACKED = "(not tracked)"


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
    rest: CostRow | None = None
    """With a page: one row summing every row not on it."""
    row_count: int = 0
    """Rows in all (on the page or not)."""
    rows_total: CostRow = field(default_factory=lambda: CostRow("(all)"))
    """Every row summed (the idle row apart)."""
    not_tracked: CostRow = field(default_factory=lambda: CostRow(NOT_TRACKED))
    """The capacity of machines before their first sample: owned, so it costs, but nobody
    knows whether it was used; its own row, never spread over the jobs (``--loaded``)."""


@dataclass
class NodeArrays:
    """Per node of the table: when it was bought, its life ends and it was sold (nodes without
    an inventory record: bought never, so they add no capacity cost; unsold: sold never)."""

    purchased: NDArray[np.int64]
    life_end: NDArray[np.int64]
    sold: NDArray[np.int64]


NEVER = np.int64(2**62)


def node_arrays(nodes: list[str], machines: dict[str, Priced]) -> NodeArrays:
    purchased = [machines[n].purchased_ms if n in machines else NEVER for n in nodes]
    life_end = [machines[n].life_end_ms if n in machines else NEVER for n in nodes]
    sold = [machines[n].until(NEVER) if n in machines else NEVER for n in nodes]
    return NodeArrays(*(np.array(a, dtype=np.int64) for a in (purchased, life_end, sold)))


def split(s: NDArray[np.int64], e: NDArray[np.int64], node: NDArray[np.int64],
          arrays: NodeArrays) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Milliseconds of each row's ``[s, e]`` inside its node's life and after it (none before
    purchase or after the sale; nodes without a record: none at all)."""
    start = np.maximum(s, arrays.purchased[node])
    e = np.minimum(e, arrays.sold[node])
    life_end = arrays.life_end[node]
    in_life = np.clip(np.minimum(e, life_end) - start, 0, None)
    after = np.clip(e - np.maximum(start, life_end), 0, None)
    return in_life, after


def _segments(by: str, start: int, end: int) -> list[tuple[int, int, str | None]]:
    if by == "month":
        return [(a, b, ms_iso(month_start(a))[:7]) for a, b in months(start, end)]
    return [(start, end, None)]


def _idle(inputs: Inputs, node_life: np.ndarray, node_after: np.ndarray,
          node_energy: np.ndarray) -> tuple[CostRow, CostRow, Decimal]:
    """The rows of what no job held (capacity and energy) and of what was not tracked yet,
    and the capacity cost of the period: every priced machine over the whole period, less what
    jobs held of it. No job holds a node before it is tracked (``Inputs.tracked_from``), so
    the idle milliseconds are the tracked ones less the held."""
    period, machines, prices, t = inputs.period, inputs.machines, inputs.prices, inputs.table
    idle, unknown = CostRow(IDLE), CostRow(NOT_TRACKED)
    capacity = Decimal(0)
    index = {n: i for i, n in enumerate(t.nodes)}
    owned = list(machines)
    at_node = np.arange(len(owned), dtype=np.int64)
    arrays = node_arrays(owned, machines)
    start = np.full(len(owned), period.start_ms, np.int64)
    tracked = np.array([inputs.tracked_from(n) for n in owned], dtype=np.int64)
    avail = split(start, np.full(len(owned), period.end_ms, np.int64), at_node, arrays)
    before = split(start, tracked, at_node, arrays)
    for m, (node, priced) in enumerate(machines.items()):
        avail_life, avail_after = int(avail[0][m]), int(avail[1][m])
        gpus = priced.machine.gpus
        capacity += priced.cost(avail_life * gpus, avail_after * gpus)
        unknown_life, unknown_after = int(before[0][m]) * gpus, int(before[1][m]) * gpus
        unknown.gpu_ms += unknown_life + unknown_after
        unknown.capacity_cost += priced.cost(unknown_life, unknown_after)
        at = index.get(node)
        used_life = int(node_life[at]) if at is not None else 0
        used_after = int(node_after[at]) if at is not None else 0
        idle_life = avail_life * gpus - unknown_life - used_life
        idle_after = avail_after * gpus - unknown_after - used_after
        idle.gpu_ms += idle_life + idle_after
        idle.capacity_cost += priced.cost(idle_life, idle_after)
    energy_by_node: dict[str, float] = defaultdict(float)
    for (node, hour_ms), mj in inputs.node_energy_mj.items():
        if period.start_ms <= hour_ms < period.end_ms:
            energy_by_node[node] += mj
    for node, mj in energy_by_node.items():
        at = index.get(node)
        jobs_mj = float(node_energy[at]) if at is not None else 0.0
        idle.energy_mj += max(0.0, mj - jobs_mj)
    idle.energy_cost = energy_cost(idle.energy_mj, prices)

    return idle, unknown, capacity


def _warnings(nodes: list[str], machines: Mapping[str, Any]) -> list[str]:
    """What the figures leave out: nodes without a price, models without a cloud rate."""
    warnings = []
    unpriced = sorted({n for n in nodes if n not in machines})
    if unpriced:
        warnings.append(f"no hardware record for {', '.join(unpriced)}: their GPU-hours count "
                        "at no capacity cost (add them with `clusterctl hardware add`)")
    no_rate = sorted({p.gpu_model for p in machines.values() if p.cloud_rate is None})
    if no_rate:
        warnings.append(f"no cloud rate for {', '.join(no_rate)}: no cloud equivalent "
                        "(set one with `clusterctl hardware rate`)")

    return warnings


NOT_A_SERVICE = "(jobs)"
"""By service: the row of the jobs that are no service's replicas."""


def _keys(by: str, inputs: Inputs) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Each held interval's row index, the rows' labels, and each row's first interval
    (by month: every interval goes to its month's row, made per segment)."""
    t = inputs.table
    first = np.zeros(0, np.int64)
    key = np.zeros(len(t), np.int64)
    labels: list[str] = []
    if by in ("job", "user", "team"):
        keys_of = {"job": t.job, "user": t.user, "team": t.team}[by]
        uniq, first, key = np.unique(keys_of, return_index=True, return_inverse=True)
        labels = ([str(int(j)) for j in uniq] if by == "job" else
                  [(t.users if by == "user" else t.teams)[int(i)] for i in uniq])
    elif by == "gpu-type":
        key, labels = model_keys(inputs)
    elif by == "service":  # a model service's replicas, and every other job in one row
        names = np.array([inputs.service_of.get(int(j), NOT_A_SERVICE) for j in t.job],
                         dtype=object)
        uniq, first, key = np.unique(names, return_index=True, return_inverse=True)
        labels = [str(n) for n in uniq]
    return key, labels, first


def cost_report(inputs: Inputs, by: str = "job", loaded: bool = False,
                page: tuple[int, int] | None = None) -> CostReport:
    """With ``page`` (limit, offset), the rows are that page of the dearest first and
    ``rest`` sums the others. By job, only the page's rows are built (in Decimal, exactly):
    the jobs are ranked on float columns, and the rest is the exact total less the page."""
    if by not in BY:
        raise ValueError(by)
    period, machines, prices, t = inputs.period, inputs.machines, inputs.prices, inputs.table
    nodes = (node_arrays(t.nodes, machines) if len(t)
             else NodeArrays(*(np.zeros(0, np.int64) for _ in range(3))))
    n_nodes = len(t.nodes)
    length = t.end - t.start
    energy = np.nan_to_num(t.energy)
    key, labels, first = _keys(by, inputs)
    rows: dict[str, CostRow] = {}
    paged: _Columns | None = None
    node_life, node_after, node_energy = (np.zeros(n_nodes) for _ in range(3))
    for seg_start, seg_end, seg_label in _segments(by, period.start_ms, period.end_ms):
        s = np.maximum(t.start, seg_start)
        e = np.minimum(t.end, seg_end)
        held = np.clip(e - s, 0, None)
        if not held.any():
            continue
        in_life, after = split(s, np.maximum(e, s), t.node, nodes)
        share = np.divide(held, length, out=np.zeros(len(t)), where=length > 0)
        e_share = energy * share
        node_life += np.bincount(t.node, weights=in_life, minlength=n_nodes)
        node_after += np.bincount(t.node, weights=after, minlength=n_nodes)
        node_energy += np.bincount(t.node, weights=e_share, minlength=n_nodes)
        if seg_label is not None:  # a month: one row
            group = np.zeros(len(t), dtype=np.int64)
            names = [seg_label]
        else:
            group, names = key, labels
        combined = group * n_nodes + t.node
        size = len(names) * n_nodes
        sums = [np.bincount(combined, weights=w, minlength=size)
                for w in (in_life, after, held)]
        energy_by = np.bincount(group, weights=e_share, minlength=len(names))
        held_by = np.bincount(group, weights=held, minlength=len(names))
        if page is not None and by == "job":  # one segment: rows are built for the page only
            paged = _Columns(names, first, n_nodes, sums, energy_by, held_by)
            continue
        for k in np.flatnonzero(held_by):
            row = rows.get(names[k])
            if row is None:
                row = rows[names[k]] = CostRow(names[k])
                if by == "job":
                    row.labels = t.job_labels(int(first[k]))
            row.energy_mj += float(energy_by[k])
        for c in np.flatnonzero(sums[2]):
            kn, n = divmod(int(c), n_nodes)
            _charge(rows[names[kn]], machines.get(t.nodes[n]), int(sums[0][c]),
                    int(sums[1][c]), int(sums[2][c]))
    for row in rows.values():
        row.energy_cost = energy_cost(row.energy_mj, prices)

    idle, unknown, capacity = _idle(inputs, node_life, node_after, node_energy)

    warnings = _warnings(t.nodes, machines)

    if paged is not None:
        assert page is not None
        return _paged_report(by, paged, page, t, machines, prices, (idle, unknown), capacity,
                             loaded, warnings)
    ordered = sorted(rows.values(), key=lambda r: (-r.total_cost, r.key))
    if by == "month":
        ordered.sort(key=lambda r: r.key)
    held_ms = sum(r.gpu_ms for r in ordered)
    if loaded and held_ms:
        spread = idle.total_cost
        for r in ordered:
            r.idle_cost = spread * r.gpu_ms / held_ms
    total = _sum_rows(CostRow("(all)"), ordered)
    total_energy = total.energy_cost + idle.energy_cost
    shown, rest = (ordered, None) if page is None else top_rows(ordered, *page)
    return CostReport(by=by, rows=shown, idle=idle, capacity_cost=capacity,
                      energy_cost=total_energy, loaded=loaded and bool(held_ms),
                      warnings=warnings, rest=rest, row_count=len(ordered), rows_total=total,
                      not_tracked=unknown)


@dataclass
class _Columns:
    """By job over one segment, as arrays: per (job, node) cell the milliseconds in and after
    the machine's life and held (``sums``), per job the energy and GPU-ms."""

    names: list[str]
    first: NDArray[np.int64]
    n_nodes: int
    sums: list[NDArray[Any]]
    energy_by: NDArray[Any]
    held_by: NDArray[Any]


def _charge(row: CostRow, priced: Priced | None, life_ms: int, after_ms: int,
            gpu_ms: int) -> None:
    row.gpu_ms += gpu_ms
    if priced is not None:
        row.capacity_cost += priced.cost(life_ms, after_ms)
        if priced.cloud_rate is not None:
            row.cloud_equivalent += gpu_ms * priced.cloud_rate / MS_PER_HOUR


def _sum_rows(into: CostRow, rows: list[CostRow]) -> CostRow:
    for r in rows:
        into.gpu_ms += r.gpu_ms
        into.energy_mj += r.energy_mj
        into.capacity_cost += r.capacity_cost
        into.energy_cost += r.energy_cost
        into.idle_cost += r.idle_cost
        into.cloud_equivalent += r.cloud_equivalent
    return into


def _paged_report(by: str, c: _Columns, page: tuple[int, int], t: Any,
                  machines: dict[str, Priced], prices: Any, own: tuple[CostRow, CostRow],
                  capacity: Decimal, loaded: bool, warnings: list[str]) -> CostReport:
    """``own``: the idle and not-tracked rows."""
    limit, offset = page
    idle = own[0]
    n_nodes = c.n_nodes
    priced = [machines.get(n) for n in t.nodes]
    rate_life = np.array([float(p.rate_in_life) if p else 0.0 for p in priced])
    rate_after = np.array([float(p.rate_after_life) if p else 0.0 for p in priced])
    jobs = len(c.names)
    life = c.sums[0].reshape(jobs, n_nodes)
    after = c.sums[1].reshape(jobs, n_nodes)
    held = c.sums[2].reshape(jobs, n_nodes)
    per_mj = float(prices.tariff_per_kwh * prices.pue) / 3.6e9
    held_ms = int(c.held_by.sum())
    spread = float(idle.total_cost) / held_ms if loaded and held_ms else 0.0
    estimate = life @ rate_life + after @ rate_after + c.energy_by * per_mj + c.held_by * spread
    live = np.flatnonzero(c.held_by)
    # Dearest first, ties by the key as text (the order of the rows built in full).
    keys = np.array(c.names, dtype=object)[live]
    order = live[np.lexsort((keys.astype(str), -estimate[live]))]
    shown_ix = order[offset:offset + limit]

    def build(k: int) -> CostRow:
        row = CostRow(c.names[k], labels=t.job_labels(int(c.first[k])))
        row.energy_mj = float(c.energy_by[k])
        row.energy_cost = energy_cost(row.energy_mj, prices)
        for n in np.flatnonzero(held[k]):
            _charge(row, priced[n], int(life[k, n]), int(after[k, n]), int(held[k, n]))
        return row

    shown = [build(int(k)) for k in shown_ix]
    total = CostRow("(all)", energy_mj=float(c.energy_by.sum()))
    total.energy_cost = energy_cost(total.energy_mj, prices)
    for n, p in enumerate(priced):
        _charge(total, p, int(life[:, n].sum()), int(after[:, n].sum()), int(held[:, n].sum()))
    if loaded and held_ms:
        exact = idle.total_cost
        for r in shown:
            r.idle_cost = exact * r.gpu_ms / held_ms
        total.idle_cost = exact
    rest = None
    if len(live) > len(shown):
        rest = CostRow(f"({len(live) - len(shown)} more)")
        _sum_rows(rest, [total])
        for r in shown:
            rest.gpu_ms -= r.gpu_ms
            rest.energy_mj -= r.energy_mj
            rest.capacity_cost -= r.capacity_cost
            rest.energy_cost -= r.energy_cost
            rest.idle_cost -= r.idle_cost
            rest.cloud_equivalent -= r.cloud_equivalent
    return CostReport(by=by, rows=shown, idle=idle, capacity_cost=capacity,
                      energy_cost=total.energy_cost + idle.energy_cost,
                      loaded=loaded and bool(held_ms), warnings=warnings, rest=rest,
                      row_count=len(live), rows_total=total, not_tracked=own[1])


def accounted(report: CostReport) -> Decimal:
    """What the rows add up to: with ``--loaded`` the idle cost is inside them; the capacity
    not tracked is always a row of its own."""
    rows = report.rows_total.total_cost + report.not_tracked.total_cost
    return rows if report.loaded else rows + report.idle.total_cost


def top_rows(rows: list[CostRow], limit: int, offset: int = 0
             ) -> tuple[list[CostRow], CostRow | None]:
    """The page ``[offset, offset + limit)`` of the rows by total cost (dearest first), and
    one row summing all the others (None when there are none): a year has 100,000 jobs, and
    what people look for is where the money went."""
    ranked = sorted(rows, key=lambda r: (-r.total_cost, r.key))
    shown = ranked[offset:offset + limit]
    others = ranked[:offset] + ranked[offset + limit:]
    if not others:
        return shown, None
    return shown, _sum_rows(CostRow(f"({len(others)} more)"), others)
