"""The cost model against PRODUCT.md's worked example (to the cent) and its edges."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterctl.cost.model import (
    Machine,
    capacity_rate,
    cents,
    cloud_equivalent,
    depreciation_per_hour,
    energy_cost,
    fixed_per_hour,
    gpu_capacity_cost,
    machine_capacity_cost,
)

BOUGHT = datetime(2025, 3, 1, tzinfo=timezone.utc)
EXAMPLE = Machine(price=Decimal(300_000), resale=Decimal("0.2"), life_months=36, gpus=8,
                  monthly_fees=Decimal(1500), purchased=BOUGHT)


def test_worked_example_to_the_cent() -> None:
    assert round(depreciation_per_hour(EXAMPLE), 3) == Decimal("9.126")
    assert round(fixed_per_hour(EXAMPLE), 3) == Decimal("2.053")
    at = BOUGHT + timedelta(days=100)
    assert round(capacity_rate(EXAMPLE, at), 3) == Decimal("1.397")
    start = at
    job = gpu_capacity_cost(EXAMPLE, start, start + timedelta(hours=10)) * 4
    energy = energy_cost(Decimal(12), Decimal("0.15"), Decimal("1.4"))
    assert cents(job + energy) == Decimal("58.42")
    assert cents(cloud_equivalent(Decimal(40), Decimal("4.10"))) == Decimal("164.00")


def test_depreciation_stops_at_end_of_life_but_fees_go_on() -> None:
    end = EXAMPLE.life_end
    before = gpu_capacity_cost(EXAMPLE, end - timedelta(hours=1), end)
    after = gpu_capacity_cost(EXAMPLE, end, end + timedelta(hours=1))
    assert after == fixed_per_hour(EXAMPLE) / 8
    assert before - after == pytest.approx(depreciation_per_hour(EXAMPLE) / 8)
    assert capacity_rate(EXAMPLE, end + timedelta(days=1)) == fixed_per_hour(EXAMPLE) / 8
    whole_life = machine_capacity_cost(EXAMPLE, BOUGHT, end)
    fees = Decimal(1500) * 36
    assert cents(whole_life) == cents(Decimal(300_000) * Decimal("0.8") + fees)


def test_nothing_is_charged_before_purchase() -> None:
    month_before = BOUGHT - timedelta(days=30)
    assert gpu_capacity_cost(EXAMPLE, month_before, BOUGHT) == 0
    half = gpu_capacity_cost(EXAMPLE, BOUGHT - timedelta(hours=5), BOUGHT + timedelta(hours=5))
    assert half == gpu_capacity_cost(EXAMPLE, BOUGHT, BOUGHT + timedelta(hours=5))


@given(st.integers(min_value=0, max_value=40 * 730), st.integers(min_value=0, max_value=2000),
       st.integers(min_value=1, max_value=2000))
def test_periods_add_up(offset_h: int, a_h: int, b_h: int) -> None:
    """Cost over [s, u] = cost over [s, t] + cost over [t, u], across the end of life too."""
    s = BOUGHT + timedelta(hours=offset_h)
    t = s + timedelta(hours=a_h)
    u = t + timedelta(hours=b_h)
    whole = gpu_capacity_cost(EXAMPLE, s, u)
    parts = gpu_capacity_cost(EXAMPLE, s, t) + gpu_capacity_cost(EXAMPLE, t, u)
    assert abs(whole - parts) < Decimal("1e-9")
