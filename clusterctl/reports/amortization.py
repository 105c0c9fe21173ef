"""``report amortization``: the rent-versus-buy ledger per machine and in total.

Cash view, as a team deciding whether buying paid off would count it: owning costs the price
net of the expected resale (committed on the purchase date), plus the fixed fees and measured
energy to date; renting would have cost the used GPU-hours at the cloud rate. The machine has
paid for itself on the day the cloud equivalent reaches the owned cost. The book view is shown
beside it: depreciation to date, P(1 - r) spread over the life (PRODUCT.md's cost model).

A sold machine's ledger closes on its sale: owning cost the price less what the sale really
fetched, plus fees and energy to the sale; its projection is no longer a question (it paid for
itself or it never will). The book view shows the sale against the book value: the gain or loss.

The projection runs the last 30 days forward: each day adds their average cloud equivalent
and their average fees and energy. If a day of use is worth no more than a day of fees and
energy, the machine never pays for itself at that utilization.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from clusterctl.cost.model import depreciation_per_hour, fixed_per_hour, sale_gain
from clusterctl.reports.inputs import (
    MS_PER_DAY,
    MS_PER_HOUR,
    Inputs,
    Priced,
    energy_cost,
)
from clusterctl.reports.table import spread

TRAILING_MS = 30 * MS_PER_DAY
HORIZON_DAYS = 20 * 365


@dataclass
class Ledger:
    key: str
    gpu_model: str = ""
    gpus: int = 0
    price: Decimal = Decimal(0)
    net_price: Decimal = Decimal(0)
    """Price less the expected resale, or less the actual sale price once sold."""
    purchased_ms: int = 0
    sold_ms: int | None = None
    sold_for: Decimal | None = None
    sale_gain: Decimal | None = None
    """Sale price less the book value at the sale (price less depreciation to it)."""
    depreciation: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    energy_mj: float = 0.0
    energy_cost: Decimal = Decimal(0)
    used_ms: int = 0
    available_ms: int = 0
    cloud_equivalent: Decimal = Decimal(0)
    trailing_used_ms: int = 0
    trailing_available_ms: int = 0
    day_cloud: Decimal = Decimal(0)
    """Cloud equivalent a day adds at the trailing 30 days' use."""
    day_owned: Decimal = Decimal(0)
    """Fees and energy a day adds at the trailing 30 days' rate."""
    break_even_ms: int | None = None
    break_even_reached: bool = False
    series: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)
    """(day, cumulative owned cost, cumulative cloud equivalent) from purchase to now."""

    @property
    def owned_cost(self) -> Decimal:
        return self.net_price + self.fees + self.energy_cost

    @property
    def book_value(self) -> Decimal:
        return self.price - self.depreciation

    @property
    def net_saving(self) -> Decimal:
        return self.cloud_equivalent - self.owned_cost

    @property
    def utilization(self) -> float | None:
        return self.used_ms / self.available_ms if self.available_ms else None

    @property
    def trailing_utilization(self) -> float | None:
        return (self.trailing_used_ms / self.trailing_available_ms
                if self.trailing_available_ms else None)

    @property
    def used_gpu_hours(self) -> float:
        return self.used_ms / MS_PER_HOUR


@dataclass
class AmortizationReport:
    machines: list[Ledger]
    total: Ledger
    now_ms: int
    models: list[Ledger] = field(default_factory=list)
    """One ledger per GPU model, where the fleet has more than one: does owning the H100s
    pay, and the 4090s?"""


def _project(ledger: Ledger, now_ms: int) -> None:
    """When did (or will) the cloud equivalent catch up with the owned cost? A sold machine
    has no future to project."""
    if ledger.net_saving >= 0:
        when = now_ms
        for day, owned, cloud in reversed(ledger.series):
            if cloud < owned:
                break
            when = day
        ledger.break_even_ms, ledger.break_even_reached = when, True
        return
    if ledger.sold_ms is not None:
        return
    gap = ledger.owned_cost - ledger.cloud_equivalent
    gain = ledger.day_cloud - ledger.day_owned
    if gain > 0 and gap / gain <= HORIZON_DAYS:
        ledger.break_even_ms = now_ms + int(gap / gain * MS_PER_DAY)


