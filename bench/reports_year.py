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

import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from common import scratch_database

from clusterctl.api.routes.reports import JOB_ROWS
from clusterctl.cli.demo_history import SyntheticNode, load_history
from clusterctl.controller.reports import ReportService, build
from clusterctl.cost.inventory import HardwareSpec
from clusterctl.store import CostStore, ReportStore, SampleStore, make_engine, migrate

NODES, GPUS = 8, 8
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
START = END - timedelta(days=365)
REPORTS = [("utilization", "node", 365), ("utilization", "day", 365),
           ("utilization", "user", 365), ("cost", "job", 365), ("cost", "job-all", 365),
           ("cost", "user", 365), ("cost", "month", 365), ("amortization", None, 365),
           ("waste", None, 365), ("cost", "job", 30), ("utilization", "job", 30)]
"""``cost --by job`` as the API answers it by default (the 100 dearest jobs and a row for
the rest); ``job-all`` with ``--all``, every job."""


def generate(db_url: str, jobs: int, seed: int = 7) -> dict[str, float]:
    migrate(db_url)
    engine = make_engine(db_url)
    costs = CostStore(engine)
    for n in range(NODES):
        h100 = n >= 6
        costs.add(HardwareSpec(
            f"gpu-{n:02d}", GPUS, "H100" if h100 else "A100-80GB",
            Decimal(380_000 if h100 else 250_000), date(2025, 1 + n, 1), 36, Decimal("0.2"),
            Decimal(1500)))
    nodes = [SyntheticNode(f"gpu-{n:02d}", GPUS) for n in range(NODES)]
    return load_history(engine, nodes, START, END, jobs, seed=seed)


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
    document = build(service, kind, END - timedelta(days=days), END,
                     by="job" if by == "job-all" else by, now=END, limit=limit)
    body = document.wire_bytes()  # as the API serializes it
    seconds = time.perf_counter() - t
    rss_mb = peak_rss_mb()
    data = json.loads(body)
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
