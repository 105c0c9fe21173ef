"""Reading a job trace: CSV with ``submit_s``, ``duration_s``, ``num_gpus`` and ``team`` (or
``vc``), and optionally ``gpu_type`` (empty: any type), and turning each row into a job the
fleet can run.

A request larger than one node becomes a gang of whole equal parts (16 GPUs on 8-GPU nodes: 2
nodes x 8), on the largest nodes of a model it accepts (a gang is one model). Traces rarely
carry time limits, and backfill needs them: where there is no ``time_limit_s`` column the limit
is the duration times a factor drawn uniformly from ``overestimate`` (seeded), since users ask
for more time than their jobs take; where there is one, an empty cell is a job without a limit.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clusterctl.gpu_types import matches, parse_type
from clusterctl.parsing import BadInput
from clusterctl.simulate.rows import (
    MAX_DURATION_S,
    MAX_GPUS,
    HistoryError,
    Rows,
    lines,
    open_history,
)

FleetGroup = tuple[int, int, str | None]
"""(nodes, GPUs per node, GPU type or None) of identical machines (``gpu_types.parse_fleet``)."""


def uniform(nodes: int, gpus_per_node: int) -> list[FleetGroup]:
    """A fleet of one kind of machine, of no particular model."""
    return [(nodes, gpus_per_node, None)]


class TraceError(ValueError):
    """A trace that cannot be read; the message names the line and field."""


@dataclass(frozen=True)
class TraceJob:
    id: int
    submit_s: float
    duration_s: float
    gpus: int
    """GPUs per node."""
    nodes: int
    team: str
    user: str
    time_limit_s: float | None
    """None: no limit (only a trace built in code has none; a file's jobs get one)."""
    gpu_type: str | None = None
    """The GPU type it asked for; None: any."""

    @property
    def total_gpus(self) -> int:
        return self.gpus * self.nodes

    @property
    def run_s(self) -> float:
        """What it runs: its duration, cut at its time limit."""
        limit = self.time_limit_s
        return self.duration_s if limit is None or limit > self.duration_s else limit


@dataclass(frozen=True)
class Trace:
    jobs: list[TraceJob]
    skipped: int
    """Jobs larger than the cluster (or of a shape no node takes), left out."""
    teams: list[str]


def gang_shape(num_gpus: int, gpus_per_node: int) -> tuple[int, int] | None:
    """(GPUs per node, nodes) of a request: on one node if it fits, else the fewest nodes that
    split it into whole equal parts."""
    if num_gpus <= gpus_per_node:
        return num_gpus, 1
    for nodes in range(math.ceil(num_gpus / gpus_per_node), num_gpus + 1):
        if num_gpus % nodes == 0 and num_gpus // nodes <= gpus_per_node:
            return num_gpus // nodes, nodes
    return None  # pragma: no cover - nodes = num_gpus always divides


def shape_on(num_gpus: int, gpu_type: str | None, fleet: Sequence[FleetGroup]
             ) -> tuple[int, int] | None:
    """(GPUs per node, nodes) of a request on this fleet: on the largest nodes of one model it
    accepts where the gang fits; None if no model holds it."""
    sizes: dict[tuple[str | None, int], int] = {}  # (model, GPUs per node) -> nodes
    for nodes, gpus, model in fleet:
        if gpu_type is None or (model is not None and matches(gpu_type, model)):
            key = ((model or "").lower() or None, gpus)
            sizes[key] = sizes.get(key, 0) + nodes
    for (model, per_node), _ in sorted(sizes.items(), key=lambda kv: -kv[0][1]):
        shape = gang_shape(num_gpus, per_node)
        if shape is not None and shape[1] <= sum(
                n for (m, g), n in sizes.items() if m == model and g >= shape[0]):
            return shape
    return None


def _field(row: dict[str, str], name: str, line: int, *, minimum: float,
           maximum: float) -> float:
    raw = row.get(name)
    try:
        value = float(raw) if raw not in (None, "") else math.nan
    except ValueError:
        value = math.nan
    if not minimum <= value <= maximum:
        raise TraceError(f"line {line}: {name}: must be a number from {minimum:g} to "
                         f"{maximum:g} (got {str(raw)[:40]!r})")
    return value


@dataclass(frozen=True)
class PastJob:
    """A job of a history as it was asked, before it is fitted to a fleet: its GPUs in all
    (a gang's shape depends on the nodes it will run on)."""

    submit_s: float
    duration_s: float
    num_gpus: int
    team: str
    user: str
    time_limit_s: float | None
    """None: the job had none (an empty ``time_limit_s`` cell)."""
    gpu_type: str | None = None


def limit_for(duration_s: float, factor: float) -> float:
    """A time limit where the history has none: the duration times ``factor``, whole minutes,
    at least one."""
    return max(60.0, math.ceil(duration_s * factor / 60) * 60)


@dataclass
class Read:
    """The jobs of a history file, and the rows left out."""

    jobs: list[PastJob]
    rows: Rows


def read_csv(
    path: Path,
    *,
    teams: Iterable[str] | None = None,
    overestimate: tuple[float, float] = (1.0, 3.0),
    seed: int = 0,
) -> Read:
    """A CSV trace; bad rows are counted and skipped (``rows.py``), too many refuse it."""
    wanted = set(teams) if teams else None
    rng = random.Random(seed)
    out = Read([], Rows())
    try:
        f = open_history(path)
    except HistoryError as e:
        raise TraceError(str(e)) from None
    with f:
        reader = csv.DictReader(lines(f, out.rows))
        try:
            columns = set(reader.fieldnames or [])
        except csv.Error as e:
            raise TraceError(f"{path}: not a CSV trace ({e})") from None
        team_col = "team" if "team" in columns else "vc"
        missing = {"submit_s", "duration_s", "num_gpus", team_col} - columns
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need "
                             "submit_s, duration_s, num_gpus and team or vc)")
        has_limit = "time_limit_s" in columns
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                out.rows.total += 1
                out.rows.refuse(f"line {reader.line_num}: {e}")
                continue
            out.rows.total += 1
            try:
                job = _row(row, reader.line_num, team_col, has_limit, rng.uniform(*overestimate))
            except TraceError as e:
                out.rows.refuse(str(e))
                continue
            if wanted is None or job.team in wanted:
                out.jobs.append(job)
    try:
        out.rows.check(str(path))
    except HistoryError as e:
        raise TraceError(str(e)) from None
    return out


