"""Sample storage on real SQLite and PostgreSQL: idempotent bulk ingest, the live device view,
rollups that add up, late samples, retention, and usage computed from stored points."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest
from factories import as_reads, new_job, sample_batch

from clusterctl.store import HeldGpu, JobStore, SampleStore, UserStore, make_engine, migrate
from clusterctl.usage import usage_in_window

T0 = 1_800_000_000.0


@pytest.fixture
def samples(db_url: str) -> SampleStore:
    migrate(db_url)
    return SampleStore(make_engine(db_url))


def test_batch_twice_stores_once(samples: SampleStore) -> None:
    batch = sample_batch(reads=10)
    assert samples.ingest("n1", as_reads(batch)).inserted == 20
    again = samples.ingest("n1", as_reads(batch))
    assert (again.inserted, again.duplicates) == (0, 20)
    # a restart re-ships, plus new reads
    overlap = samples.ingest("n1", as_reads(sample_batch(reads=15)))
    assert (overlap.inserted, overlap.duplicates) == (10, 20)
    assert samples.count() == 30


def test_same_seq_on_another_boot_or_node_is_a_new_sample(samples: SampleStore) -> None:
    samples.ingest("n1", as_reads(sample_batch(reads=3)))
    assert samples.ingest("n1", as_reads(sample_batch(reads=3, boot="boot-2"))).inserted == 6
    assert samples.ingest("n2", as_reads(sample_batch("n2", reads=3))).inserted == 6


def test_devices_hold_the_latest_read_even_when_batches_arrive_late(
        samples: SampleStore) -> None:
    samples.ingest("n1", as_reads(sample_batch(reads=5, t0=T0 + 100, util=0.9)))
    # older, from a spool
    samples.ingest("n1", as_reads(sample_batch(reads=5, t0=T0, seq0=100, util=0.1)))
    devs = samples.devices()
    assert [(d.node, d.gpu_index, d.model) for d in devs] == [("n1", 0, "A100"), ("n1", 1, "A100")]
    assert all(d.utilization == 0.9 and d.last_ms == (T0 + 120) * 1000 for d in devs)


def test_ingest_fills_the_gpu_uuid_of_open_allocations(db_url: str,
                                                       samples: SampleStore) -> None:
    jobs = JobStore(samples.engine)
    job = jobs.submit(new_job(gpus=2))
    att = jobs.start(job, ["ray-node-1"])
    assert att is not None
    jobs.mark_running(job.id, att, [HeldGpu(0, "n1", "ray-node-1", 1)],
                      datetime.fromtimestamp(T0, timezone.utc))
    samples.ingest("n1", as_reads(sample_batch(reads=1)))
    (alloc,) = jobs.allocations(job.id)
    assert alloc.gpu_uuid == "GPU-n1-1"


def test_rollups_add_up_to_the_raw_samples(samples: SampleStore) -> None:
    batch = sample_batch(reads=24 * 60, interval=5.0, energy_per_read_mj=2_000)  # 2 hours
    samples.ingest("n1", as_reads(batch))
    assert samples.rollup() == 1
    assert samples.rollup() == 0  # nothing new
    raw = samples.points("n1", 0, "GPU-n1-0", T0, T0 + 7200)
    minutes = samples.points("n1", 0, "GPU-n1-0", T0, T0 + 7200, raw_since=T0 + 1)
    assert len(minutes) == 120
    a = usage_in_window(raw, T0 - 5, T0 + 7195)
    b = usage_in_window(minutes, T0 - 5, T0 + 7195)
    assert a.energy_mj == pytest.approx(2_000 * 1440)
    assert b.energy_mj == pytest.approx(a.energy_mj, rel=0.01)
    assert b.avg_utilization == pytest.approx(0.5)
    assert b.coverage == pytest.approx(1.0, abs=0.01)
    with samples.engine.connect() as c:
        from sqlalchemy import text

        hours = c.execute(text("SELECT sum(samples), sum(energy_mj) FROM gpu_rollup "
                               "WHERE resolution_s = 3600 AND gpu_uuid = 'GPU-n1-0'")).one()
    assert (hours[0], hours[1]) == (1440, pytest.approx(2_000 * 1440))


def test_late_samples_rebuild_their_buckets(samples: SampleStore) -> None:
    samples.ingest("n1", as_reads(sample_batch(reads=12, t0=T0 + 60)))  # minute 2
    samples.rollup()
    # minute 1, shipped late
    samples.ingest("n1", as_reads(sample_batch(reads=12, t0=T0, seq0=100)))
    samples.rollup()
    pts = samples.points("n1", 0, "GPU-n1-0", T0, T0 + 120, raw_since=T0 + 1)
    assert [round(p.covered_s) for p in pts] == [60, 60]


def test_expiry_keeps_hour_rollups_and_what_is_not_rolled_up(samples: SampleStore) -> None:
    samples.ingest("n1", as_reads(sample_batch(reads=720, t0=T0)))  # one hour
    samples.rollup()
    # not rolled up
    samples.ingest("n1", as_reads(sample_batch(reads=10, t0=T0 + 3600, seq0=10_000)))
    raw, minutes = samples.expire(raw_before=T0 + 7200, minutes_before=T0 + 7200)
    assert raw == 1440 and minutes == 120  # the newer 20 wait for their rollup
    assert samples.count() == 20
    with samples.engine.connect() as c:
        from sqlalchemy import text

        assert c.execute(text("SELECT count(*) FROM gpu_rollup WHERE resolution_s = 3600")
                         ).scalar() == 2


def test_node_tokens(db_url: str) -> None:
    migrate(db_url)
    users = UserStore(make_engine(db_url))
    first = users.issue_node_token("n1", "root")
    assert first.startswith("ccn_") and users.node_for_token(first) == "n1"
    second = users.issue_node_token("n1", "root")
    assert users.node_for_token(first) is None and users.node_for_token(second) == "n1"
    assert users.by_token(second) is None  # a node token is not a user token


def test_energy_across_a_counter_reset_from_reader_to_usage(samples: SampleStore,
                                                            # type: ignore[no-untyped-def]
                                                            tmp_path) -> None:
    """The whole chain on a GPU whose counter resets every 30 s: simulated reader → agent rows
    (through its spool) → the store → usage. The energy must match the power drawn, with no
    negative or doubled interval."""
    from agents.agent import Agent
    from agents.simulated import PROFILES, SimulatedReader
    from agents.spool import Spool

    clock = [T0]
    reader = SimulatedReader(2, node="n1", profiles={1: PROFILES["energy-reset"]},
                             busy=lambda: {0, 1}, clock=lambda: clock[0], seed=3)
    spool = Spool(tmp_path / "spool.db", 100_000)
    agent = Agent(reader, "n1", interval_s=5, boot_id="boot", spool=spool)
    powers: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(60):  # five minutes
        snap = agent.tick()
        for g in snap.gpus:
            assert g.power_watts is not None
            powers[g.index].append(g.power_watts)
        clock[0] += 5
    _, rows = spool.oldest(10_000)
    assert all(r["energy_mj"] is None or r["energy_mj"] >= 0 for r in rows)
    counters = [r["energy_counter_mj"] for r in rows if r["gpu_index"] == 1]
    assert sum(b < a for a, b in itertools.pairwise(counters)) >= 5  # it did reset
    samples.ingest("n1", as_reads(rows))
    for index in (0, 1):
        uuid = reader.gpus[index].uuid
        used = usage_in_window(samples.points("n1", index, uuid, T0, T0 + 300), T0, T0 + 295)
        expected = sum(p * 5 for p in powers[index][:-1]) * 1000  # what was drawn, in mJ
        assert used.energy_mj is not None
        if index == 0:  # no reset: exactly the counter difference
            assert used.energy_mj == pytest.approx(expected, rel=0.001)
        else:  # a reset loses what was drawn between the last read before it and the reset
            assert expected * 0.8 < used.energy_mj <= expected * 1.001
