"""The controller's side of telemetry: a job's usage from its allocations and the stored
samples, and the housekeeping thread that rolls samples up and expires old ones."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from clusterctl.gpu_read import GpuRead
from clusterctl.store import Allocation, AllocationUsageStore, SampleStore
from clusterctl.usage import Idle, Point, Usage, combine, idle_time, usage_in_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuUsage:
    allocation: Allocation
    usage: Usage


def _window(a: Allocation, samples: SampleStore, now: float,
            raw_since: float | None) -> tuple[list[Point], float, float]:
    start = a.started_at.timestamp()
    end = a.ended_at.timestamp() if a.ended_at else now
    return samples.points(a.node, a.gpu_index, a.gpu_uuid, start, end, raw_since), start, end


def job_usage(allocations: Sequence[Allocation], samples: SampleStore, now: float,
              raw_since: float | None) -> tuple[Usage, list[GpuUsage]] | None:
    """Usage of each GPU a job held (over each allocation's window) and of all of them."""
    if not allocations:
        return None
    per_gpu = [GpuUsage(a, usage_in_window(*_window(a, samples, now, raw_since)))
               for a in allocations]
    return combine([g.usage for g in per_gpu]), per_gpu


def allocation_usage(a: Allocation, samples: SampleStore, now: float, raw_since: float | None,
                     idle_threshold: float) -> tuple[Usage, Idle]:
    """One allocation's usage and idle time, from raw samples while they are kept."""
    points, start, end = _window(a, samples, now, raw_since)
    return usage_in_window(points, start, end), idle_time(points, start, end, idle_threshold)


CLOCK_SKEW_S = 300.0
"""How far ahead of the controller's clock a sample may be stamped (agents' clocks drift)."""


def within_clock(rows: Sequence[GpuRead], now_s: float, keep_s: float,
                 skew_s: float = CLOCK_SKEW_S) -> tuple[list[GpuRead], dict[str, int]]:
    """The samples stamped inside the window the controller accepts, and how many were not,
    by reason. One stamped far in the future (a node whose clock is wrong) would otherwise pin
    its GPU's live view forever; one older than the raw retention would be expired at once."""
    kept: list[GpuRead] = []
    refused = {"future": 0, "too_old": 0}
    for r in rows:
        t = r.t
        if t > now_s + skew_s:
            refused["future"] += 1
        elif t < now_s - keep_s:
            refused["too_old"] += 1
        else:
            kept.append(r)
    return kept, refused


class Housekeeper:
    """Every ``every_s``: roll new samples up, write the usage records of allocations that have
    ended, then expire raw samples and minute rollups past their retention. One thread; a failed
    pass is logged and retried at the next."""

    def __init__(self, samples: SampleStore, records: AllocationUsageStore, *,
                 raw_keep_s: float, minute_keep_s: float, idle_threshold: float,
                 grace_s: float = 120.0, every_s: float = 60.0,
                 clock: Callable[[], float] = time.time,
                 also: Sequence[Callable[[float], object]] = ()) -> None:
        self.samples = samples
        self.records = records
        self.idle_threshold = idle_threshold
        self.grace_s = grace_s
        self.raw_keep_s = raw_keep_s
        self.minute_keep_s = minute_keep_s
        self.every_s = every_s
        self.clock = clock
        self.also = also
        """Further housekeeping run each pass with the time (the controller's file expiry)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        self.samples.rollup()
        self.summarize()
        now = self.clock()
        self.samples.expire(now - self.raw_keep_s, now - self.minute_keep_s)
        for step in self.also:
            step(now)

    def summarize(self, limit: int = 500) -> int:
        """Write the records of up to ``limit`` ended allocations; returns how many."""
        now = self.clock()
        at = datetime.fromtimestamp(now, timezone.utc)
        pending = self.records.pending(at, self.grace_s, limit)
        for a in pending:
            assert a.id is not None
            usage, idle = allocation_usage(a, self.samples, now, now - self.raw_keep_s,
                                           self.idle_threshold)
            self.records.save(a, usage, idle, at)
        return len(pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception:
                log.exception("sample rollup failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
