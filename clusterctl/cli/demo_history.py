"""A synthetic history written straight into the database: what a period of operation leaves
once the housekeeping thread has done its work (jobs, their allocations, a usage record per
allocation, one hour rollup per GPU-hour; raw samples and minute rollups have expired by then).

Two users: the year-long report benchmark (``bench/reports_year.py``), and ``clusterctl demo``,
which loads a year for its two machines so that the ownership reports and ``plan`` have
something to say in its first minute. Every job it writes is named ``synthetic-N`` and
submitted by users named ``synthetic-...``, so that nobody mistakes it for real use.

Jobs arrive uniformly over the period and are placed first fit (the node where the GPUs they
ask are free soonest); a share of them sit idle on their GPUs (the waste report's material).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from clusterctl.store.bulk import Engine, insert_rows
from clusterctl.store.models import Allocation, Job
from clusterctl.store.telemetry_tables import AllocationUsage, GpuRollup

H = 3_600_000


@dataclass(frozen=True)
class SyntheticNode:
    name: str
    gpus: int


def load_history(engine: Engine, nodes: Sequence[SyntheticNode], start: datetime,
                 end: datetime, jobs: int, *, seed: int = 7,
                 sizes: Sequence[int] = (1, 1, 1, 1, 2, 2, 4, 8), idle_share: float = 0.08,
                 users: int = 30, teams: int = 5, first_id: int = 1) -> dict[str, float]:
    """Write about ``jobs`` jobs submitted in [start, end) (those that would end after
    ``end`` are left out) on ``nodes``; returns counts and the share of GPU-hours held."""
    rnd = random.Random(seed)
    people = [(f"synthetic-user{i:02d}", f"team{i % teams}") for i in range(users)]
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    free = {n.name: [start_ms] * n.gpus for n in nodes}  # when each GPU is next free
    size = {n.name: n.gpus for n in nodes}
    job_rows: list[dict[str, Any]] = []
    alloc_rows: list[dict[str, Any]] = []
    usage_rows: list[dict[str, Any]] = []
    held_ms = 0
    busy: dict[tuple[str, int], dict[int, float]] = {}  # (node, gpu) -> hour -> busy ms
    submits = sorted(rnd.uniform(start_ms, end_ms) for _ in range(jobs))
    alloc_id = 0
    for job_id, submit in enumerate(submits, start=first_id):
        gpus = rnd.choice(sizes)
        length = int(min(3 * 86400_000, rnd.lognormvariate(0, 1.1) * 0.85 * H))
        fits = [n.name for n in nodes if n.gpus >= gpus]
        if not fits:
            continue
        best = min(fits, key=lambda n: heapq.nsmallest(gpus, free[n])[-1])
        chosen = sorted(range(size[best]), key=lambda g: free[best][g])[:gpus]
        begin = int(max(submit, max(free[best][g] for g in chosen)))
        finish = begin + max(60_000, length)
        if finish > end_ms:
            continue
        user, team = rnd.choice(people)
        idle_job = rnd.random() < idle_share
        util = rnd.uniform(0.01, 0.06) if idle_job else rnd.uniform(0.35, 0.97)
        at = datetime.fromtimestamp(submit / 1000, timezone.utc)
        began = datetime.fromtimestamp(begin / 1000, timezone.utc)
        ended = datetime.fromtimestamp(finish / 1000, timezone.utc)
        job_rows.append({
            "id": job_id, "name": f"synthetic-{job_id}", "user": user, "team": team,
            "command": ["python", "train.py"], "env": {}, "gpus": gpus, "nodes": 1,
            "priority": 0, "retries": 0, "requeues": 0, "state": "SUCCEEDED", "attempt": 1,
            "cancel_requested": False, "submitted_at": at, "started_at": began,
            "ended_at": ended, "exit_code": 0, "version": 1})
        window = (finish - begin) / 1000
        held_ms += (finish - begin) * gpus
        for g in chosen:
            free[best][g] = finish
            alloc_id += 1
            alloc_rows.append({
                "id": alloc_id, "job_id": job_id, "attempt": 1, "rank": 0, "node": best,
                "node_id": f"ray-{best}", "gpu_index": g, "gpu_uuid": f"GPU-{best}-{g}",
                "started_at": began, "ended_at": ended})
            covered = window * rnd.uniform(0.97, 1.0)
            idle = covered * (0.9 if idle_job else rnd.uniform(0, 0.05))
            usage_rows.append({
                "allocation_id": alloc_id, "job_id": job_id, "node": best, "gpu_index": g,
                "start_ms": begin, "end_ms": finish, "window_s": window, "covered_s": covered,
                "util_avg": util, "power_avg": 60 + 240 * util, "peak_memory": 40 << 30,
                "energy_mj": (60 + 240 * util) * covered * 1000, "energy_covered_s": covered,
                "idle_s": idle, "longest_idle_s": idle if idle_job else min(idle, 600),
                "computed_ms": finish + 120_000})
            hours = busy.setdefault((best, g), {})
            t = begin
            while t < finish:
                hour = t // H * H
                nxt = min(finish, hour + H)
                hours[hour] = hours.get(hour, 0.0) + (nxt - t) * util
                t = nxt
    rollups = _hour_rollups(busy, start_ms, end_ms)
    insert_rows(engine, [(Job, job_rows), (Allocation, alloc_rows),
                         (AllocationUsage, usage_rows), (GpuRollup, rollups)])
    held = held_ms / H
    total = sum(n.gpus for n in nodes) * (end_ms - start_ms) / H
    return {"jobs": len(job_rows), "allocations": len(alloc_rows), "rollups": len(rollups),
            "allocated_share": held / total if total else 0.0}


def _hour_rollups(busy: dict[tuple[str, int], dict[int, float]], start_ms: int, end_ms: int
                  ) -> list[dict[str, Any]]:
    """One hour rollup per GPU-hour, from each GPU's busy milliseconds per hour."""
    rollups: list[dict[str, Any]] = []
    for (node, g), hours in busy.items():
        for hour in range(start_ms // H * H, end_ms, H):
            u = hours.get(hour, 0.0) / H  # utilization averaged over the hour
            rollups.append({
                "resolution_s": 3600, "node": node, "bucket_ms": hour,
                "gpu_uuid": f"GPU-{node}-{g}", "gpu_index": g, "samples": 720,
                "covered_s": 3600.0, "util_sum": u * 720, "util_n": 720, "mem_max": 40 << 30,
                "mem_total": 80 << 30, "power_sum": (60 + 240 * u) * 720, "power_n": 720,
                "energy_mj": (60 + 240 * u) * 3600 * 1000, "energy_span_s": 3600.0,
                "temp_max": 70.0, "errors": 0})
    return rollups
