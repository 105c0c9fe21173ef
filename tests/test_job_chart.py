"""A job's chart on its page: readings of several GPUs into steps, as a person reads them."""

from __future__ import annotations

import pytest

from clusterctl.api.web.job_chart import BUCKETS, steps
from clusterctl.usage import Point


def read(t: float, util: float, power: float, mem: int) -> Point:
    return Point(start=t, end=t + 5, covered_s=5, util_sum=util, util_n=1, power_sum=power,
                 power_n=1, mem_max=mem)


def test_steps_average_utilization_sum_power_and_keep_the_fullest_memory() -> None:
    gpu0 = [read(100, 0.2, 100, 10), read(200, 0.4, 150, 30)]
    gpu1 = [read(100, 0.6, 300, 20), read(200, 0.8, 250, 5)]
    out = steps([gpu0, gpu1], start=100, end=205)
    assert len(out) == 2 and out[0].at < 5 < 95 < out[1].at <= 105
    assert out[0].utilization == pytest.approx(0.4) and out[1].utilization == pytest.approx(0.6)
    assert out[0].power_w == pytest.approx(400) and out[1].power_w == pytest.approx(400)
    assert (out[0].memory_bytes, out[1].memory_bytes) == (20, 30)


def test_a_long_run_draws_in_a_bounded_number_of_steps() -> None:
    week = [read(t, 0.5, 200, 1) for t in range(0, 7 * 86400, 5)]
    out = steps([week], start=0, end=7 * 86400)
    assert len(out) == BUCKETS
    assert all(s.utilization == pytest.approx(0.5) for s in out)
    assert steps([[]], 0, 10) == []
