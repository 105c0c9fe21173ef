"""Reports from a real database (SQLite and PostgreSQL): history written the way the controller
writes it (jobs, allocations, agent batches, rollups, usage records), then every report built
through the controller's report service."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from factories import as_reads, new_job, sample_batch

from clusterctl.controller.reports import ReportService, build
from clusterctl.controller.telemetry import Housekeeper
from clusterctl.cost.inventory import HardwareSpec
from clusterctl.states import JobState
from clusterctl.store import (
    AllocationUsageStore,
    CostStore,
    HeldGpu,
    JobStore,
    ReportStore,
    SampleStore,
    make_engine,
    migrate,
)

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def run(jobs: JobStore, gpus: list[int], start: datetime, hours: float, **job: object) -> int:
    j = jobs.submit(new_job(gpus=len(gpus), **job))
    attempt = jobs.start(j, ["ray-1"])
    assert attempt is not None and j.id is not None
    jobs.mark_running(j.id, attempt, [HeldGpu(0, "gpu-01", "ray-1", g) for g in gpus], start)
    j = jobs.get(j.id)
    assert j is not None
    jobs.finish(j, JobState.SUCCEEDED, "exit 0", exit_code=0,
                ended_at=start + timedelta(hours=hours))
    return j.id  # type: ignore[return-value]


def test_every_report_from_the_database(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    jobs, samples, costs = JobStore(engine), SampleStore(engine), CostStore(engine)
    costs.add(HardwareSpec("gpu-01", 4, "A100", Decimal(100_000), date(2026, 1, 1), 36,
                           Decimal("0.2"), Decimal(1000)))
    t0 = T0.timestamp()
    # Two hours of 4 GPUs read every 60 s: GPUs 0-1 busy (300 W), 2-3 idle (60 W). The last
    # read is a minute before the hour, as idle energy is counted in whole hour rollups.
    busy = sample_batch("gpu-01", gpus=2, reads=119, t0=t0 + 60, interval=60, util=0.9,
                        energy_per_read_mj=300 * 60 * 1000)
    idle = [r | {"gpu_index": int(r["gpu_index"]) + 2,  # type: ignore[call-overload]
                 "gpu_uuid": f"GPU-gpu-01-{int(r['gpu_index']) + 2}"}  # type: ignore[call-overload]
            for r in sample_batch("gpu-01", gpus=2, reads=119, t0=t0 + 60, interval=60,
                                  util=0.01, energy_per_read_mj=60 * 60 * 1000)]
    trainer = run(jobs, [0, 1], T0, 2, name="train", user="alice", team="vision")
    notebook = run(jobs, [2], T0, 1.5, name="notebook", user="bob", team="nlp")
    samples.ingest("gpu-01", as_reads(busy + idle))
    now = t0 + 3 * 3600
    keeper = Housekeeper(samples, AllocationUsageStore(engine), raw_keep_s=14 * 86400,
                         minute_keep_s=90 * 86400, idle_threshold=0.1, clock=lambda: now)
    keeper.run_once()
    service = ReportService(ReportStore(engine), costs, samples)
    at = datetime.fromtimestamp(now, timezone.utc)

    cost = build(service, "cost", T0, T0 + timedelta(hours=2), by="job", now=at).wire()
    rows = {r["key"]: r for r in cost["rows"]}
    assert rows[str(trainer)]["gpu_hours"] == pytest.approx(4)
    assert rows[str(trainer)]["energy_kwh"] == pytest.approx(2 * 2 * 0.3, rel=0.02)
    assert rows[str(notebook)]["gpu_hours"] == pytest.approx(1.5)
    assert rows["(idle)"]["gpu_hours"] == pytest.approx(8 - 5.5)
    rate = (Decimal(80_000) / (36 * Decimal("730.5")) + Decimal(1000) / Decimal("730.5")) / 4
    assert cost["total"]["capacity_cost"] == pytest.approx(float(rate * 8), abs=0.01)
    assert cost["total"]["total_cost"] == pytest.approx(
        cost["total"]["capacity_cost"] + cost["total"]["energy_cost"], abs=0.011)
    # Idle energy: the whole node drew 2 x 0.6 + 2 x 0.12 kWh; the jobs 1.2 + 0.09.
    assert rows["(idle)"]["energy_kwh"] == pytest.approx(1.44 - 1.29, rel=0.05)

    util = build(service, "utilization", T0, T0 + timedelta(hours=2), by="user", now=at).wire()
    users = {r["key"]: r for r in util["rows"]}
    assert users["alice"]["busy_share"] == pytest.approx(0.9)
    assert users["bob"]["busy_share"] == pytest.approx(0.01)
    assert util["total"]["allocated_share"] == pytest.approx(5.5 / 8)
    assert util["total"]["coverage"] == pytest.approx(1.0, abs=0.02)

    waste = build(service, "waste", T0, T0 + timedelta(hours=2), now=at).wire()
    assert [r["job_id"] for r in waste["rows"]] == [notebook]
    assert waste["rows"][0]["idle_gpu_hours"] == pytest.approx(1.5, abs=0.05)
    assert waste["rows"][0]["waste_cost"] == pytest.approx(float(rate * Decimal("1.5")),
                                                           abs=0.02)

    # The flag `jobs` and `show` print comes from the same records.
    assert service.store.idle_jobs([trainer, notebook], 1800) == {notebook}
    assert service.store.idle_jobs([trainer, notebook], 2 * 3600) == set()

    amort = build(service, "amortization", T0, T0, now=at).wire()
    (m,) = amort["machines"]
    assert m["used_gpu_hours"] == pytest.approx(5.5)
    assert m["cloud_equivalent"] == pytest.approx(5.5 * 4.10, abs=0.01)
    assert m["energy_kwh_to_date"] == pytest.approx(1.44, rel=0.05)
    assert m["break_even_status"] in ("projected", "not at this utilization")
    assert service.job_cost(trainer, int(now * 1000)).total_cost == pytest.approx(  # type: ignore[union-attr]
        rows[str(trainer)]["total_cost"], abs=0.01)


def test_hours_before_the_first_sample_are_not_tracked(db_url: str) -> None:
    """A machine bought in January whose agent first reported at T0 + 1 h (its batches
    arriving out of order): over [T0, T0 + 3 h] its first hour is "not tracked", in cost and
    utilization, and not idle; the rows still add up to capacity plus energy."""
    migrate(db_url)
    engine = make_engine(db_url)
    samples, costs = SampleStore(engine), CostStore(engine)
    costs.add(HardwareSpec("gpu-01", 4, "A100", Decimal(100_000), date(2026, 1, 1), 36,
                           Decimal("0.2"), Decimal(1000)))
    t1 = T0.timestamp() + 3600
    samples.ingest("gpu-01", as_reads(sample_batch("gpu-01", gpus=4, reads=10, t0=t1 + 600,
                                                   seq0=11, interval=60)))
    samples.ingest("gpu-01", as_reads(sample_batch("gpu-01", gpus=4, reads=10, t0=t1,
                                                   interval=60)))
    samples.ingest("gpu-01", as_reads(sample_batch("gpu-01", gpus=4, reads=10, t0=t1 + 1200,
                                                   seq0=21, interval=60)))
    assert ReportStore(engine).first_samples() == {"gpu-01": int(t1 * 1000)}
    service = ReportService(ReportStore(engine), costs, samples)
    at, end = T0 + timedelta(hours=3), T0 + timedelta(hours=3)

    cost = build(service, "cost", T0, end, by="job", now=at).wire()
    rows = {r["kind"]: r for r in cost["rows"]}
    assert rows["not-tracked"]["gpu_hours"] == pytest.approx(4)
    assert rows["idle"]["gpu_hours"] == pytest.approx(8)
    assert cost["total"]["not_tracked_cost"] == pytest.approx(
        cost["total"]["capacity_cost"] / 3, abs=0.01)
    assert cost["total"]["total_cost"] == pytest.approx(
        cost["total"]["capacity_cost"] + cost["total"]["energy_cost"], abs=0.011)
    util = build(service, "utilization", T0, end, by="node", now=at).wire()
    assert util["total"]["not_tracked_gpu_hours"] == pytest.approx(4)
    assert util["total"]["idle_gpu_hours"] == pytest.approx(8)
    assert util["total"]["available_gpu_hours"] == pytest.approx(8)
