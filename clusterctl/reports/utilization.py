"""``report utilization``: how much of the GPUs was held (allocated share) and how hard the held
GPUs computed (busy share), per node, GPU, user, team, job or day.

- allocated share = GPU-hours held / GPU-hours available (for a user, team or job: of the whole
  cluster's, so the rows say who holds what share of it);
- busy share = measured SM utilization averaged over the held time samples cover;
- coverage = the share of held time that samples cover (a gap is unknown, not idle);
- idle GPU-hours = available but not held (nodes, GPUs, days and the total);
- not tracked GPU-hours = available before a node's first sample: nobody was watching, so they
  are neither idle nor used, and they are left out of the allocated share.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from clusterctl.reports.inputs import MS_PER_DAY, MS_PER_HOUR, Inputs, model_keys, ms_iso
from clusterctl.reports.table import spread

BY = ("node", "gpu", "gpu-type", "user", "team", "job", "day")


@dataclass
class UtilRow:
    key: str
    held_ms: int = 0
    available_ms: int | None = None
    """Tracked GPU-milliseconds: from each node's first sample (or first job) on."""
    not_tracked_ms: int | None = None
    """Available before it was tracked: neither used nor idle, unknown."""
    covered_s: float = 0.0
    busy_s: float = 0.0
    """Utilization times covered seconds."""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def gpu_hours(self) -> float:
        return self.held_ms / MS_PER_HOUR

    @property
    def busy_share(self) -> float | None:
        return self.busy_s / self.covered_s if self.covered_s > 0 else None

    @property
    def coverage(self) -> float | None:
        return min(1.0, self.covered_s * 1000 / self.held_ms) if self.held_ms else None

    @property
    def idle_gpu_hours(self) -> float | None:
        if self.available_ms is None:
            return None
        return max(0, self.available_ms - self.held_ms) / MS_PER_HOUR

    @property
    def not_tracked_gpu_hours(self) -> float | None:
        return None if self.not_tracked_ms is None else self.not_tracked_ms / MS_PER_HOUR


@dataclass
class UtilReport:
    by: str
    rows: list[UtilRow]
    total: UtilRow
    bucket_ms: int
    series: list[tuple[int, float | None, float | None]]
    """(bucket start, allocated share, busy share) over the period, for the plot."""

    def allocated_share(self, row: UtilRow) -> float | None:
        avail = row.available_ms if row.available_ms is not None else self.total.available_ms
        return row.held_ms / avail if avail else None


def capacity(inputs: Inputs) -> dict[str, tuple[int, int, int]]:
    """GPUs of each node and when it counts as available in the period: from its purchase date
    to its sale when it has an inventory record, else the GPUs telemetry has seen, over the whole
    period; from when it is tracked (``Inputs.tracked_from``) only."""
    return {n: (g, max(s_, min(inputs.tracked_from(n), e_)), e_)
            for n, (g, s_, e_) in _owned(inputs).items()}


def not_tracked(inputs: Inputs) -> dict[str, tuple[int, int, int]]:
    """GPUs of each node and the part of its available time before it was tracked."""
    return {n: (g, s_, max(s_, min(inputs.tracked_from(n), e_)))
            for n, (g, s_, e_) in _owned(inputs).items()}


def _owned(inputs: Inputs) -> dict[str, tuple[int, int, int]]:
    p = inputs.period
    out = {}
    for node, priced in inputs.machines.items():
        out[node] = (priced.machine.gpus, max(p.start_ms, priced.purchased_ms),
                     priced.until(p.end_ms))
    for node, gpus in inputs.gpus_seen.items():
        out.setdefault(node, (gpus, p.start_ms, p.end_ms))
    return out


def _gpu_ms(cap: dict[str, tuple[int, int, int]], a: int, z: int) -> int:
    """GPU-milliseconds of ``cap``'s windows inside ``[a, z)``."""
    return sum(g * max(0, min(z, e_) - max(a, s_)) for g, s_, e_ in cap.values())


def bucket_size(start_ms: int, end_ms: int) -> int:
    """Hourly points for up to 3 days, daily beyond: a plot of a few hundred points."""
    return MS_PER_HOUR if end_ms - start_ms <= 3 * MS_PER_DAY else MS_PER_DAY


def buckets(start_ms: int, end_ms: int, size: int) -> Iterator[tuple[int, int, int]]:
    b = start_ms // size * size
    while b < end_ms:
        yield b, max(b, start_ms), min(b + size, end_ms)
        b += size


