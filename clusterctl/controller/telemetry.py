"""The controller's side of telemetry: a job's usage from its allocations and the stored
samples, and the housekeeping thread that rolls samples up and expires old ones."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clusterctl.store import Allocation, SampleStore
from clusterctl.usage import Usage, combine, usage_in_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuUsage:
    allocation: Allocation
    usage: Usage


def job_usage(allocations: Sequence[Allocation], samples: SampleStore, now: float,
              raw_since: float | None) -> tuple[Usage, list[GpuUsage]] | None:
    """Usage of each GPU a job held (over each allocation's window) and of all of them."""
    if not allocations:
        return None
    per_gpu = []
    for a in allocations:
        start = a.started_at.timestamp()
        end = a.ended_at.timestamp() if a.ended_at else now
        points = samples.points(a.node, a.gpu_index, a.gpu_uuid, start, end, raw_since)
        per_gpu.append(GpuUsage(a, usage_in_window(points, start, end)))
    return combine([g.usage for g in per_gpu]), per_gpu


class Housekeeper:
    """Every ``every_s``: roll new samples up, then expire raw samples and minute rollups past
    their retention. One thread; a failed pass is logged and retried at the next."""

    def __init__(self, samples: SampleStore, *, raw_keep_s: float, minute_keep_s: float,
                 every_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.samples = samples
        self.raw_keep_s = raw_keep_s
        self.minute_keep_s = minute_keep_s
        self.every_s = every_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        self.samples.rollup()
        now = self.clock()
        self.samples.expire(now - self.raw_keep_s, now - self.minute_keep_s)

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
