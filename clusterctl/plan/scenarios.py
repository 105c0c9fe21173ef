"""Scenarios of a plan: the same history replayed through the live policy on each fleet, and
each priced the way the cost model prices a machine, so that "should we buy another box?" is
answered from the team's own queue.

Per scenario, over the span the history covers (first submit to last end):

- the waits of the replay (``avg``, ``p50``, ``p95``) and the utilization (GPU-seconds held
  over GPUs x span);
- ``monthly_cost``: each priced machine's depreciation P(1 - r)/L (none once written off), its
  fees, and its energy: the GPU-hours it served at its busy power and the rest at an idle
  share of it, at the site's tariff and PUE. 730.5 hours to the month, as the cost model;
- ``cloud_cost_per_month``: the same GPU-hours per model at the cloud rates;
- a purchase's ``break_even_months``: its price over what renting the GPU-hours it served
  would cost a month less what running it costs a month (fees and energy); None where renting
  is cheaper than running it;
- a sale's ``sale_cash`` (the price given, else its book value) against the wait it adds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

from clusterctl.cost.model import HOURS_PER_MONTH
from clusterctl.cost.rates import CloudRate, rate_for
from clusterctl.plan.fleet import IDLE_SHARE, PlanMachine, Sale
from clusterctl.scheduler.quotas import resolve_quotas, totals
from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import engine, metrics
from clusterctl.simulate.trace import PastJob, fit

SECONDS_PER_MONTH = float(HOURS_PER_MONTH) * 3600


@dataclass(frozen=True)
class Site:
    tariff_per_kwh: Decimal
    pue: Decimal
    rates: dict[str, CloudRate]
    currency: str = "USD"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    """``current``, ``add``, ``remove``, ``quota`` or ``growth``."""
    machines: tuple[PlanMachine, ...]
    growth: float = 1.0
    quotas: tuple[dict[str, float], dict[str, dict[str, float]]] = ({}, {})
    added: tuple[PlanMachine, ...] = ()
    sales: tuple[Sale, ...] = ()


@dataclass
class Result:
    scenario: str
    kind: str
    jobs: int
    skipped: int
    """Jobs of the history no node of this fleet could hold."""
    avg_wait_s: float
    p50_wait_s: float
    p95_wait_s: float
    utilization: float
    gpus: int
    gpu_hours: float
    monthly_cost: float
    cost_per_used_gpu_hour: float | None
    cloud_cost_per_month: float
    unpriced_gpus: int = 0
    typical_priced_gpus: int = 0
    unrated_gpu_hours: float = 0.0
    """GPU-hours on models the cloud rates do not know: left out of the cloud cost."""
    break_even_months: float | None = None
    sale_cash: float | None = None
    wait_added_s: float | None = None
    monthly_cost_change: float | None = None
    waits: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "waits"}
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 4) if math.isfinite(v) else None
        return out


def grow(jobs: Sequence[PastJob], factor: float, seed: int = 0) -> list[PastJob]:
    """The history with ``factor`` times its jobs: each job ``floor(factor)`` times, and once
    more with probability of the fraction left (seeded), at its own submit time."""
    if factor == 1.0:
        return list(jobs)
    rng = random.Random(seed)
    whole, part = int(factor), factor - int(factor)
    out: list[PastJob] = []
    for j in jobs:
        out += [j] * (whole + (1 if rng.random() < part else 0))
    return out


def evaluate(history: Sequence[PastJob], s: Scenario, site: Site, today: date,
             policy: PolicyConfig = PolicyConfig()) -> Result:
    """``s`` replayed and priced; ``policy`` is the cluster's order and preemption (its
    quotas are the scenario's)."""
    groups = [(1, m.gpus, m.gpu_model) for m in s.machines]
    trace = fit(grow(history, s.growth), groups)
    total = sum(m.gpus for m in s.machines)
    bare, typed = s.quotas
    quotas = resolve_quotas(totals(bare, typed), trace.teams, total)
    out = engine.replay(trace.jobs, groups, replace(policy, quotas=quotas, type_quotas=typed))
    fig = metrics.figures("default", out, quotas)
    span = max(out.last_end - out.first_submit, 3600.0)
    months = span / SECONDS_PER_MONTH
    per_month = [b / 3600 / months for b in out.busy_by_node]  # GPU-hours a month
    monthly = cloud = unrated = 0.0
    unpriced = typical_gpus = 0
    added = {m.name for m in s.added}
    added_cost = added_cloud = 0.0
    for m, used in zip(s.machines, per_month, strict=True):
        idle = max(0.0, m.gpus * float(HOURS_PER_MONTH) - used)
        kwh = (used * m.busy_power_w() + idle * m.busy_power_w() * IDLE_SHARE) / 1000
        running = float(m.monthly_fees) + kwh * float(site.tariff_per_kwh * site.pue)
        rate = rate_for(m.gpu_model, site.rates) if m.gpu_model else None
        if rate is None:
            unrated += used * months
        else:
            cloud += used * float(rate.per_gpu_hour)
        if m.price is None:
            unpriced += m.gpus
            continue
        typical_gpus += m.gpus if m.typical else 0
        monthly += float(m.monthly_depreciation(today)) + running
        if m.name in added:
            added_cost += running
            added_cloud += used * float(rate.per_gpu_hour) if rate else 0.0
    gpu_hours = out.busy_gpu_s / 3600
    result = Result(
        s.name, s.kind, fig.jobs, trace.skipped, fig.avg_wait_s, fig.p50_wait_s,
        fig.p95_wait_s, fig.utilization, total, gpu_hours, monthly,
        monthly / (gpu_hours / months) if gpu_hours > 0 else None, cloud, unpriced,
        typical_gpus, unrated, waits=metrics.waits(out))
    if s.added:
        price = sum(float(m.price or 0) for m in s.added)
        net = added_cloud - added_cost
        result.break_even_months = price / net if net > 0 else None
    if s.sales:
        cash = [float(x.price) for x in s.sales if x.price is not None]
        result.sale_cash = sum(cash) if cash else None
    return result


