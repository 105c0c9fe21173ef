"""Per-allocation usage records: written once a job's samples are in, rewritten when late
samples land in its window (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from factories import as_reads, new_job, sample_batch

from clusterctl.controller.telemetry import Housekeeper
from clusterctl.states import JobState
from clusterctl.store import (
    AllocationUsageStore,
    HeldGpu,
    JobStore,
    SampleStore,
    make_engine,
    migrate,
)
from clusterctl.usage import Point, idle_time

T0 = 1_800_000_000.0


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def test_records_follow_the_samples(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    jobs, samples, records = JobStore(engine), SampleStore(engine), AllocationUsageStore(engine)
    now = [T0]
    keeper = Housekeeper(samples, records, raw_keep_s=14 * 86400, minute_keep_s=90 * 86400,
                         idle_threshold=0.1, grace_s=120, clock=lambda: now[0])
    job = jobs.submit(new_job(gpus=2))
    attempt = jobs.start(job, ["ray-1"])
    assert attempt is not None and job.id is not None
    jobs.mark_running(job.id, attempt, [HeldGpu(0, "n1", "ray-1", 0), HeldGpu(0, "n1", "ray-1", 1)],
                      at(T0))
    # 40 minutes: 10 busy, then 30 idle on both GPUs; the reads from 20 to 25 min come late.
    busy = sample_batch(reads=120, t0=T0 + 5, util=0.9, energy_per_read_mj=1_000_000)
    idle = sample_batch(reads=360, t0=T0 + 605, seq0=121, util=0.02, energy_per_read_mj=300_000)
    late = [r for r in idle if T0 + 1200 < float(r["t"]) <= T0 + 1500]  # type: ignore[arg-type]
    samples.ingest("n1", as_reads(busy + [r for r in idle if r not in late]))
    job = jobs.get(job.id)
    assert job is not None
    jobs.finish(job, JobState.SUCCEEDED, "exit 0", exit_code=0, ended_at=at(T0 + 2400))

    now[0] = T0 + 2400 + 60
    keeper.run_once()
    assert records.pending(at(now[0] + 3600), 0) != []  # inside the grace period: not yet
    now[0] = T0 + 2400 + 180
    keeper.run_once()
    allocs = jobs.allocations(job.id)
    first = records.get([a.id for a in allocs])  # type: ignore[misc]
    assert len(first) == 2
    r = next(iter(first.values()))
    assert r.window_s == pytest.approx(2400)
    assert r.covered_s == pytest.approx(2100, abs=10)  # 5 minutes missing
    assert r.longest_idle_s == pytest.approx(900, abs=10)  # the gap breaks the idle stretch
    assert r.idle_s == pytest.approx(1500, abs=10)

    samples.ingest("n1", as_reads(late))  # the agent's spool empties after an outage
    keeper.run_once()
    again = records.get([a.id for a in allocs])  # type: ignore[misc]
    r = again[r.allocation_id]
    assert r.covered_s == pytest.approx(2400, abs=10)
    assert r.longest_idle_s == pytest.approx(1800, abs=10)
    assert r.energy_mj == pytest.approx(120 * 1e6 + 360 * 3e5, rel=0.01)
    assert r.util_avg == pytest.approx((600 * 0.9 + 1800 * 0.02) / 2400, rel=0.01)


def test_idle_time_counts_stretches_not_gaps() -> None:
    def p(t: float, util: float) -> Point:
        return Point(start=t - 60, end=t, covered_s=60, util_sum=util, util_n=1)

    pts = [p(60 * i, 0.05) for i in range(1, 11)] + [p(60 * i, 0.5) for i in range(11, 13)]
    pts += [p(60 * i, 0.0) for i in range(20, 26)]  # after a 7-minute gap
    idle = idle_time(pts, 0, 60 * 26, threshold=0.1)
    assert idle.idle_s == pytest.approx(16 * 60)
    assert idle.longest_s == pytest.approx(10 * 60)
    clipped = idle_time(pts, 30, 60 * 5, threshold=0.1)
    assert clipped.idle_s == pytest.approx(270) and clipped.longest_s == pytest.approx(270)
