"""What a job did with the GPUs it held: utilization, memory, power and energy over its window.

Pure code over plain values, so the rules are tested directly:

- A sample stands for the ``interval`` before it; a minute or hour rollup for its bucket. Time
  no sample stands for is unknown, not idle: every figure comes with ``coverage``, the share of
  the window that samples cover, and averages are over the covered time only.
- Energy comes from the agent's reset-aware deltas of the NVML energy counter, each spread over
  the time since the previous read. Summed over a window it is the difference of counter reads;
  a delta that straddles the window's edge counts in proportion to its overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MJ_PER_KWH = 3.6e9


@dataclass(frozen=True)
class Point:
    """Aggregated GPU readings over ``[start, end]`` (seconds since the epoch): one raw sample
    or one rollup bucket."""

    start: float
    end: float
    covered_s: float
    """Seconds of ``[start, end]`` that readings stand for."""
    util_sum: float = 0.0
    util_n: int = 0
    power_sum: float = 0.0
    power_n: int = 0
    mem_max: int | None = None
    energy_mj: float | None = None
    energy_start: float | None = None
    """Start of the time ``energy_mj`` was used over (its end is ``end``)."""


@dataclass(frozen=True)
class Usage:
    window_s: float
    covered_s: float
    avg_utilization: float | None
    peak_memory_bytes: int | None
    avg_power_watts: float | None
    energy_mj: float | None
    energy_covered_s: float

    @property
    def coverage(self) -> float:
        return min(1.0, self.covered_s / self.window_s) if self.window_s > 0 else 0.0

    @property
    def energy_coverage(self) -> float:
        return min(1.0, self.energy_covered_s / self.window_s) if self.window_s > 0 else 0.0

    @property
    def energy_kwh(self) -> float | None:
        return None if self.energy_mj is None else self.energy_mj / MJ_PER_KWH


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def usage_in_window(points: Iterable[Point], start: float, end: float) -> Usage:
    """Usage of one GPU over ``[start, end]`` from the points that touch it."""
    window = max(0.0, end - start)
    covered = util_w = util_sum = power_w = power_sum = energy_cov = 0.0
    energy: float | None = None
    peak: int | None = None
    for p in points:
        length = p.end - p.start
        share = _overlap(p.start, p.end, start, end) / length if length > 0 else 0.0
        weight = p.covered_s * share
        if weight > 0:
            covered += weight
            if p.util_n:
                util_w += weight
                util_sum += weight * p.util_sum / p.util_n
            if p.power_n:
                power_w += weight
                power_sum += weight * p.power_sum / p.power_n
            if p.mem_max is not None:
                peak = p.mem_max if peak is None else max(peak, p.mem_max)
        if p.energy_mj is not None and p.energy_start is not None and p.end > p.energy_start:
            part = _overlap(p.energy_start, p.end, start, end)
            if part > 0:
                energy = (energy or 0.0) + p.energy_mj * part / (p.end - p.energy_start)
                energy_cov += part
    return Usage(
        window_s=window,
        covered_s=min(covered, window),
        avg_utilization=util_sum / util_w if util_w else None,
        peak_memory_bytes=peak,
        avg_power_watts=power_sum / power_w if power_w else None,
        energy_mj=energy,
        energy_covered_s=min(energy_cov, window),
    )


def combine(parts: Sequence[Usage]) -> Usage:
    """Several GPUs (or attempts) as one: averages weighted by covered time, peak of peaks,
    energy summed. ``avg_power_watts`` stays per GPU; multiply by the GPUs held for the job's
    draw."""
    window = sum(u.window_s for u in parts)
    covered = sum(u.covered_s for u in parts)
    util = [(u.avg_utilization, u.covered_s) for u in parts if u.avg_utilization is not None]
    power = [(u.avg_power_watts, u.covered_s) for u in parts if u.avg_power_watts is not None]
    peaks = [u.peak_memory_bytes for u in parts if u.peak_memory_bytes is not None]
    energies = [u.energy_mj for u in parts if u.energy_mj is not None]

    def weighted(pairs: list[tuple[float, float]]) -> float | None:
        total = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / total if total else None

    return Usage(
        window_s=window,
        covered_s=covered,
        avg_utilization=weighted(util),  # type: ignore[arg-type]
        peak_memory_bytes=max(peaks) if peaks else None,
        avg_power_watts=weighted(power),  # type: ignore[arg-type]
        energy_mj=sum(energies) if energies else None,
        energy_covered_s=sum(u.energy_covered_s for u in parts),
    )


@dataclass(frozen=True)
class Idle:
    idle_s: float
    """Covered time with utilization under the threshold."""
    longest_s: float
    """Longest unbroken stretch of it: a gap in the samples breaks a stretch, since unknown is
    not idle."""


def idle_time(points: Iterable[Point], start: float, end: float, threshold: float) -> Idle:
    """How long a GPU held over ``[start, end]`` sat under ``threshold`` utilization."""
    idle = longest = run = 0.0
    last_end: float | None = None
    for p in sorted(points, key=lambda p: p.start):
        length = p.end - p.start
        part = _overlap(p.start, p.end, start, end) / length * p.covered_s if length > 0 else 0
        if part <= 0 or not p.util_n:
            continue
        touching = last_end is not None and p.start - last_end <= max(1.0, 0.5 * length)
        if p.util_sum / p.util_n < threshold:
            run = (run if touching else 0.0) + part
            idle += part
            longest = max(longest, run)
        else:
            run = 0.0
        last_end = p.end
    return Idle(idle, longest)


def idle_throughout(points: Sequence[Point], start: float, end: float, threshold: float,
                    min_coverage: float = 0.8) -> bool:
    """Whether one GPU stayed under ``threshold`` utilization all of ``[start, end]``: no
    reading at or above it, and readings covering most of the window (a GPU the agent did not
    read is not known to be idle)."""
    covered = 0.0
    for p in points:
        lo, hi = max(p.start, start), min(p.end, end)
        if hi <= lo or not p.util_n:
            continue
        if p.util_sum / p.util_n >= threshold:
            return False
        covered += min(hi - lo, p.covered_s)
    return covered >= min_coverage * (end - start)