def _evaluate(args: tuple[Any, ...]) -> Result:
    return evaluate(*args)


def evaluate_all(history: Sequence[PastJob], scenarios: Sequence[Scenario], site: Site,
                 today: date, workers: int = 1, policy: PolicyConfig = PolicyConfig()
                 ) -> list[Result]:
    """Every scenario, side by side (in worker processes where there are cores to spare:
    the replays are independent and each takes one core); each compared with the first of
    its kind's baseline: the current fleet, or the current fleet at the same growth.

    Up to twice as many processes as ``workers`` (cores) run at once: three replays of
    equal length on two cores end together after 1.5 replays' time, where two workers
    would take two (the third alone on one core at the end). About 200 MB each for a year."""
    args = [(history, s, site, today, policy) for s in scenarios]
    if workers > 1 and len(scenarios) > 1:
        with ProcessPoolExecutor(max_workers=min(2 * workers, len(scenarios))) as pool:
            results = list(pool.map(_evaluate, args))
    else:
        results = [evaluate(*a) for a in args]
    for s, r in zip(scenarios, results, strict=True):
        base = baseline_of(s, scenarios, results)
        if base is not None and base is not r:
            r.wait_added_s = r.avg_wait_s - base.avg_wait_s
            r.monthly_cost_change = r.monthly_cost - base.monthly_cost
    return results


def baseline_of(s: Scenario, scenarios: Sequence[Scenario], results: Sequence[Result]
                ) -> Result | None:
    """What a proposal is weighed against: the current fleet at the same growth."""
    for other, r in zip(scenarios, results, strict=True):
        if other.kind in ("current", "growth") and other.growth == s.growth:
            return r
    return None


# -- advice ------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return "under a minute" if seconds > 0 else "none"


