"""Slurm's job history (``sacct --parsable2``) as the planner's history, so that a team leaving
Slurm can plan from its old cluster.

Only jobs that ran count: a job step (``123.batch``, ``123.0``, ``123.extern``) is part of its
job, a job that never started (cancelled while pending, an unexpanded pending array
``123_[1-9]``) asked for nothing it got, and a job still running has no duration yet. Array
tasks (``123_4``) are jobs of their own. The GPUs are the ``gres/gpu`` of AllocTRES (what it
got) or else ReqTRES, in all over its nodes; ``gres/gpu:a100=4`` names the type. A line that
does not parse is counted and reported with its first example, fatal only when more than a
fifth of the lines are such (``simulate/rows.py``): a year of sacct output always holds
something odd.

Slurm prints local times without a zone (``2024-03-01T12:00:00``): they are read in ``tz``
(UTC by default); a time with an offset keeps its own.
"""

from __future__ import annotations

import io
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TextIO, cast
from zoneinfo import ZoneInfo

from clusterctl.gpu_types import parse_type
from clusterctl.parsing import BadInput, slurm_clock_s
from clusterctl.simulate.rows import MAX_DURATION_S, MAX_GPUS, HistoryError, Rows, lines
from clusterctl.simulate.trace import PastJob, limit_for

NEEDED = ("JobID", "User", "Submit", "Start", "End")
_GPU_TRES = re.compile(r"(?:^|,)gres/gpu(?::([^=,]+))?=(\d+)")
_NO_TIME = {"", "unknown", "none", "n/a"}


@dataclass
class SacctRead:
    jobs: list[PastJob]
    skipped: Counter[str] = field(default_factory=Counter)
    """Lines left out on purpose, by reason (``job step``, ``never started``, ...)."""
    rows: Rows = field(default_factory=Rows)
    """Every data line, and those that did not parse (the first with why, for the user)."""

    @property
    def unparsed(self) -> int:
        return self.rows.bad

    @property
    def first_unparsed(self) -> str | None:
        return self.rows.first_bad


def looks_like_sacct(first_line: str) -> bool:
    return "|" in first_line and "jobid" in first_line.lower()


def _time(text: str, tz: tzinfo) -> datetime | None:
    text = text.strip()
    if text.lower() in _NO_TIME:
        return None
    t = datetime.fromisoformat(text)  # ValueError: the caller counts the line
    if not 1990 <= t.year < 2100:
        raise ValueError(f"{text} is not a time from 1990 to 2099")
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def timelimit_s(text: str) -> float | None:
    """Slurm's ``[D-]HH:MM:SS``, ``MM:SS``, ``MM`` or ``D-HH[:MM]`` (``parsing.slurm_clock_s``,
    and a bare number of minutes); None for ``UNLIMITED``, ``Partition_Limit`` or empty."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return float(int(text) * 60)
    clock = slurm_clock_s(text)  # ValueError: the caller counts the line
    if clock is None:
        if text.lower() in {"", "unlimited", "partition_limit", "invalid"}:
            return None
        raise ValueError(f"Timelimit {text!r}")
    return float(clock)


def gpus_of(tres: str) -> tuple[int, str | None]:
    """GPUs in all and the type from a TRES string; (0, None) where it holds none. A typed
    count is preferred: ``gres/gpu=4,gres/gpu:a100=4`` is 4 A100s, not 8 GPUs."""
    typed = [(t, int(n)) for t, n in _GPU_TRES.findall(tres) if t]
    if typed:
        kind, n = typed[0]
        return n, parse_type(kind, "gres/gpu")
    plain = [int(n) for t, n in _GPU_TRES.findall(tres) if not t]
    return (plain[0], None) if plain else (0, None)


def read(
    source: Iterable[str],
    *,
    tz: tzinfo | None = None,
    overestimate: tuple[float, float] = (1.0, 3.0),
    seed: int = 0,
) -> SacctRead:
    """The jobs of ``sacct --parsable2`` output (a header line, then ``|``-separated rows)."""
    zone = tz or ZoneInfo("UTC")
    out = SacctRead([])
    rows = (lines(cast(TextIO, source), out.rows) if isinstance(source, io.TextIOBase)
            else iter(source))
    header = next((h for h in rows if h.strip()), "")
    columns = [c.strip() for c in header.rstrip("\n").split("|")]
    missing = [c for c in NEEDED if c not in columns]
    tres_col = next((c for c in ("AllocTRES", "ReqTRES") if c in columns), None)
    if missing or tres_col is None:
        need = missing + ([] if tres_col else ["AllocTRES or ReqTRES"])
        raise BadInput("--trace", f"sacct output lacks column(s) {', '.join(need)} (run "
                       "sacct --parsable2 --format JobID,User,Account,Submit,Start,End,State,"
                       "AllocTRES,NNodes,Timelimit)")
    at = {c: i for i, c in enumerate(columns)}
    rng = random.Random(seed)
    for number, raw in enumerate(rows, start=2):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        out.rows.total += 1
        cells = line.split("|")
        if len(cells) < len(columns):
            out.rows.refuse(f"line {number}: {len(cells)} fields, the header has "
                            f"{len(columns)}")
            continue

        def cell(name: str, cells: list[str] = cells) -> str:
            return cells[at[name]].strip() if name in at else ""

        job_id = cell("JobID")
        if "." in job_id:
            out.skipped["job step"] += 1
            continue
        if "[" in job_id:
            out.skipped["never started"] += 1
            continue
        factor = rng.uniform(*overestimate)  # one draw per job, kept or not
        try:
            submit, start, end = (_time(cell(c), zone) for c in ("Submit", "Start", "End"))
            tres = cell(tres_col) or (cell("ReqTRES") if tres_col == "AllocTRES" else "")
            gpus, kind = gpus_of(tres)
            limit = timelimit_s(cell("Timelimit"))
            if gpus > MAX_GPUS or (limit or 0) > MAX_DURATION_S or (
                    start and end and (end - start).total_seconds() > MAX_DURATION_S):
                raise ValueError(f"{gpus} GPUs for {cell('Start')} to {cell('End')} is not "
                                 "a job (at most 100000 GPUs and 10 years)")
        except (ValueError, BadInput, OverflowError) as e:
            out.rows.refuse(f"line {number}: {str(e)[:200]}")
            continue
        if start is None:
            out.skipped["never started"] += 1
        elif end is None:
            out.skipped["still running"] += 1
        elif gpus <= 0:
            out.skipped["no GPUs"] += 1
        elif submit is None:
            out.rows.refuse(f"line {number}: no Submit time")
        else:
            duration = max(0.0, (end - start).total_seconds())
            out.jobs.append(PastJob(
                submit.timestamp(), duration, gpus, cell("Account") or cell("User") or "-",
                cell("User"), limit if limit else limit_for(duration, factor), kind))
    out.jobs.sort(key=lambda j: j.submit_s)
    try:
        out.rows.check("sacct output")
    except HistoryError as e:
        raise BadInput("--trace", str(e)) from None
    return out
