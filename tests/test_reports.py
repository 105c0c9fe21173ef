"""Utilization, waste and amortization arithmetic on hand-built histories."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from test_report_cost import PRICES, B, H, held, priced

from clusterctl.reports.amortization import amortization_report
from clusterctl.reports.inputs import MS_PER_DAY, Inputs, Period
from clusterctl.reports.table import Held
from clusterctl.reports.utilization import utilization_report
from clusterctl.reports.waste import waste_report

D = MS_PER_DAY


def test_utilization_shares_and_partial_coverage() -> None:
    start = B + 10 * D
    jobs = [held(1, 0, start, start + 10 * H),  # fully covered, 80% busy
            Held(2, "eval", "bob", "nlp", "gpu-01", 1, start, start + 10 * H,
                 covered_s=5 * 3600, util_avg=0.2)]  # samples cover half of it
    inputs = Inputs(Period(start, start + 20 * H), start + 20 * H, jobs, {"gpu-01": priced()},
                    PRICES)
    by_node = utilization_report(inputs, "node")
    (node,) = by_node.rows
    assert by_node.allocated_share(node) == pytest.approx(20 / 160)
    assert node.busy_share == pytest.approx((10 * 0.8 + 5 * 0.2) / 15)
    assert node.coverage == pytest.approx(15 / 20)
    assert node.idle_gpu_hours == pytest.approx(140)
    by_user = {r.key: r for r in utilization_report(inputs, "user").rows}
    assert by_user["bob"].coverage == pytest.approx(0.5)
    assert by_user["bob"].busy_share == pytest.approx(0.2)
    assert by_user["bob"].idle_gpu_hours is None
    by_gpu = {r.key: r for r in utilization_report(inputs, "gpu").rows}
    assert len(by_gpu) == 8 and by_gpu["gpu-01/3"].held_ms == 0
    series = utilization_report(inputs, "day").series
    assert len(series) == 20 and series[0][1] == pytest.approx(2 / 8)  # hourly for 20 h
    assert series[-1][1] == 0 and series[-1][2] is None


def test_utilization_and_cost_by_gpu_type() -> None:
    """Rows per GPU model: the inventory's for priced machines, the agent's words for the
    others; each model's available GPU-hours are its own machines'."""
    from dataclasses import replace

    from clusterctl.reports.cost import cost_report

    start = B + 10 * D
    h100 = replace(priced("h-01", gpus=8), gpu_model="H100-80GB")
    jobs = [held(1, 0, start, start + 10 * H, node="gpu-01"),
            held(2, 0, start, start + 5 * H, node="h-01"),
            held(3, 1, start, start + 5 * H, node="h-01"),
            held(4, 0, start, start + 4 * H, node="box")]
    inputs = Inputs(Period(start, start + 20 * H), start + 20 * H, jobs,
                    {"gpu-01": priced(), "h-01": h100}, PRICES, gpus_seen={"box": 2},
                    models_seen={"box": "NVIDIA GeForce RTX 4090"})
    util = {r.key: r for r in utilization_report(inputs, "gpu-type").rows}
    assert set(util) == {"A100", "H100-80GB", "NVIDIA GeForce RTX 4090"}
    assert util["H100-80GB"].held_ms == 10 * H
    assert utilization_report(inputs, "gpu-type").allocated_share(util["A100"]) == \
        pytest.approx(10 / 160)
    assert util["NVIDIA GeForce RTX 4090"].available_ms == 2 * 20 * H
    by_type = {r.key: r for r in cost_report(inputs, "gpu-type").rows}
    by_job = {r.key: r for r in cost_report(inputs, "job").rows}
    assert by_type["H100-80GB"].total_cost == by_job["2"].total_cost + by_job["3"].total_cost
    assert by_type["A100"].total_cost == by_job["1"].total_cost
    assert by_type["NVIDIA GeForce RTX 4090"].capacity_cost == 0  # not in the inventory


def test_utilization_without_inventory_uses_the_gpus_seen() -> None:
    jobs = [held(1, 0, B, B + D, node="box")]
    inputs = Inputs(Period(B, B + 2 * D), B + 2 * D, jobs, {}, PRICES, gpus_seen={"box": 4})
    report = utilization_report(inputs, "day")
    assert [r.key for r in report.rows] == ["2025-03-01", "2025-03-02"]
    assert report.allocated_share(report.rows[0]) == pytest.approx(0.25)
    assert report.allocated_share(report.total) == pytest.approx(0.125)


def test_waste_flags_long_idle_stretches_and_prices_them() -> None:
    start = B + 10 * D
    idle = Held(1, "notebook", "alice", "vision", "gpu-01", 0, start, start + 4 * H,
                covered_s=4 * 3600, util_avg=0.03, idle_s=3 * 3600, longest_idle_s=2 * 3600)
    busy = Held(2, "train", "bob", "nlp", "gpu-01", 1, start, start + 4 * H,
                covered_s=4 * 3600, util_avg=0.9, idle_s=600, longest_idle_s=600)
    inputs = Inputs(Period(start, start + 4 * H), start + 4 * H, [idle, busy],
                    {"gpu-01": priced()}, PRICES)
    report = waste_report(inputs)
    (row,) = report.rows
    assert row.job_id == 1 and row.idle_gpu_hours == pytest.approx(3)
    rate = priced().rate_in_life
    assert abs(row.cost - rate * 3 * H) < Decimal("1e-9")
    assert report.by_user == {"alice": row.cost}
    assert waste_report(inputs, min_idle_s=3 * 3600).rows == []


def test_amortization_break_even() -> None:
    p = priced(purchased=datetime(2025, 3, 1, tzinfo=timezone.utc))
    now = B + 100 * D
    # All 8 GPUs busy the whole time: cloud 8 x $4.10/h = $787/day against $49/day of fees.
    full = [held(i, g, B, now) for i, g in enumerate(range(8))]
    report = amortization_report(Inputs(Period(B, now), now, full, {"gpu-01": p}, PRICES))
    (m,) = report.machines
    assert m.used_gpu_hours == pytest.approx(8 * 2400)
    assert m.utilization == pytest.approx(1.0)
    assert m.cloud_equivalent == Decimal("4.10") * 8 * 2400
    assert m.net_price == Decimal(240_000)
    # $240,000 + $49.28 a day of fees against $787.20 a day: 325.2 days.
    assert m.net_saving < 0 and not m.break_even_reached
    expected = B + int(Decimal(240_000) / (Decimal("787.2") - 1500 * 24 / Decimal("730.5")) * D)
    assert m.break_even_ms is not None and abs(m.break_even_ms - expected) < D
    assert float(m.depreciation) == pytest.approx(240_000 / (36 * 730.5) * 2400, rel=1e-9)
    # Half the GPUs for the last 30 days: the projection slows down.
    half = [held(i, g, B, now - 30 * D if g >= 4 else now) for i, g in enumerate(range(8))]
    m2 = amortization_report(Inputs(Period(B, now), now, half, {"gpu-01": p},
                                    PRICES)).machines[0]
    assert m2.trailing_utilization == pytest.approx(0.5)
    assert m2.break_even_ms is not None and m2.break_even_ms > m.break_even_ms
    # Idle: never at this utilization.
    idle = amortization_report(Inputs(Period(B, now), now, [], {"gpu-01": p}, PRICES))
    assert idle.machines[0].break_even_ms is None and idle.total.break_even_ms is None
    # Long enough at full use: reached, on the day the lines crossed.
    later = B + 400 * D
    full = [held(i, g, B, later) for i, g in enumerate(range(8))]
    done = amortization_report(Inputs(Period(B, later), later, full, {"gpu-01": p}, PRICES))
    assert done.machines[0].break_even_reached
    assert abs(done.machines[0].break_even_ms - expected) <= D  # type: ignore[operator]
    assert done.total.break_even_reached and len(done.total.series) == 400


def test_amortization_groups_machines_by_model() -> None:
    """Two A100 boxes and an H100 box: a ledger per model beside the total (one model: none)."""
    from dataclasses import replace

    now = B + 100 * D
    a1, a2 = priced("a-1"), priced("a-2")
    h = replace(priced("h-1", gpus=4), gpu_model="H100")
    busy = [held(1, 0, B, now, node="a-1"), held(2, 0, B, now, node="h-1")]
    report = amortization_report(Inputs(Period(B, now), now, busy,
                                        {"a-1": a1, "a-2": a2, "h-1": h}, PRICES))
    models = {m.key: m for m in report.models}
    assert set(models) == {"all A100", "all H100"}
    assert models["all A100"].gpus == 16 and models["all H100"].gpus == 4
    assert models["all A100"].price == 2 * a1.machine.price
    assert models["all A100"].used_gpu_hours == pytest.approx(2400)
    assert models["all A100"].owned_cost + models["all H100"].owned_cost == \
        report.total.owned_cost
    single = amortization_report(Inputs(Period(B, now), now, busy[:1], {"a-1": a1}, PRICES))
    assert single.models == []


def test_waste_counts_what_idle_reclaim_gave_back() -> None:
    """Two jobs ended idle: one 4-GPU job 3 h before its time limit, on a machine of PRODUCT's
    worked example ($1.397 a GPU-hour, $1.39744 unrounded), and one without a time limit
    (counted, no hours)."""
    from clusterctl.cost.model import cents
    from clusterctl.reports.inputs import IdleEnded

    start = B + 100 * 24 * H
    inputs = Inputs(Period(start, start + 10 * H), start + 10 * H, [], {"gpu-01": priced()},
                    PRICES, idle_ended=[IdleEnded(1, "gpu-01", 4, start + H, start + 4 * H),
                                        IdleEnded(2, "gpu-01", 2, start + 2 * H, None)])
    r = waste_report(inputs).reclaimed
    assert (r.jobs, r.gpus, r.without_limit, r.gpu_hours) == (2, 6, 1, 12)
    assert cents(r.cost) == cents(12 * priced().rate_in_life * H)
    assert cents(r.cost) == Decimal("16.77")  # 12 x $1.39744 (c before rounding)


def test_hours_before_a_nodes_first_sample_are_not_tracked_not_idle() -> None:
    """A machine bought long ago whose agent started 12 h into a 20 h period: those 12 h are
    "not tracked" (neither idle nor in the allocated share), in utilization and in cost, and
    the cost rows still add up to the machines' capacity plus energy to the cent. A job held
    before the first sample moves the start of tracking back to it (it was in use); a node
    neither sampled nor held is not tracked at all."""
    from clusterctl.reports.cost import accounted, cost_report

    start = B + 10 * D
    jobs = [held(1, 0, start + 14 * H, start + 18 * H),
            held(2, 0, start + 2 * H, start + 6 * H, node="gpu-02")]
    machines = {"gpu-01": priced(), "gpu-02": priced("gpu-02"), "gpu-03": priced("gpu-03")}
    inputs = Inputs(Period(start, start + 20 * H), start + 20 * H, jobs, machines, PRICES,
                    first_sample_ms={"gpu-01": start + 12 * H, "gpu-02": start + 10 * H})
    util = utilization_report(inputs, "node")
    rows = {r.key: r for r in util.rows}
    assert rows["gpu-01"].not_tracked_gpu_hours == pytest.approx(8 * 12)
    assert rows["gpu-01"].idle_gpu_hours == pytest.approx(8 * 8 - 4)
    assert util.allocated_share(rows["gpu-01"]) == pytest.approx(4 / (8 * 8))
    assert rows["gpu-02"].not_tracked_gpu_hours == pytest.approx(8 * 2)  # its job at 2 h
    assert rows["gpu-03"].not_tracked_gpu_hours == pytest.approx(8 * 20)
    assert rows["gpu-03"].available_ms == 0
    assert util.total.not_tracked_gpu_hours == pytest.approx(96 + 16 + 160)
    days = utilization_report(inputs, "day").series
    assert days[0][1] is None  # hour 0: no node tracked yet: unknown, not 0 % allocated
    assert days[2][1] == pytest.approx(1 / 8)  # hour 2: gpu-02 tracked, its job holds 1 of 8

    cost = cost_report(inputs, "job")
    assert cost.not_tracked.gpu_hours == pytest.approx(96 + 16 + 160)
    assert cost.idle.gpu_hours == pytest.approx(3 * 160 - 272 - 8)
    assert cost.not_tracked.capacity_cost == pytest.approx(cost.capacity_cost * 272 / 480)
    assert abs(accounted(cost) - (cost.capacity_cost + cost.energy_cost)) < Decimal("1e-15")
    loaded = cost_report(inputs, "job", loaded=True)
    assert abs(accounted(loaded) - accounted(cost)) < Decimal("1e-15")
    assert cost_report(replace_first(inputs), "job").not_tracked.gpu_ms == 0


def replace_first(inputs: Inputs) -> Inputs:
    """The same history without any telemetry record (``plan``'s replays): all tracked."""
    return Inputs(inputs.period, inputs.now_ms, inputs.held, inputs.machines, inputs.prices)
