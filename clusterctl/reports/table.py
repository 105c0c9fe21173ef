"""The GPUs held in a period as columns (numpy arrays), so that a year of a busy cluster
(a quarter of a million allocations) is clipped, split and summed in vectorized steps.

GPU-milliseconds stay exact: they are whole numbers summed as float64, exact below 2**53 ms
(285,000 GPU-years), and each group's total is turned into an integer before Decimal money is
computed from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]

FIELDS = ("job", "node", "gpu", "start", "end", "covered", "util", "energy", "idle", "longest")
"""The columns of a usage record, in the order the store returns them."""


@dataclass(slots=True)
class Held:
    """One GPU held by one job attempt, with its usage record (or a live figure while it runs).
    Usage figures cover the whole allocation; a report over part of it takes its share."""

    job_id: int
    job_name: str
    user: str
    team: str
    node: str
    gpu_index: int
    start_ms: int
    end_ms: int
    covered_s: float = 0.0
    util_avg: float | None = None
    energy_mj: float | None = None
    idle_s: float = 0.0
    longest_idle_s: float = 0.0


@dataclass
class HeldTable:
    job: Ints
    node: Ints
    """Index into ``nodes``."""
    gpu: Ints
    start: Ints
    end: Ints
    covered: Floats
    util: Floats
    """NaN where no utilization was read."""
    energy: Floats
    """mJ; NaN where no energy was read."""
    idle: Floats
    longest: Floats
    user: Ints
    """Index into ``users``."""
    team: Ints
    nodes: list[str]
    users: list[str]
    teams: list[str]
    names: dict[int, str]
    """Job id to job name."""

    def __len__(self) -> int:
        return len(self.job)

    def job_labels(self, row: int) -> dict[str, str]:
        """Name, user and team of the job of ``row``."""
        return {"name": self.names.get(int(self.job[row]), ""),
                "user": self.users[int(self.user[row])], "team": self.teams[int(self.team[row])]}

    @classmethod
    def of(cls, held: Sequence[Held]) -> HeldTable:
        labels = {h.job_id: (h.job_name, h.user, h.team) for h in held}
        rows = [(h.job_id, h.node, h.gpu_index, h.start_ms, h.end_ms, h.covered_s, h.util_avg,
                 h.energy_mj, h.idle_s, h.longest_idle_s) for h in held]
        return cls.from_rows(rows, labels)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[object, ...]],
                  labels: dict[int, tuple[str, str, str]],
                  fields: Sequence[str] = FIELDS) -> HeldTable:
        """``rows`` hold ``fields`` (a subset of :data:`FIELDS` that starts with job, node,
        start, end), None for figures not read; fields left out read as not measured."""
        n = len(rows)
        # One structured array, converted in C, rather than a Python transpose of 250,000
        # tuples (None becomes NaN in the float columns).
        table = np.array(rows, dtype=[(f, _DTYPES[f]) for f in fields])
        cols: dict[str, Any] = {f: table[f] for f in fields} if n else {}
        nodes, node_idx = _index(cols.get("node", ()))
        job = np.asarray(cols.get("job", ()), dtype=np.int64)
        # Users and teams per job, then per row: 100,000 lookups rather than 250,000.
        jobs, per_row = np.unique(job, return_inverse=True)
        users, user_of_job = _index(labels[int(j)][1] for j in jobs)
        teams, team_of_job = _index(labels[int(j)][2] for j in jobs)

        def floats(name: str, missing: float) -> Floats:
            return _floats(cols[name], missing) if name in cols else np.full(n, missing)

        return cls(
            job=job, node=node_idx, gpu=np.asarray(cols.get("gpu", [0] * n), dtype=np.int64),
            start=np.asarray(cols.get("start", ()), dtype=np.int64),
            end=np.asarray(cols.get("end", ()), dtype=np.int64),
            covered=floats("covered", 0.0), util=floats("util", np.nan),
            energy=floats("energy", np.nan), idle=floats("idle", 0.0),
            longest=floats("longest", 0.0), user=user_of_job[per_row],
            team=team_of_job[per_row], nodes=nodes, users=users, teams=teams,
            names={j: v[0] for j, v in labels.items()})


_DTYPES = {"job": "i8", "node": "O", "gpu": "i8", "start": "i8", "end": "i8", "covered": "f8",
           "util": "f8", "energy": "f8", "idle": "f8", "longest": "f8"}


def _floats(values: Any, missing: float) -> Floats:
    """None (not read) is NaN by now; it becomes ``missing``."""
    out = np.array(values, dtype=np.float64)
    if missing == missing:  # not NaN
        out[np.isnan(out)] = missing
    return out


def _index(values: Iterable[str]) -> tuple[list[str], Ints]:
    names: dict[str, int] = {}
    idx = [names.setdefault(v, len(names)) for v in values]
    return list(names), np.array(idx, dtype=np.int64)


def spread(s: Ints, e: Ints, value: Floats, origin: int, size: int, buckets: int) -> Floats:
    """Each row's ``value`` spread evenly over ``[s, e)`` into buckets of ``size`` ms from
    ``origin``: the share of time-based figures (GPU-ms held, utilization, energy) that falls in
    each hour or day. Rows must lie inside ``[origin, origin + size * buckets)``."""
    out = np.zeros(buckets)
    length = e - s
    ok = length > 0
    b0 = (s - origin) // size
    b1 = (e - 1 - origin) // size
    one = ok & (b0 == b1)
    out += np.bincount(b0[one], weights=value[one], minlength=buckets)[:buckets]
    for i in np.flatnonzero(ok & (b0 != b1)):  # rows longer than a bucket: few
        rate = value[i] / length[i]
        for b in range(int(b0[i]), int(b1[i]) + 1):
            lo = max(int(s[i]), origin + b * size)
            hi = min(int(e[i]), origin + (b + 1) * size)
            out[b] += rate * (hi - lo)
    return out
