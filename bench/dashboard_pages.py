"""The dashboard's pages with 10,000 jobs queued and a year of history (issue #34: every page's
HTML in under 300 ms), beside the API's JSON for the same rows as the baseline, in the same run.

The year is bench/reports_year.py's (8 machines of 8 GPUs, 100,000 jobs, their usage records
and hour rollups); a real `clusterctl up --ray-address` serves it, one job holds all the GPUs
and 10,000 more wait behind it, as they would on a busy cluster (the scheduler keeps passing
over them meanwhile). Each address is fetched 7 times after a warm-up, signed in with a session
cookie like a browser; the median and the slowest are printed.

Run: python bench/dashboard_pages.py [--jobs N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import reports_year
from common import Stack

QUEUED = 10_000
RUNS = 7


def fill_queue(stack: Stack) -> int:
    """The blocker, then ``QUEUED`` jobs from 8 clients; the blocker's id."""
    with stack.client() as c:
        blocker = c.post("/v1/jobs", json={"command": ["sleep", "3600"], "gpus": 4,
                                           "workdir": "/tmp", "name": "blocker"}).json()["id"]

    def loop(n: int) -> None:
        with stack.client() as c:
            for i in range(n):
                r = c.post("/v1/jobs", json={"command": ["python", "train.py", str(i)],
                                             "gpus": 1, "workdir": "/tmp", "name": f"q{i}"})
                assert r.status_code == 201, r.text

    threads = [threading.Thread(target=loop, args=(QUEUED // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return int(blocker)


def timed(c: httpx.Client, path: str) -> tuple[float, float, int]:
    """(median, slowest) seconds over ``RUNS`` fetches after one warm-up, and the bytes."""
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:200])
    seconds = []
    for _ in range(RUNS):
        t = time.perf_counter()
        r = c.get(path)
        seconds.append(time.perf_counter() - t)
        assert r.status_code == 200, (path, r.status_code)
    return statistics.median(seconds), max(seconds), len(r.content)


def main() -> None:
    jobs = int(sys.argv[sys.argv.index("--jobs") + 1]) if "--jobs" in sys.argv else 100_000
    db = Path(tempfile.mkdtemp(prefix="dash-bench-")) / "year.db"
    t = time.perf_counter()
    # The year up to now (reports_year's ends on a fixed day): the last 30 days are full.
    reports_year.END = datetime.now(timezone.utc).replace(microsecond=0)
    reports_year.START = reports_year.END - timedelta(days=365)
    made = reports_year.generate(f"sqlite:///{db}", jobs)
    print(f"a year: {made['jobs']:,.0f} jobs, {made['allocations']:,.0f} allocations "
          f"({time.perf_counter() - t:.0f} s)", flush=True)
    stack = Stack(f"sqlite:///{db}", gpus=4)
    try:
        t = time.perf_counter()
        blocker = fill_queue(stack)
        print(f"{QUEUED:,} jobs queued behind job {blocker} ({time.perf_counter() - t:.0f} s)",
              flush=True)
        with httpx.Client(base_url=stack.url, timeout=60) as c:
            signed = c.post("/login", data={"token": stack.token}, follow_redirects=False)
            assert signed.status_code == 303, signed.text
            queue = c.get("/").text
            assert f"of {QUEUED + 1} matching" in queue, "the queue page counts every job"
            api = stack.client()
            rows = [
                ("/ (the queue)", c, "/"),
                ("  baseline: GET /v1/jobs?limit=100 (JSON)", api, "/v1/jobs?limit=100"),
                ("/gpus", c, "/gpus"),
                ("  baseline: GET /v1/nodes (JSON)", api, "/v1/nodes"),
                (f"/jobs/{blocker}", c, f"/jobs/{blocker}"),
                (f"  baseline: GET /v1/jobs/{blocker} (JSON)", api, f"/v1/jobs/{blocker}"),
                ("/usage (the page; its sections load on their own)", c, "/usage"),
                ("/admin", c, "/admin"),
            ]
            for name in ("utilization", "cost-team", "cost-user", "cost-job", "waste",
                         "budgets", "amortization"):
                rows.append((f"  section /usage/{name} (30 days)", c,
                             f"/usage/{name}?since=30d"))
            rows.append(("  baseline: GET /v1/reports/cost?by=user&since=30d (JSON)", api,
                         "/v1/reports/cost?by=user&since=30d"))
            for label, client, path in rows:
                median, slowest, size = timed(client, path)
                print(f"{label:<58} median {median * 1000:6.0f} ms  slowest "
                      f"{slowest * 1000:6.0f} ms  {size / 1024:7.1f} KiB", flush=True)
            api.close()
    finally:
        stack.close()


if __name__ == "__main__":
    main()