def _row(row: dict[str, str], line: int, team_col: str, has_limit: bool, factor: float
         ) -> PastJob:
    """One row as a job (``factor`` is drawn for every row: limits do not depend on which
    rows are kept)."""
    submit = _field(row, "submit_s", line, minimum=0, maximum=100 * 365 * 86400.0)
    duration = _field(row, "duration_s", line, minimum=0, maximum=MAX_DURATION_S)
    num_gpus = int(_field(row, "num_gpus", line, minimum=1, maximum=MAX_GPUS))
    limit: float | None = limit_for(duration, factor)
    if has_limit:  # an empty cell: the job had no limit (attained service ranks it)
        limit = (_field(row, "time_limit_s", line, minimum=1, maximum=MAX_DURATION_S)
                 if (row.get("time_limit_s") or "").strip() else None)
    return PastJob(submit, duration, num_gpus, row.get(team_col) or "-", row.get("user") or "",
                   limit, _gpu_type(row, line))


def fit(past: Iterable[PastJob], fleet: Sequence[FleetGroup]) -> Trace:
    """The jobs as this fleet would run them (gangs shaped to its nodes), numbered in the
    history's order; those no node group can hold are counted, not kept."""
    jobs: list[TraceJob] = []
    skipped = 0
    seen_teams: dict[str, None] = {}
    shapes: dict[tuple[int, str | None], tuple[int, int] | None] = {}
    for p in past:
        key = (p.num_gpus, p.gpu_type)
        if key not in shapes:
            shapes[key] = shape_on(p.num_gpus, p.gpu_type, fleet)
        shape = shapes[key]
        if shape is None:
            skipped += 1
            continue
        seen_teams.setdefault(p.team, None)
        jobs.append(TraceJob(len(jobs) + 1, p.submit_s, p.duration_s, shape[0], shape[1],
                             p.team, p.user, p.time_limit_s, p.gpu_type))
    jobs.sort(key=lambda j: (j.submit_s, j.id))
    return Trace(jobs, skipped, list(seen_teams))


def load(
    path: Path,
    *,
    fleet: Sequence[FleetGroup],
    teams: Iterable[str] | None = None,
    overestimate: tuple[float, float] = (1.0, 3.0),
    seed: int = 0,
) -> Trace:
    return fit(read_csv(path, teams=teams, overestimate=overestimate, seed=seed).jobs, fleet)


def _gpu_type(row: dict[str, str], line: int) -> str | None:
    raw = (row.get("gpu_type") or "").strip()
    if not raw:
        return None
    try:
        return parse_type(raw, "gpu_type")
    except BadInput as e:
        raise TraceError(f"line {line}: {e}") from None


def parse_overestimate(value: str) -> tuple[float, float]:
    """``LOW-HIGH`` (or one factor): the range a trace job's time limit over its duration is
    drawn from."""
    lo, _, hi = value.partition("-")
    try:
        a, b = float(lo), float(hi or lo)
    except ValueError:
        a = b = 0.0
    if not 1.0 <= a <= b:
        raise BadInput("--overestimate", f"{value!r} must be LOW-HIGH with 1 ≤ LOW ≤ HIGH")
    return a, b
