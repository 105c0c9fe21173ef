"""Every report over a year of history: 8 machines of 8 GPUs, 100,000 jobs, on SQLite and
PostgreSQL. Goal (issue #4): each report under 2 s, peak memory under 500 MB.

The history is what a year of operation leaves in the database once the housekeeping thread
has done its work: jobs and their allocations (placed by a first-fit simulation of a queue on
the 64 GPUs), a usage record per allocation, and one hour rollup per GPU-hour (raw 5-second
samples and minute rollups have expired by then, as they do in operation). It is generated
with a fixed seed and bulk-inserted; the reports then run through the controller's
`ReportService` and `build()`, the code behind `GET /v1/reports/...`, and their JSON is
serialized, as the API does.

Each (database, report) is timed in a fresh process, so its peak RSS is its own (
after the report: VmHWM, the interpreter and imports included).

Run: python bench/reports_year.py [POSTGRES_URL] [--jobs N]
"""

from __future__ import annotations

import heapq
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from common import scratch_database
from sqlalchemy import insert

from clusterctl.api.routes.reports import JOB_ROWS
from clusterctl.controller.reports import ReportService, build
from clusterctl.cost.inventory import HardwareSpec
from clusterctl.store import CostStore, ReportStore, SampleStore, make_engine, migrate
from clusterctl.store.models import Allocation, AllocationUsage, GpuRollup, Job

NODES, GPUS = 8, 8
H = 3_600_000
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
START = END - timedelta(days=365)
REPORTS = [("utilization", "node", 365), ("utilization", "day", 365),
           ("utilization", "user", 365), ("cost", "job", 365), ("cost", "job-all", 365),
           ("cost", "user", 365), ("cost", "month", 365), ("amortization", None, 365),
           ("waste", None, 365), ("cost", "job", 30), ("utilization", "job", 30)]
"""``cost --by job`` as the API answers it by default (the 100 dearest jobs and a row for
the rest); ``job-all`` with ``--all``, every job."""
USERS = [(f"user{i:02d}", f"team{i % 5}") for i in range(30)]


