"""A machine sold (retired): its costs stop at the sale, and the amortization ledger closes with
the sale against the book value. Hand-computed figures for PRODUCT.md's example machine
(P = $300,000, r = 0.2, L = 36 months, G = 8, F = $1,500), bought 2025-03-01 and sold 400 days
later (9,600 hours, inside its life) for $200,000."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from test_inventory import GOOD, TODAY
from test_report_cost import BOUGHT, PRICES, B, held, priced, same

from clusterctl.cost.inventory import hardware_spec, parse_inventory_toml, updated_spec
from clusterctl.cost.model import capacity_rate, cents, gpu_capacity_cost, sale_gain
from clusterctl.parsing import BadInput
from clusterctl.reports.amortization import amortization_report
from clusterctl.reports.cost import accounted, cost_report
from clusterctl.reports.inputs import MS_PER_DAY, Inputs, Period, Priced
from clusterctl.reports.utilization import utilization_report

D = MS_PER_DAY
SOLD = BOUGHT + timedelta(days=400)
S = B + 400 * D


def sold(p: Priced | None = None, when: datetime = SOLD,
         price: Decimal = Decimal(200_000)) -> Priced:
    p = p or priced()
    return replace(p, machine=replace(p.machine, sold=when, sold_for=price))


# -- what the admin types ---------------------------------------------------------------------


def test_a_sale_is_a_date_and_a_price_together() -> None:
    spec = hardware_spec(GOOD | {"sold_on": "2026-04-05", "sold_for": "200,000"}, TODAY)
    assert spec.sold_on == date(2026, 4, 5) and spec.sold_for == Decimal(200_000)
    assert spec.machine().sold == datetime(2026, 4, 5, tzinfo=timezone.utc)
    assert spec.as_json()["sold_on"] == "2026-04-05" and spec.as_json()["sold_for"] == "200000"
    scrapped = hardware_spec(GOOD | {"sold_on": "2026-04-05", "sold_for": 0}, TODAY)
    assert scrapped.sold_for == 0
    # Changing another field keeps the sale; the unsold machine has none.
    assert updated_spec(spec, {"monthly_fees": "900"}, TODAY).sold_on == date(2026, 4, 5)
    assert hardware_spec(GOOD, TODAY).machine().sold is None
    (imported,) = parse_inventory_toml(
        '[[machine]]\nnode = "gpu-01"\ngpus = 8\ngpu_model = "A100"\nprice = 300000\n'
        'purchased = 2025-03-01\nlife = 36\nresale = 0.2\nsold_on = 2026-04-05\n'
        'sold_for = 200000\n', "rack.toml", TODAY)
    assert imported.sold_on == date(2026, 4, 5)


@pytest.mark.parametrize(("sale", "flag", "says"), [
    ({"sold_on": "2026-04-05"}, "--sold-for", "is required"),
    ({"sold_for": "1000"}, "--sold-on", "is required"),
    ({"sold_on": "2025-02-28", "sold_for": "1"}, "--sold-on", "before the purchase date"),
    ({"sold_on": "2027-01-01", "sold_for": "1"}, "--sold-on", "in the future"),
    ({"sold_on": "yesterday", "sold_for": "1"}, "--sold-on", "YYYY-MM-DD"),
    ({"sold_on": "2026-04-05", "sold_for": "-1"}, "--sold-for", "0 or more"),
])
def test_a_bad_sale_names_its_flag(sale: dict[str, str], flag: str, says: str) -> None:
    with pytest.raises(BadInput) as e:
        hardware_spec(GOOD | sale, TODAY)
    assert e.value.field == flag and says in str(e.value)


# -- the cost model ---------------------------------------------------------------------------


def test_costs_stop_at_the_sale() -> None:
    m = sold().machine
    before, after = SOLD - timedelta(hours=1), SOLD + timedelta(hours=1)
    assert cents(capacity_rate(m, before)) == Decimal("1.40")  # c = $1.397 per GPU-hour
    assert capacity_rate(m, after) == 0
    # A day across the sale costs the 12 hours before it.
    day = gpu_capacity_cost(m, SOLD - timedelta(hours=12), SOLD + timedelta(hours=12))
    assert same(day, capacity_rate(m, before) * 12)
    # Depreciation to the sale: 240,000 / (36 x 730.5) x 9,600 h = $87,611.23, so the book
    # value is $212,388.77 and selling for $200,000 is a loss of $12,388.77.
    assert cents(sale_gain(m)) == Decimal("-12388.77")  # type: ignore[arg-type]
    assert cents(sale_gain(sold(price=Decimal(250_000)).machine)) == Decimal(  # type: ignore[arg-type]
        "37611.23")
    assert sale_gain(priced().machine) is None


def test_cost_and_utilization_reports_end_at_the_sale() -> None:
    start, end = S - 10 * D, S + 10 * D
    p = sold()
    # 8 GPUs held across the sale (a record that outlived it): charged only up to it.
    jobs = [held(1, g, start, end) for g in range(8)]
    report = cost_report(Inputs(Period(start, end), end, jobs, {"gpu-01": p}, PRICES))
    (row,) = report.rows
    assert same(row.capacity_cost, p.rate_in_life * 8 * 10 * D)
    assert same(report.capacity_cost, row.capacity_cost) and report.idle.capacity_cost == 0
    assert same(accounted(report), report.capacity_cost + report.energy_cost)
    # Nothing held: the idle capacity is the 10 days before the sale, none after.
    idle = cost_report(Inputs(Period(start, end), end, [], {"gpu-01": p}, PRICES))
    assert idle.idle.gpu_ms == 8 * 10 * D
    assert same(idle.capacity_cost, p.rate_in_life * 8 * 10 * D)
    # The machine's GPUs count as available up to the sale only.
    util = utilization_report(Inputs(Period(start, end), end, [], {"gpu-01": p}, PRICES))
    assert util.total.available_ms == 8 * 10 * D


# -- the amortization ledger ------------------------------------------------------------------


def test_the_ledger_closes_at_the_sale() -> None:
    now = S + 100 * D
    p = sold()
    # All 8 GPUs busy from purchase to now (the part after the sale cannot count).
    busy = [held(g, g, B, now) for g in range(8)]
    still = priced("gpu-02", purchased=BOUGHT)
    both = {"gpu-01": p, "gpu-02": still}
    report = amortization_report(Inputs(Period(B, now), now, busy, both, PRICES))
    m, other = report.machines
    assert (m.sold_ms, m.sold_for) == (S, Decimal(200_000))
    assert m.net_price == Decimal(100_000)  # what owning it really cost up front
    assert cents(m.depreciation) == Decimal("87611.23")
    assert cents(m.book_value) == Decimal("212388.77")
    assert cents(m.sale_gain) == Decimal("-12388.77")  # type: ignore[arg-type]
    assert cents(m.fees) == Decimal("19712.53")  # 1,500 / 730.5 x 9,600 h
    assert m.used_gpu_hours == 8 * 9600 and m.available_ms == 8 * 400 * D
    assert m.cloud_equivalent == Decimal("4.10") * 8 * 9600  # $314,880.00
    assert cents(m.net_saving) == Decimal("195167.47")  # 314,880 - 100,000 - 19,712.53
    # It paid for itself during the day that begins 135 days after purchase
    # (100,000 / (787.20 - 49.28) = 135.5 days), and the ledger stays flat after the sale.
    assert m.break_even_reached and m.break_even_ms == B + 135 * D
    assert len(m.series) == 500 and m.series[-1][1:] == m.series[399][1:]
    assert m.day_cloud == 0 and m.day_owned == 0
    # The total projects only the machine still owned, and adds up the sold one to date.
    assert report.total.day_cloud == other.day_cloud and other.day_cloud == 0
    assert report.total.sale_gain == m.sale_gain
    assert report.total.series[-1][1] == m.series[-1][1] + other.series[-1][1]
    # Sold before it paid: never, with no projection.
    idle = amortization_report(Inputs(Period(B, now), now, [], {"gpu-01": p}, PRICES))
    assert idle.machines[0].break_even_ms is None
    assert cents(idle.machines[0].owned_cost) == Decimal("119712.53")
