"""A job's utilization, memory and power over its run, for its page: every GPU it held, read
from the same samples (and, past the raw retention, the same minute rollups) that ``show``'s
figures come from, averaged into at most ``BUCKETS`` steps so a week-long job draws as fast as
a minute-long one."""

from __future__ import annotations

import time
from dataclasses import dataclass

from clusterctl.api.schemas import AllocationOut
from clusterctl.controller.interface import ControllerApi
from clusterctl.usage import Point

BUCKETS = 240
"""Steps across the chart: finer than a page shows."""


@dataclass(frozen=True)
class Step:
    at: float
    """Seconds since the job's first allocation started."""
    utilization: float | None
    power_w: float | None
    """Summed over the GPUs read in this step: what the job drew."""
    memory_bytes: int | None
    """The most any of its GPUs held."""


def steps(series: list[list[Point]], start: float, end: float) -> list[Step]:
    """Pure: each GPU's readings, into steps of equal width over ``[start, end]``."""
    width = max(end - start, 1.0) / BUCKETS
    util = [[0.0, 0] for _ in range(BUCKETS)]
    power: list[dict[int, list[float]]] = [{} for _ in range(BUCKETS)]
    memory: list[int | None] = [None] * BUCKETS
    for gpu, points in enumerate(series):
        for p in points:
            i = min(BUCKETS - 1, max(0, int(((p.start + p.end) / 2 - start) // width)))
            util[i][0] += p.util_sum
            util[i][1] += p.util_n
            if p.power_n:
                power[i].setdefault(gpu, []).append(p.power_sum / p.power_n)
            if p.mem_max is not None:
                memory[i] = max(memory[i] or 0, p.mem_max)
    out = []
    for i in range(BUCKETS):
        if not util[i][1] and not power[i] and memory[i] is None:
            continue
        out.append(Step(at=i * width, utilization=util[i][0] / util[i][1] if util[i][1] else None,
                        power_w=sum(sum(v) / len(v) for v in power[i].values()) or None,
                        memory_bytes=memory[i]))
    return out


def job_steps(ctl: ControllerApi, allocations: list[AllocationOut]) -> list[Step]:
    if not allocations:
        return []
    now = time.time()
    start = min(a.started_at.timestamp() for a in allocations)
    end = max((a.ended_at.timestamp() if a.ended_at else now) for a in allocations)
    raw_since = now - ctl.settings.sample_retention_s
    series = [ctl.samples.points(a.node, a.gpu_index, a.gpu_uuid, a.started_at.timestamp(),
                                 a.ended_at.timestamp() if a.ended_at else now, raw_since)
              for a in allocations]
    return steps(series, start, end)