def _machine(p: Priced, inputs: Inputs, used_by_day: dict[int, int],
             energy_by_day: dict[int, float]) -> Ledger:
    m, now = p.machine, inputs.now_ms
    bought = p.purchased_ms
    end = max(bought, p.until(now))  # the ledger runs to now, or closes at the sale
    sold = end < now
    net = m.price - (m.sold_for or Decimal(0)) if sold else m.price * (1 - m.resale)
    lg = Ledger(p.node, p.gpu_model, m.gpus, m.price, net, bought)
    alive_ms = end - bought
    in_life = max(0, min(end, p.life_end_ms) - bought)
    lg.depreciation = depreciation_per_hour(m) * in_life / MS_PER_HOUR
    lg.fees = fixed_per_hour(m) * alive_ms / MS_PER_HOUR
    lg.available_ms = m.gpus * alive_ms
    if sold:
        lg.sold_ms, lg.sold_for, lg.sale_gain = end, m.sold_for, sale_gain(m)
    rate = p.cloud_rate or Decimal(0)
    trailing_from = max(bought, end - TRAILING_MS)
    lg.trailing_available_ms = m.gpus * (end - trailing_from)

    owned = lg.net_price
    cloud = Decimal(0)
    fee_per_ms = fixed_per_hour(m) / MS_PER_HOUR
    day = bought // MS_PER_DAY * MS_PER_DAY
    trailing_energy = 0.0
    while day < now:  # past a sale the series runs on flat, so the total adds up every day
        start, stop = max(day, bought), min(day + MS_PER_DAY, end)
        if stop > start:
            used = used_by_day.get(day, 0)
            mj = energy_by_day.get(day, 0.0)
            lg.used_ms += used
            lg.energy_mj += mj
            owned += fee_per_ms * (stop - start) + energy_cost(mj, inputs.prices)
            cloud += rate * used / MS_PER_HOUR
            if stop > trailing_from:
                part = (stop - max(start, trailing_from)) / (stop - start)
                lg.trailing_used_ms += int(used * part)
                trailing_energy += mj * part
        lg.series.append((day, owned, cloud))
        day += MS_PER_DAY
    lg.energy_cost = energy_cost(lg.energy_mj, inputs.prices)
    lg.cloud_equivalent = rate * lg.used_ms / MS_PER_HOUR
    if not sold:
        trailing_days = Decimal(max(1, end - trailing_from)) / MS_PER_DAY
        lg.day_cloud = rate * lg.trailing_used_ms / MS_PER_HOUR / trailing_days
        lg.day_owned = (fixed_per_hour(m) * 24
                        + energy_cost(trailing_energy, inputs.prices) / trailing_days)
    _project(lg, now)
    return lg


def amortization_report(inputs: Inputs) -> AmortizationReport:
    """Per machine of the inventory from its purchase to ``inputs.now_ms`` or its sale (the
    period is ignored: the ledger always runs from purchase)."""
    now = inputs.now_ms
    t = inputs.table
    used: dict[str, dict[int, int]] = defaultdict(dict)
    if len(t):
        s, e = t.start, np.minimum(t.end, now)
        origin = int(s.min()) // MS_PER_DAY * MS_PER_DAY
        days = max(1, -(-(int(e.max()) - origin) // MS_PER_DAY))
        for n, node in enumerate(t.nodes):
            priced = inputs.machines.get(node)
            e_n = np.minimum(e, priced.until(now)) if priced else e
            mine = (t.node == n) & (e_n > s)
            held = (e_n[mine] - s[mine]).astype(np.float64)
            per_day = spread(s[mine], e_n[mine], held, origin, MS_PER_DAY, days)
            used[node] = {origin + d * MS_PER_DAY: round(per_day[d])
                          for d in np.flatnonzero(per_day)}
    energy: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for (node, hour), mj in inputs.node_energy_mj.items():
        if hour < now:
            energy[node][hour // MS_PER_DAY * MS_PER_DAY] += mj
    machines = [_machine(p, inputs, used[node], energy[node])
                for node, p in sorted(inputs.machines.items())]
    by_model: dict[str, list[Ledger]] = defaultdict(list)
    for m in machines:
        by_model[m.gpu_model].append(m)
    models = [_total(ms, now, key=f"all {model}") for model, ms in sorted(by_model.items())]
    return AmortizationReport(machines, _total(machines, now), now,
                              models if len(models) > 1 else [])


def _total(machines: list[Ledger], now: int, key: str = "total") -> Ledger:
    t = Ledger(key, gpu_model=", ".join(sorted({m.gpu_model for m in machines})))
    if not machines:
        return t
    t.purchased_ms = min(m.purchased_ms for m in machines)
    for m in machines:
        t.gpus += m.gpus
        for name in ("price", "net_price", "depreciation", "fees", "energy_cost",
                     "cloud_equivalent", "day_cloud", "day_owned"):
            setattr(t, name, getattr(t, name) + getattr(m, name))
        if m.sale_gain is not None:
            t.sale_gain = (t.sale_gain or Decimal(0)) + m.sale_gain
        for name in ("energy_mj", "used_ms", "available_ms", "trailing_used_ms",
                     "trailing_available_ms"):
            setattr(t, name, getattr(t, name) + getattr(m, name))
    days: dict[int, list[Decimal]] = {}
    for m in machines:
        for d, o, c in m.series:
            acc = days.setdefault(d, [Decimal(0), Decimal(0)])
            acc[0] += o
            acc[1] += c
    t.series = [(d, o, c) for d, (o, c) in sorted(days.items())]
    _project(t, now)
    return t