def generate(db_url: str, jobs: int, seed: int = 7) -> dict[str, float]:
    migrate(db_url)
    engine = make_engine(db_url)
    rnd = random.Random(seed)
    costs = CostStore(engine)
    for n in range(NODES):
        h100 = n >= 6
        costs.add(HardwareSpec(
            f"gpu-{n:02d}", GPUS, "H100" if h100 else "A100-80GB",
            Decimal(380_000 if h100 else 250_000), date(2025, 1 + n, 1), 36, Decimal("0.2"),
            Decimal(1500)))
    start_ms, end_ms = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    free = {n: [start_ms] * GPUS for n in range(NODES)}  # when each GPU is next free
    job_rows, alloc_rows, usage_rows = [], [], []
    busy: dict[tuple[int, int], dict[int, float]] = {}  # (node, gpu) -> hour -> busy ms
    submits = sorted(rnd.uniform(start_ms, end_ms) for _ in range(jobs))
    alloc_id = 0
    for job_id, submit in enumerate(submits, start=1):
        gpus = rnd.choice([1, 1, 1, 1, 2, 2, 4, 8])
        length = int(min(3 * 86400_000, rnd.lognormvariate(0, 1.1) * 0.85 * H))
        # First fit: the node where `gpus` GPUs are free soonest.
        best = min(range(NODES), key=lambda n: heapq.nsmallest(gpus, free[n])[-1])
        chosen = sorted(range(GPUS), key=lambda g: free[best][g])[:gpus]
        begin = int(max(submit, max(free[best][g] for g in chosen)))
        finish = begin + max(60_000, length)
        if finish > end_ms:
            continue
        user, team = rnd.choice(USERS)
        idle_job = rnd.random() < 0.08
        util = rnd.uniform(0.01, 0.06) if idle_job else rnd.uniform(0.35, 0.97)
        at = datetime.fromtimestamp(submit / 1000, timezone.utc)
        began = datetime.fromtimestamp(begin / 1000, timezone.utc)
        ended = datetime.fromtimestamp(finish / 1000, timezone.utc)
        job_rows.append({
            "id": job_id, "name": f"run-{job_id}", "user": user, "team": team,
            "command": ["python", "train.py"], "env": {}, "gpus": gpus, "nodes": 1,
            "priority": 0, "retries": 0, "requeues": 0, "state": "SUCCEEDED", "attempt": 1,
            "cancel_requested": False, "submitted_at": at, "started_at": began,
            "ended_at": ended, "exit_code": 0, "version": 1})
        window = (finish - begin) / 1000
        for g in chosen:
            free[best][g] = finish
            alloc_id += 1
            alloc_rows.append({
                "id": alloc_id, "job_id": job_id, "attempt": 1, "rank": 0,
                "node": f"gpu-{best:02d}", "node_id": f"ray-{best}", "gpu_index": g,
                "gpu_uuid": f"GPU-{best}-{g}", "started_at": began, "ended_at": ended})
            covered = window * rnd.uniform(0.97, 1.0)
            idle = covered * (0.9 if idle_job else rnd.uniform(0, 0.05))
            usage_rows.append({
                "allocation_id": alloc_id, "job_id": job_id, "node": f"gpu-{best:02d}",
                "gpu_index": g, "start_ms": begin, "end_ms": finish, "window_s": window,
                "covered_s": covered,
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
    rollups = []
    for (n, g), hours in busy.items():
        for hour in range(start_ms // H * H, end_ms, H):
            u = hours.get(hour, 0.0) / H  # utilization averaged over the hour
            rollups.append({
                "resolution_s": 3600, "node": f"gpu-{n:02d}", "bucket_ms": hour,
                "gpu_uuid": f"GPU-{n}-{g}", "gpu_index": g, "samples": 720, "covered_s": 3600.0,
                "util_sum": u * 720, "util_n": 720, "mem_max": 40 << 30, "mem_total": 80 << 30,
                "power_sum": (60 + 240 * u) * 720, "power_n": 720,
                "energy_mj": (60 + 240 * u) * 3600 * 1000, "energy_span_s": 3600.0,
                "temp_max": 70.0, "errors": 0})
    with engine.begin() as c:
        for model, rows in ((Job, job_rows), (Allocation, alloc_rows),
                            (AllocationUsage, usage_rows), (GpuRollup, rollups)):
            table = model.__table__  # type: ignore[attr-defined]
            for i in range(0, len(rows), 20_000):
                c.execute(insert(table), rows[i:i + 20_000])
    held = sum((r["ended_at"] - r["started_at"]).total_seconds() for r in alloc_rows) / 3600
    return {"jobs": len(job_rows), "allocations": len(alloc_rows), "rollups": len(rollups),
            "allocated_share": held / (NODES * GPUS * 365 * 24)}


def peak_rss_mb() -> float:
    """VmHWM of this process. Not ru_maxrss: Linux carries that over from the parent at fork,
    and the parent has just generated the history."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(db_url: str, kind: str, by: str | None, days: int) -> None:
    """In a fresh process: one report over the last ``days``; prints JSON with seconds, RSS."""
    engine = make_engine(db_url)
    service = ReportService(ReportStore(engine), CostStore(engine), SampleStore(engine))
    t = time.perf_counter()
    limit = JOB_ROWS if kind == "cost" and by == "job" else None
    data = build(service, kind, END - timedelta(days=days), END,
                 by="job" if by == "job-all" else by, now=END, limit=limit)
    body = json.dumps(data)
    seconds = time.perf_counter() - t
    rss_mb = peak_rss_mb()
    rows = len(data.get("rows", data.get("machines", [])))
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "rows": rows,
                      "bytes": len(body)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        one(sys.argv[2], sys.argv[3], sys.argv[4] if sys.argv[4] != "-" else None,
            int(sys.argv[5]))
        return
    args = sys.argv[1:]
    jobs = 100_000
    if "--jobs" in args:
        jobs = int(args[args.index("--jobs") + 1])
        del args[args.index("--jobs"):args.index("--jobs") + 2]
    pg = args[0] if args else None
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'year.db'}", None)]
        if pg:
            targets.append(("PostgreSQL", None, pg))
        for label, url, base in targets:
            if base is not None:
                with scratch_database(base) as scratch:
                    run(label, scratch, jobs)
            else:
                assert url is not None
                run(label, url, jobs)


def run(label: str, url: str, jobs: int) -> None:
    t = time.perf_counter()
    made = generate(url, jobs)
    print(f"{label}: generated {made['jobs']:,} jobs, {made['allocations']:,} allocations, "
          f"{made['rollups']:,} hour rollups ({made['allocated_share']:.0%} of the GPU-hours "
          f"held) in {time.perf_counter() - t:.0f} s", flush=True)
    for kind, by, days in REPORTS:
        out = subprocess.run([sys.executable, __file__, "--one", url, kind, by or "-",
                              str(days)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        name = f"{kind}" + (f" --by {by}".replace("job-all", "job --all") if by else "") + (
            f" --since {days}d" if kind != "amortization" else "")
        print(f"  {name:<36} {r['seconds']:6.2f} s  peak RSS {r['rss_mb']:5.0f} MB  "
              f"{r['rows']:>7,} rows  {r['bytes'] / 1e6:6.1f} MB of JSON", flush=True)


if __name__ == "__main__":
    main()