def utilization_report(inputs: Inputs, by: str = "node") -> UtilReport:
    if by not in BY:
        raise ValueError(by)
    p, t = inputs.period, inputs.table
    cap, before = capacity(inputs), not_tracked(inputs)
    size = bucket_size(p.start_ms, p.end_ms)
    s = np.maximum(t.start, p.start_ms)
    e = np.minimum(t.end, p.end_ms)
    held = np.clip(e - s, 0, None).astype(np.float64)
    length = t.end - t.start
    share = np.divide(held, length, out=np.zeros(len(t)), where=length > 0)
    read = ~np.isnan(t.util)  # no utilization reading: neither busy nor idle
    covered = np.where(read, t.covered * share, 0.0)
    busy = np.where(read, np.nan_to_num(t.util), 0.0) * covered

    total = UtilRow("total", held_ms=int(held.sum()), covered_s=float(covered.sum()),
                    busy_s=float(busy.sum()),
                    available_ms=_gpu_ms(cap, p.start_ms, p.end_ms),
                    not_tracked_ms=_gpu_ms(before, p.start_ms, p.end_ms))
    origin = p.start_ms // size * size
    n_buckets = max(0, -(-(p.end_ms - origin) // size))
    ok = held > 0
    per_bucket = [spread(s[ok], e[ok], x[ok], origin, size, n_buckets)
                  for x in (held, covered, busy)]
    series_rows: dict[int, UtilRow] = {}
    for k, (b, a, z) in enumerate(buckets(p.start_ms, p.end_ms, size)):
        series_rows[b] = UtilRow(ms_iso(b)[:10 if size == MS_PER_DAY else 13],
                                 held_ms=round(per_bucket[0][k]),
                                 available_ms=_gpu_ms(cap, a, z),
                                 not_tracked_ms=_gpu_ms(before, a, z),
                                 covered_s=float(per_bucket[1][k]),
                                 busy_s=float(per_bucket[2][k]))
    rows = _capacity_rows(inputs, by, cap, before)
    if by != "day" and len(t):
        if by == "node":
            keys, names = t.node, t.nodes
        elif by == "gpu":
            pairs = t.node * (int(t.gpu.max()) + 1) + t.gpu
            uniq, keys = np.unique(pairs, return_inverse=True)
            width = int(t.gpu.max()) + 1
            names = [f"{t.nodes[int(u) // width]}/{int(u) % width}" for u in uniq]
        elif by == "job":
            uniq, first, keys = np.unique(t.job, return_index=True, return_inverse=True)
            names = [str(int(j)) for j in uniq]
        elif by == "gpu-type":
            keys, names = model_keys(inputs)
        else:
            keys, names = (t.user, t.users) if by == "user" else (t.team, t.teams)
        sums = [np.bincount(keys, weights=x, minlength=len(names))
                for x in (held, covered, busy)]
        for ki in np.flatnonzero(sums[0]):
            row = rows.get(names[ki])
            if row is None:
                row = rows[names[ki]] = UtilRow(names[ki])
                if by == "job":
                    row.labels = t.job_labels(int(first[ki]))
            row.held_ms += round(sums[0][ki])
            row.covered_s += float(sums[1][ki])
            row.busy_s += float(sums[2][ki])

    if by == "day":
        ordered = list(series_rows.values() if size == MS_PER_DAY else _days(series_rows))
    else:
        ordered = sorted(rows.values(), key=lambda r: (-r.held_ms, r.key))
        if by in ("node", "gpu"):
            ordered.sort(key=lambda r: r.key)
    series = [(b, r.held_ms / r.available_ms if r.available_ms else None, r.busy_share)
              for b, r in series_rows.items()]
    return UtilReport(by=by, rows=ordered, total=total, bucket_ms=size, series=series)


def _capacity_rows(inputs: Inputs, by: str, cap: dict[str, tuple[int, int, int]],
                   before: dict[str, tuple[int, int, int]]) -> dict[str, UtilRow]:
    """The rows that have a capacity (by node, GPU or GPU type), before any use is added."""
    p = inputs.period
    rows: dict[str, UtilRow] = {}
    if by == "node":
        rows = {n: UtilRow(n, available_ms=_gpu_ms({n: cap[n]}, p.start_ms, p.end_ms),
                           not_tracked_ms=_gpu_ms({n: before[n]}, p.start_ms, p.end_ms))
                for n in cap}
    elif by == "gpu":
        rows = {f"{n}/{i}": UtilRow(f"{n}/{i}", available_ms=max(0, e_ - s_),
                                    not_tracked_ms=max(0, before[n][2] - before[n][1]))
                for n, (g, s_, e_) in cap.items() for i in range(g)}
    elif by == "gpu-type":
        for n, (g, s_, e_) in cap.items():
            model = inputs.model_of(n)
            kind = rows.setdefault(model, UtilRow(model, available_ms=0, not_tracked_ms=0))
            kind.available_ms = (kind.available_ms or 0) + g * max(0, e_ - s_)
            kind.not_tracked_ms = (kind.not_tracked_ms or 0) + _gpu_ms({n: before[n]},
                                                                       p.start_ms, p.end_ms)
    return rows


def _days(hourly: dict[int, UtilRow]) -> Iterator[UtilRow]:
    days: dict[int, UtilRow] = {}
    for b, r in hourly.items():
        d = b // MS_PER_DAY * MS_PER_DAY
        day = days.setdefault(d, UtilRow(ms_iso(d)[:10], available_ms=0, not_tracked_ms=0))
        day.held_ms += r.held_ms
        day.available_ms = (day.available_ms or 0) + (r.available_ms or 0)
        day.not_tracked_ms = (day.not_tracked_ms or 0) + (r.not_tracked_ms or 0)
        day.covered_s += r.covered_s
        day.busy_s += r.busy_s
    yield from days.values()

