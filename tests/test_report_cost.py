"""`report cost` arithmetic: PRODUCT.md's worked example, the idle row, months, and the
conservation law (rows add up to the machines' capacity cost plus the energy cost)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl.cost.inventory import SiteSettings
from clusterctl.cost.model import Machine, cents, machine_capacity_cost
from clusterctl.reports.cost import IDLE, CostRow, accounted, cost_report, top_rows
from clusterctl.reports.inputs import MS_PER_HOUR, Inputs, Period, Priced
from clusterctl.reports.table import Held

H = MS_PER_HOUR
BOUGHT = datetime(2025, 3, 1, tzinfo=timezone.utc)
B = int(BOUGHT.timestamp() * 1000)
PRICES = SiteSettings(Decimal("0.15"), Decimal("1.4"), "USD")


def same(a: Decimal, b: Decimal) -> bool:
    """Equal to far below a cent: Decimal keeps 28 digits, so sums grouped differently may
    differ in the last one."""
    return abs(a - b) < Decimal("1e-15")


def priced(node: str = "gpu-01", purchased: datetime = BOUGHT, life: int = 36,
           gpus: int = 8) -> Priced:
    m = Machine(price=Decimal(300_000), resale=Decimal("0.2"), life_months=life, gpus=gpus,
                monthly_fees=Decimal(1500), purchased=purchased)
    return Priced(node, "A100", m, Decimal("4.10"))


def held(job: int, gpu: int, start: int, end: int, kwh: float = 0.0, node: str = "gpu-01",
         user: str = "alice", team: str = "vision") -> Held:
    return Held(job_id=job, job_name="train", user=user, team=team, node=node, gpu_index=gpu,
                start_ms=start, end_ms=end, covered_s=(end - start) / 1000,
                energy_mj=kwh * 3.6e9, util_avg=0.8)


def test_worked_example_to_the_cent() -> None:
    start = B + 100 * 24 * H
    job = [held(7, g, start, start + 10 * H, kwh=3.0) for g in range(4)]
    inputs = Inputs(Period(start - 5 * H, start + 15 * H), start + 20 * H, job,
                    {"gpu-01": priced()}, PRICES)
    report = cost_report(inputs, by="job")
    (row,) = report.rows
    assert row.gpu_hours == 40
    assert cents(row.total_cost) == Decimal("58.42")
    assert cents(row.cloud_equivalent) == Decimal("164.00")
    # 8 GPUs for 20 h = 160 GPU-hours, 40 held: 120 idle at c = $1.397.
    assert report.idle.gpu_hours == 120
    assert cents(report.idle.capacity_cost) == cents(report.capacity_cost * 3 / 4)
    assert same(accounted(report), report.capacity_cost + report.energy_cost)


def test_loaded_spreads_the_idle_cost_by_gpu_hours() -> None:
    start = B + 10 * 24 * H
    jobs = [held(1, 0, start, start + 6 * H), held(2, 1, start, start + 2 * H, user="bob")]
    inputs = Inputs(Period(start, start + 10 * H), start + 10 * H, jobs, {"gpu-01": priced()},
                    PRICES)
    plain, loaded = cost_report(inputs, "user"), cost_report(inputs, "user", loaded=True)
    alice = next(r for r in loaded.rows if r.key == "alice")
    assert same(alice.idle_cost, plain.idle.total_cost * 6 / 8)
    assert same(accounted(loaded), accounted(plain))
    assert same(accounted(plain), plain.capacity_cost + plain.energy_cost)


def test_by_service_a_row_holds_its_replicas_and_one_row_the_other_jobs() -> None:
    start = B + 10 * 24 * H
    jobs = [held(1, 0, start, start + 6 * H), held(2, 1, start, start + 2 * H),
            held(3, 2, start, start + 3 * H), held(4, 3, start, start + H)]
    inputs = Inputs(Period(start, start + 10 * H), start + 10 * H, jobs, {"gpu-01": priced()},
                    PRICES, service_of={1: "chat", 3: "chat", 2: "embed"})
    by_job = {r.key: r for r in cost_report(inputs, "job").rows}
    rows = {r.key: r for r in cost_report(inputs, "service").rows}
    assert set(rows) == {"chat", "embed", "(jobs)"}
    assert rows["chat"].gpu_hours == 9 and rows["(jobs)"].gpu_hours == 1
    assert same(rows["chat"].total_cost, by_job["1"].total_cost + by_job["3"].total_cost)
    assert same(rows["embed"].total_cost, by_job["2"].total_cost)


def test_depreciation_stops_at_end_of_life_and_nothing_before_purchase() -> None:
    p = priced(life=1)
    end_of_life = p.life_end_ms
    job = [held(1, 0, end_of_life - H, end_of_life + H)]
    report = cost_report(Inputs(Period(end_of_life - H, end_of_life + H), end_of_life + H, job,
                                {"gpu-01": p}, PRICES))
    (row,) = report.rows
    assert same(row.capacity_cost, p.rate_in_life * H + p.rate_after_life * H)
    assert same(p.rate_after_life * H, Decimal(1500) / Decimal("730.5") / 8)
    before = [held(2, 0, B - 5 * H, B + 5 * H)]
    r2 = cost_report(Inputs(Period(B - 10 * H, B + 10 * H), B + 10 * H, before, {"gpu-01": p},
                            PRICES))
    assert same(r2.rows[0].capacity_cost, p.rate_in_life * 5 * H)  # none before purchase
    assert same(r2.capacity_cost, p.rate_in_life * 10 * H * 8)  # the machine exists for 10 h


def test_a_job_spanning_two_months_is_split_between_them() -> None:
    april = int(datetime(2025, 4, 1, tzinfo=timezone.utc).timestamp() * 1000)
    job = [held(1, 0, april - 6 * H, april + 4 * H, kwh=10.0)]
    report = cost_report(Inputs(Period(april - 24 * H, april + 24 * H), april + 24 * H, job,
                                {"gpu-01": priced()}, PRICES), by="month")
    march, apr = report.rows
    assert (march.key, apr.key) == ("2025-03", "2025-04")
    assert (march.gpu_hours, apr.gpu_hours) == (6, 4)
    assert abs(march.energy_mj / 3.6e9 - 6.0) < 1e-9 and abs(apr.energy_mj / 3.6e9 - 4.0) < 1e-9
    assert same(march.capacity_cost / apr.capacity_cost, Decimal("1.5"))


def test_a_machine_bought_in_the_middle_of_the_period() -> None:
    late = priced("gpu-02", purchased=datetime(2025, 6, 1, tzinfo=timezone.utc))
    start = int(datetime(2025, 5, 1, tzinfo=timezone.utc).timestamp() * 1000)
    end = int(datetime(2025, 7, 1, tzinfo=timezone.utc).timestamp() * 1000)
    report = cost_report(Inputs(Period(start, end), end, [], {"gpu-02": late}, PRICES))
    assert report.idle.gpu_ms == 8 * (end - late.purchased_ms)
    assert same(report.capacity_cost, late.rate_in_life * 8 * (end - late.purchased_ms))


def test_jobs_on_unknown_nodes_are_counted_and_flagged() -> None:
    job = [held(1, 0, B, B + H, node="mystery")]
    report = cost_report(Inputs(Period(B, B + H), B + H, job, {}, PRICES))
    assert report.rows[0].gpu_hours == 1 and report.rows[0].capacity_cost == 0
    assert "mystery" in report.warnings[0]


@st.composite
def clusters(draw: st.DrawFn) -> Inputs:
    nodes = {}
    for n in range(draw(st.integers(1, 3))):
        bought = B + draw(st.integers(-400, 400)) * 24 * H
        days_to_sale = draw(st.none() | st.integers(0, 1500))
        sold = None if days_to_sale is None else bought + days_to_sale * 24 * H
        m = Machine(price=Decimal(draw(st.integers(1000, 500_000))),
                    resale=Decimal(draw(st.integers(0, 100))) / 100,
                    life_months=draw(st.integers(1, 48)), gpus=draw(st.integers(1, 8)),
                    monthly_fees=Decimal(draw(st.integers(0, 3000))),
                    purchased=datetime.fromtimestamp(bought / 1000, timezone.utc),
                    sold=None if sold is None else datetime.fromtimestamp(sold / 1000,
                                                                          timezone.utc),
                    sold_for=None if sold is None else Decimal(draw(st.integers(0, 400_000))))
        nodes[f"n{n}"] = Priced(f"n{n}", draw(st.sampled_from(["A100", "H100"])), m,
                                Decimal("4.10"))
    start = B + draw(st.integers(-500, 1500)) * 24 * H + draw(st.integers(0, H))
    end = start + draw(st.integers(1, 2000)) * H + draw(st.integers(0, H))
    held_list = []
    for node, p in nodes.items():
        for gpu in range(p.machine.gpus):
            t = start - draw(st.integers(0, 100)) * H
            for _ in range(draw(st.integers(0, 4))):  # jobs one after another on this GPU
                a = t + draw(st.integers(0, 300 * H))
                b = a + draw(st.integers(1, 300 * H))
                held_list.append(held(len(held_list) + 1, gpu, a, b, node=node,
                                      kwh=draw(st.floats(0, 500)),
                                      user=draw(st.sampled_from(["ann", "bo"])),
                                      team=draw(st.sampled_from(["x", "y"]))))
                t = b
    energy = {(node, start // H * H + i * H): draw(st.floats(0, 5e9))
              for node in nodes for i in range(3)}
    return Inputs(Period(start, end), end, held_list, nodes, PRICES, node_energy_mj=energy)


@settings(max_examples=150, deadline=None)
@given(clusters(), st.sampled_from(["job", "user", "team", "gpu-type", "month", "service"]),
       st.booleans())
def test_jobs_plus_idle_equal_capacity_plus_energy(inputs: Inputs, by: str,
                                                   loaded: bool) -> None:
    report = cost_report(inputs, by, loaded)
    whole = report.capacity_cost + report.energy_cost
    assert cents(accounted(report)) == cents(whole)
    assert same(accounted(report), whole)
    assert report.idle.gpu_ms >= 0 and all(r.total_cost >= 0 for r in report.rows)
    # The same capacity by the cost model's own formula (datetimes, sales included).
    period = [datetime.fromtimestamp(ms / 1000, timezone.utc)
              for ms in (inputs.period.start_ms, inputs.period.end_ms)]
    by_model = sum(machine_capacity_cost(p.machine, *period) for p in inputs.machines.values())
    assert abs(report.capacity_cost - by_model) < Decimal("0.01")
    assert (IDLE not in {r.key for r in report.rows})


def test_the_dearest_jobs_and_one_row_for_the_rest() -> None:
    rows = [CostRow(str(i), gpu_ms=1000 * i, capacity_cost=Decimal(i)) for i in range(1, 6)]
    shown, rest = top_rows(rows, 2)
    assert [r.key for r in shown] == ["5", "4"]
    assert rest is not None and rest.key == "(3 more)"
    assert (rest.gpu_ms, rest.total_cost) == (6000, Decimal(6))  # jobs 1, 2 and 3
    page, rest = top_rows(rows, 2, offset=2)
    assert [r.key for r in page] == ["3", "2"] and rest is not None and rest.gpu_ms == 10_000
    every, none = top_rows(rows, 10)
    assert len(every) == 5 and none is None


@given(clusters(), st.booleans(), st.integers(1, 6), st.integers(0, 4))
@settings(deadline=None)
def test_a_page_of_jobs_is_the_full_reports_page(inputs: Inputs, loaded: bool, limit: int,
                                                 offset: int) -> None:
    """By job, a page is built from the columns for its rows only (a year has 100,000 jobs):
    its rows, the rest and the totals are those of the report built in full, to the cent."""
    full = cost_report(inputs, "job", loaded)
    paged = cost_report(inputs, "job", loaded, page=(limit, offset))
    shown, rest = top_rows(full.rows, limit, offset)
    assert [r.key for r in paged.rows] == [r.key for r in shown]
    for a, b in zip(paged.rows, shown, strict=True):
        assert (a.gpu_ms, a.labels) == (b.gpu_ms, b.labels)
        for f in ("capacity_cost", "energy_cost", "idle_cost", "cloud_equivalent"):
            assert same(getattr(a, f), getattr(b, f)), f
    assert (paged.rest is None) == (rest is None)
    if rest is not None and paged.rest is not None:
        assert (paged.rest.key, paged.rest.gpu_ms) == (rest.key, rest.gpu_ms)
        assert cents(paged.rest.total_cost) == cents(rest.total_cost)
    assert paged.row_count == len(full.rows)
    assert cents(accounted(paged)) == cents(accounted(full))
    assert cents(paged.energy_cost) == cents(full.energy_cost)
