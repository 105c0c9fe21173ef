"""What every report is computed from, as plain values with times in epoch milliseconds.

Integer milliseconds keep GPU-time sums exact: capacity cost is GPU-milliseconds times a
Decimal rate, so the jobs' share and the idle share of a machine add up to its whole cost to
the cent, whatever the period.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import cached_property

import numpy as np

from clusterctl.cost import model
from clusterctl.cost.inventory import SiteSettings
from clusterctl.cost.model import HOURS_PER_MONTH, Machine, depreciation_per_hour, fixed_per_hour
from clusterctl.reports.table import Held, HeldTable

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
MJ_PER_KWH = Decimal(3_600_000_000)


@dataclass(frozen=True)
class Period:
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Priced:
    """A machine of the inventory with its cost model and cloud rate per GPU-hour."""

    node: str
    gpu_model: str
    machine: Machine
    cloud_rate: Decimal | None

    @cached_property
    def purchased_ms(self) -> int:
        return int(self.machine.purchased.timestamp() * 1000)

    @cached_property
    def life_end_ms(self) -> int:
        # 730.5 h is 2,629,800,000 ms: whole milliseconds, so the life ends on an exact ms.
        return self.purchased_ms + int(self.machine.life_months * HOURS_PER_MONTH * MS_PER_HOUR)

    @cached_property
    def sold_ms(self) -> int | None:
        """When the machine was sold: no capacity from then on."""
        sold = self.machine.sold
        return None if sold is None else int(sold.timestamp() * 1000)

    def until(self, end_ms: int) -> int:
        """``end_ms``, or the sale if the machine was sold before it."""
        return end_ms if self.sold_ms is None else min(end_ms, self.sold_ms)

    @cached_property
    def rate_in_life(self) -> Decimal:
        """Per GPU-millisecond, before the life ends: (d + f) / G."""
        m = self.machine
        return (depreciation_per_hour(m) + fixed_per_hour(m)) / m.gpus / MS_PER_HOUR

    @cached_property
    def rate_after_life(self) -> Decimal:
        return fixed_per_hour(self.machine) / self.machine.gpus / MS_PER_HOUR

    def cost(self, in_life_ms: int, after_ms: int) -> Decimal:
        return in_life_ms * self.rate_in_life + after_ms * self.rate_after_life


@dataclass(frozen=True)
class IdleEnded:
    """A job idle reclaim ended: when, on which node, with how many GPUs, and until when it
    could have gone on holding them (its time limit; None without one)."""

    job_id: int
    node: str
    gpus: int
    ended_ms: int
    limit_end_ms: int | None


@dataclass
class Inputs:
    """Everything a report needs over a period."""

    period: Period
    now_ms: int
    held: list[Held]
    machines: dict[str, Priced]
    prices: SiteSettings
    node_energy_mj: dict[tuple[str, int], float] = field(default_factory=dict)
    """Energy of each node's GPUs (from the hour rollups; the idle GPUs' draw too) by the
    start of the bucket it was summed into: hours, days, or the whole period."""
    gpus_seen: dict[str, int] = field(default_factory=dict)
    """GPUs per node from telemetry, for nodes with no inventory record."""
    models_seen: dict[str, str] = field(default_factory=dict)
    """GPU model per node from telemetry (NVML's words), for ``--by gpu-type``."""
    waste_threshold: float = 0.10
    held_table: HeldTable | None = None
    """The same allocations as columns; built from ``held`` when not given."""
    idle_ended: list[IdleEnded] = field(default_factory=list)
    """Jobs idle reclaim ended in the period (the waste report counts what they gave back)."""
    first_sample_ms: dict[str, int] | None = None
    """When each node's first GPU sample was stored: telemetry began there. None where no
    telemetry is kept (``plan``'s replays, the pure tests): every hour counts as tracked."""
    service_of: dict[int, str] = field(default_factory=dict)
    """The service each replica job served (``--by service``); other jobs are not in it."""
    _tracked: dict[str, int] | None = field(default=None, init=False, repr=False)

    def tracked_from(self, node: str) -> int:
        """From when a node's hours are accounted as used or idle: its first sample, or the
        start of a job it held if that came first (a job held it, so it was in use). The hours
        before are "not tracked": counting them idle would report a new cluster's past month
        as waste for machines nobody was watching yet. A node neither sampled nor held in the
        period is not tracked in it at all."""
        if self.first_sample_ms is None:
            return self.period.start_ms
        if self._tracked is None:
            t = self.table
            first_held = np.full(len(t.nodes), np.iinfo(np.int64).max, dtype=np.int64)
            if len(t):
                np.minimum.at(first_held, t.node, t.start)
            self._tracked = {n: int(first_held[i]) for i, n in enumerate(t.nodes)}
        never = self.period.end_ms
        return max(self.period.start_ms, min(self.first_sample_ms.get(node, never),
                                             self._tracked.get(node, never)))

    def model_of(self, node: str) -> str:
        """A node's GPU model: the inventory's, else what its agent reads, else unknown."""
        priced = self.machines.get(node)
        if priced is not None:
            return priced.gpu_model
        return self.models_seen.get(node) or "unknown"

    @property
    def table(self) -> HeldTable:
        if self.held_table is None:
            self.held_table = HeldTable.of(self.held)
        return self.held_table


def kwh(mj: float | Decimal) -> Decimal:
    value = Decimal(repr(mj)) if isinstance(mj, float) else Decimal(mj)
    return value / MJ_PER_KWH


def energy_cost(mj: float | Decimal, prices: SiteSettings) -> Decimal:
    """Measured millijoules at the site's tariff and PUE (the cost model's formula)."""
    return model.energy_cost(kwh(mj), prices.tariff_per_kwh, prices.pue)


def ms_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def month_start(ms: int) -> int:
    t = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return int(datetime(t.year, t.month, 1, tzinfo=timezone.utc).timestamp() * 1000)


def next_month(ms: int) -> int:
    t = datetime.fromtimestamp(ms / 1000, timezone.utc)
    y, m = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp() * 1000)


def months(start_ms: int, end_ms: int) -> Iterator[tuple[int, int]]:
    """Calendar months (UTC) covering ``[start, end)``, clipped to it."""
    m = month_start(start_ms)
    while m < end_ms:
        nxt = next_month(m)
        yield max(m, start_ms), min(nxt, end_ms)
        m = nxt


def model_keys(inputs: Inputs) -> tuple[np.ndarray, list[str]]:
    """For each GPU held, the index of its node's GPU model in the names returned."""
    t = inputs.table
    names = sorted({inputs.model_of(n) for n in t.nodes})
    of_node = np.array([names.index(inputs.model_of(n)) for n in t.nodes], dtype=np.int64)
    return of_node[t.node], names
