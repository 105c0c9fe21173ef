"""The cost model of ../shared/PRODUCT.md ("Cost model"), exactly, over Decimal money.

Pure functions over plain values. Amounts keep full precision through every sum and are rounded
to the cent only for display (:func:`cents`), so that "the jobs' costs plus the idle cost equal
the machines' capacity cost plus the energy cost" holds to the cent for any period.

For a machine with price P, resale fraction r, life L months, G GPUs and monthly fees F:
depreciation per hour d = P(1 - r)/(L · 730.5), zero once the machine is past its life;
fixed cost per hour f = F/730.5; capacity rate per GPU-hour c = (d + f)/G.

A machine sold before or after its life ends costs nothing from the sale on: depreciation and
fees stop there. What it fetched against its straight-line book value (price less depreciation
to the sale) is the sale's gain or loss, shown once in the amortization report rather than
spread back over the jobs that already ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

HOURS_PER_MONTH = Decimal("730.5")
CENT = Decimal("0.01")
SECONDS_PER_HOUR = Decimal(3600)


@dataclass(frozen=True)
class Machine:
    price: Decimal
    resale: Decimal
    """Fraction of the price the machine sells for at the end of its life, 0 to 1."""
    life_months: int
    gpus: int
    monthly_fees: Decimal
    purchased: datetime
    sold: datetime | None = None
    """When it was sold (retired): nothing is charged from then on."""
    sold_for: Decimal | None = None

    @property
    def life_end(self) -> datetime:
        """Depreciation stops here: ``life_months`` of 730.5 hours after purchase, so that
        the depreciation summed over the life is exactly P(1 - r)."""
        hours = HOURS_PER_MONTH * self.life_months
        return self.purchased + timedelta(seconds=float(hours * SECONDS_PER_HOUR))


def depreciation_per_hour(m: Machine) -> Decimal:
    return m.price * (1 - m.resale) / (m.life_months * HOURS_PER_MONTH)


def fixed_per_hour(m: Machine) -> Decimal:
    return m.monthly_fees / HOURS_PER_MONTH


def capacity_rate(m: Machine, at: datetime) -> Decimal:
    """Cost of one GPU-hour of this machine at ``at`` (before depreciation stops or after)."""
    if m.sold is not None and at >= m.sold:
        return Decimal(0)
    d = depreciation_per_hour(m) if m.purchased <= at < m.life_end else Decimal(0)
    return (d + fixed_per_hour(m)) / m.gpus


def _hours(start: datetime, end: datetime) -> Decimal:
    seconds = (end - start).total_seconds()
    return Decimal(str(max(0.0, seconds))) / SECONDS_PER_HOUR


def gpu_capacity_cost(m: Machine, start: datetime, end: datetime) -> Decimal:
    """Capacity cost of holding one GPU of ``m`` over ``[start, end]``: the part inside the
    machine's life at c, the part after it at the fees alone, nothing before purchase or
    after the sale."""
    start = max(start, m.purchased)
    if m.sold is not None:
        end = min(end, m.sold)
    if end <= start:
        return Decimal(0)
    in_life = _hours(start, min(end, m.life_end)) if start < m.life_end else Decimal(0)
    after = _hours(max(start, m.life_end), end) if end > m.life_end else Decimal(0)
    fixed = fixed_per_hour(m) / m.gpus
    return in_life * (depreciation_per_hour(m) / m.gpus + fixed) + after * fixed


def machine_capacity_cost(m: Machine, start: datetime, end: datetime) -> Decimal:
    """Capacity cost of the whole machine over a period: every GPU, held or idle."""
    return gpu_capacity_cost(m, start, end) * m.gpus


def depreciation_to(m: Machine, at: datetime) -> Decimal:
    """Straight-line depreciation from purchase to ``at`` (none past the life)."""
    return depreciation_per_hour(m) * _hours(m.purchased, min(at, m.life_end))


def sale_gain(m: Machine) -> Decimal | None:
    """What the sale fetched less the book value at the sale: positive is a gain."""
    if m.sold is None or m.sold_for is None:
        return None
    return m.sold_for - (m.price - depreciation_to(m, m.sold))


def energy_cost(kwh: Decimal, tariff_per_kwh: Decimal, pue: Decimal) -> Decimal:
    """Measured GPU energy, scaled by the site's PUE (cooling, power conversion)."""
    return kwh * tariff_per_kwh * pue


def cloud_equivalent(gpu_hours: Decimal, rate_per_gpu_hour: Decimal) -> Decimal:
    return gpu_hours * rate_per_gpu_hour


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