def money(amount: float, currency: str = "USD") -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.0f}" if currency == "USD" else \
        f"{sign}{abs(amount):,.0f} {currency}"


def advice(scenarios: Sequence[Scenario], results: Sequence[Result], currency: str = "USD"
           ) -> list[str]:
    """One plain sentence per proposal, against its baseline."""
    out = []
    for s, r in zip(scenarios, results, strict=True):
        base = baseline_of(s, scenarios, results)
        if base is None or base is r:
            continue
        wait = (f"the average wait from {duration(base.avg_wait_s)} to "
                f"{duration(r.avg_wait_s)}")
        more = r.monthly_cost - base.monthly_cost
        if s.kind == "add":
            verb = "cuts" if r.avg_wait_s < base.avg_wait_s else "leaves"
            head = (f"{s.name} {verb} {wait}" if verb == "cuts"
                    else f"{s.name} leaves the average wait at {duration(r.avg_wait_s)}")
            if r.break_even_months is None:
                tail = ("; the GPU-hours it would serve cost less to rent than to run it, so "
                        "renting the overflow is cheaper")
            else:
                tail = (f"; against renting the same GPU-hours it pays for itself in "
                        f"{r.break_even_months:.0f} months")
            out.append(f"{head} for {money(more, currency)} a month more{tail}.")
        elif s.kind == "remove":
            cash = (f"frees {money(r.sale_cash, currency)}" if r.sale_cash is not None
                    else "frees an unpriced machine")
            verb = "raises" if r.avg_wait_s > base.avg_wait_s else "keeps"
            change = (f"{verb} {wait}" if verb == "raises"
                      else f"keeps the average wait at {duration(r.avg_wait_s)}")
            out.append(f"{s.name} {cash} and {money(-more, currency)} a month, and {change}.")
        elif s.kind == "quota":
            out.append(f"{s.name} changes {wait} (p95 {duration(base.p95_wait_s)} to "
                       f"{duration(r.p95_wait_s)}).")
    growth = [(s, r) for s, r in zip(scenarios, results, strict=True) if s.kind == "growth"]
    current = next((r for s, r in zip(scenarios, results, strict=True)
                    if s.kind == "current"), None)
    for s, r in growth:
        if current is not None:
            out.append(f"with {s.growth:g}x the jobs, the current fleet's average wait goes "
                       f"from {duration(current.avg_wait_s)} to {duration(r.avg_wait_s)} and "
                       f"its utilization from {current.utilization:.0%} to "
                       f"{r.utilization:.0%}.")
    return out


Quotas = tuple[dict[str, float], dict[str, dict[str, float]]]


def propose(current: Sequence[PlanMachine], *, purchases: Sequence[tuple[str, list[PlanMachine]]]
            = (), sales: Sequence[Sale] = (), quotas: Quotas | None = None,
            quota_text: str = "", growth: float = 1.0, base: Quotas = ({}, {})
            ) -> list[Scenario]:
    """The current fleet, then one scenario per proposal, all with the ``base`` quotas (the
    cluster's; none: equal shares) but the quota proposal. With ``growth``, the current fleet
    at that growth is a scenario of its own and every proposal is replayed at it too (the
    question is then "what do we need when we have grown?")."""
    machines = tuple(current)
    out = [Scenario("current fleet", "current", machines, quotas=base)]
    if growth != 1.0:
        out.append(Scenario(f"{growth:g}x the jobs", "growth", machines, growth, base))
    for text, added in purchases:
        out.append(Scenario(f"adding {text}", "add", machines + tuple(added), growth, base,
                            added=tuple(added)))
    for sale in sales:
        gone = sale.machine.name
        out.append(Scenario(f"selling {gone}", "remove",
                            tuple(m for m in machines if m.name != gone), growth, base,
                            sales=(sale,)))
    if quotas is not None:
        out.append(Scenario(f"quotas {quota_text}", "quota", machines, growth, quotas))
    return out
