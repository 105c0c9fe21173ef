"""Usage over a window, from points: coverage, averages over covered time only, energy pro-rated
at the edges, and GPUs combined."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterctl.usage import Point, combine, idle_throughout, usage_in_window


def raw(t: float, util: float | None = 0.5, power: float | None = 200.0,
        energy: float | None = 1000.0, interval: float = 5.0, mem: int | None = 1) -> Point:
    return Point(start=t - interval, end=t, covered_s=interval,
                 util_sum=util or 0.0, util_n=0 if util is None else 1,
                 power_sum=power or 0.0, power_n=0 if power is None else 1, mem_max=mem,
                 energy_mj=energy, energy_start=t - interval if energy is not None else None)


def test_full_window() -> None:
    pts = [raw(5.0 * i, util=0.2 * (i % 2)) for i in range(1, 13)]  # 0..60 s
    u = usage_in_window(pts, 0, 60)
    assert u.coverage == pytest.approx(1.0)
    assert u.avg_utilization == pytest.approx(0.1)
    assert u.energy_mj == pytest.approx(12_000)
    assert u.energy_kwh == pytest.approx(12_000 / 3.6e9)


def test_a_gap_is_unknown_not_idle() -> None:
    pts = [raw(5.0 * i, util=0.8) for i in range(1, 7)]  # only the first 30 s of 60
    u = usage_in_window(pts, 0, 60)
    assert u.coverage == pytest.approx(0.5)
    assert u.avg_utilization == pytest.approx(0.8)  # not 0.4
    assert u.energy_coverage == pytest.approx(0.5)


def test_energy_straddling_the_edges_is_pro_rated() -> None:
    pts = [Point(start=0, end=10, covered_s=10, energy_mj=1000.0, energy_start=0)]
    assert usage_in_window(pts, 5, 100).energy_mj == pytest.approx(500)
    assert usage_in_window(pts, 20, 100).energy_mj is None


def test_energy_across_a_sampling_gap_is_still_counted() -> None:
    """The counter spans the gap: energy is known where utilization is not."""
    pts = [raw(5.0), Point(start=55, end=60, covered_s=5, util_sum=0.5, util_n=1,
                           energy_mj=55_000.0, energy_start=5)]
    u = usage_in_window(pts, 0, 60)
    assert u.energy_mj == pytest.approx(56_000)
    assert u.energy_coverage == pytest.approx(1.0)
    assert u.coverage == pytest.approx(10 / 60)


def test_missing_fields_stay_none() -> None:
    u = usage_in_window([raw(5.0, util=None, power=None, energy=None, mem=None)], 0, 5)
    assert (u.avg_utilization, u.avg_power_watts, u.energy_mj, u.peak_memory_bytes) == (
        None, None, None, None)
    assert u.coverage == pytest.approx(1.0)
    assert usage_in_window([], 0, 5).coverage == 0


def test_combine_weights_by_covered_time() -> None:
    a = usage_in_window([raw(5.0 * i, util=1.0, mem=7) for i in range(1, 13)], 0, 60)
    b = usage_in_window([raw(5.0 * i, util=0.0, mem=3) for i in range(1, 4)], 0, 60)
    c = combine([a, b])
    assert c.avg_utilization == pytest.approx(60 / 75)
    assert c.coverage == pytest.approx(75 / 120)
    assert c.peak_memory_bytes == 7
    assert c.energy_mj == pytest.approx(15_000)


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=50),
       st.floats(min_value=0, max_value=300), st.floats(min_value=0, max_value=300))
def test_bounds(utils: list[float], a: float, b: float) -> None:
    pts = [raw(5.0 * (i + 1), util=x) for i, x in enumerate(utils)]
    start, end = min(a, b), max(a, b)
    u = usage_in_window(pts, start, end)
    assert 0 <= u.coverage <= 1
    if u.avg_utilization is not None:
        assert min(utils) - 1e-9 <= u.avg_utilization <= max(utils) + 1e-9
    if u.energy_mj is not None:
        assert 0 <= u.energy_mj <= 1000 * len(utils) + 1e-6


def test_samples_outside_the_clock_window_are_refused_by_reason() -> None:
    from clusterctl.controller.telemetry import within_clock
    from clusterctl.gpu_read import GpuRead

    now = 1_000_000.0
    rows = [GpuRead.model_construct(t=now + dt) for dt in (-10, 200, 400, -90_000, -3_000)]
    kept, refused = within_clock(rows, now, keep_s=86_400, skew_s=300)
    assert [r.t - now for r in kept] == [-10, 200, -3_000]
    assert refused == {"future": 1, "too_old": 1}


def test_a_gpu_is_idle_only_if_every_reading_says_so_and_readings_cover_the_window() -> None:
    def read(t: float, util: float) -> Point:
        return Point(start=t - 1, end=t, covered_s=1.0, util_sum=util, util_n=1)

    quiet = [read(t, 0.02) for t in range(1, 11)]
    assert idle_throughout(quiet, 0, 10, 0.1)
    assert not idle_throughout([*quiet[:5], read(6, 0.5), *quiet[6:]], 0, 10, 0.1)
    assert not idle_throughout(quiet[:5], 0, 10, 0.1)  # half the window unread: not known
    assert not idle_throughout([], 0, 10, 0.1)
