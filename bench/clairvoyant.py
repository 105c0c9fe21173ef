"""#36's yardstick: a clairvoyant reference that knows every job's true duration, written apart
from clusterctl's scheduler and simulator so that it shares none of their choices.

How it places jobs: at every arrival and every end, the waiting jobs are taken smallest first
by GPUs x true run time (the run time is min(duration, time limit), as in `simulate`), and each
one that fits now starts now (greedy: a job that does not fit is passed over, never waited
for); no preemption. A job of N GPUs on each of K nodes takes K distinct nodes with N free
GPUs each, the fullest such nodes first (best fit). Teams, quotas and priorities are ignored:
it is a bound on average JCT, not a policy anyone would run.

Beside it, in the same run, `simulate`'s `guarded` (the former default) and `default` policies
on the same trace and cluster.
With --without-limit SHARE that share of the jobs (drawn with a fixed seed; 1: all of them)
has no time limit, as though nobody set one: what the default's order owes to time limits,
and what attained service (``PolicyConfig.demote_after_gpu_s``) gives back (the default
replayed without it, and with its promotion of long jobs, ``promote_after_slowdown``, in the
same run).
With --month SEED, instead of Philly: the synthetic month of bench/mixed_month.py (that seed,
every team's rate times --scale, GPU types dropped) on --cluster, 8x8 by default.
Run: python bench/clairvoyant.py [--cluster 16x8] [--no-default] [--without-limit 0.5]
     [--month 1 [--scale 1.6]]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import engine, metrics, trace
from clusterctl.simulate.compare import compare
from clusterctl.simulate.trace import TraceJob

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "philly.csv"
TEAMS = ["6214e9", "6c71a0", "11cb48", "103959"]


def replay(jobs: list[TraceJob], nodes: int, per_node: int) -> dict[str, float]:
    """Average and percentile JCT and wait of the clairvoyant schedule."""
    free = [per_node] * nodes
    run = {j.id: j.run_s for j in jobs}
    waiting: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    """Per shape (GPUs per node, nodes), a heap of (GPUs x run time, submit, id)."""
    by_id = {j.id: j for j in jobs}
    arrivals = sorted(jobs, key=lambda j: (j.submit_s, j.id))
    ends: list[tuple[float, int, list[int]]] = []
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    i, now = 0, 0.0
    while i < len(arrivals) or ends:
        now = min(arrivals[i].submit_s if i < len(arrivals) else float("inf"),
                  ends[0][0] if ends else float("inf"))
        while ends and ends[0][0] <= now:
            t, job_id, held = heapq.heappop(ends)
            end[job_id] = t
            for n in held:
                free[n] += by_id[job_id].gpus
        while i < len(arrivals) and arrivals[i].submit_s <= now:
            j = arrivals[i]
            heapq.heappush(waiting.setdefault((j.gpus, j.nodes), []),
                           (j.total_gpus * run[j.id], j.submit_s, j.id))
            i += 1
        while True:  # the smallest waiting job that fits, until none does
            best = None
            for (g, k), heap in waiting.items():
                if heap and sum(1 for f in free if f >= g) >= k and \
                        (best is None or heap[0] < waiting[best][0]):
                    best = (g, k)
            if best is None:
                break
            _, _, job_id = heapq.heappop(waiting[best])
            g, k = best
            held = sorted((n for n in range(nodes) if free[n] >= g), key=lambda n: free[n])[:k]
            for n in held:
                free[n] -= g
            start[job_id] = now
            heapq.heappush(ends, (now + run[job_id], job_id, held))
    jct = np.array([end[j.id] - j.submit_s for j in jobs])
    wait = np.array([start[j.id] - j.submit_s for j in jobs])
    return {"avg_jct_s": float(jct.mean()), "p50_jct_s": float(np.percentile(jct, 50)),
            "p95_jct_s": float(np.percentile(jct, 95)), "p99_jct_s": float(np.percentile(jct, 99)),
            "avg_wait_s": float(wait.mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", action="append", default=None, help="NODESx8 (repeatable)")
    ap.add_argument("--no-default", action="store_true", help="the reference alone")
    ap.add_argument("--without-limit", type=float, default=0.0, metavar="SHARE",
                    help="this share of the jobs without a time limit")
    ap.add_argument("--month", type=int, default=None, metavar="SEED",
                    help="instead of Philly: bench/mixed_month.py's synthetic month of this "
                         "seed, GPU types dropped, on --cluster (default 8x8)")
    ap.add_argument("--scale", type=float, default=1.6,
                    help="with --month: every team's rate times this")
    args = ap.parse_args()
    h = 1000.0
    print("| scenario | policy | avg JCT | p50 | p95 | p99 | avg wait | Jain | preemptions "
          "(GPU-h lost) | replay |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    default = ["8x8"] if args.month is not None else ["16x8", "24x8"]
    for c in args.cluster or default:
        nodes = int(c.lower().split("x")[0])
        fleet = trace.uniform(nodes, 8)
        tr = (trace.load(TRACE, fleet=fleet, teams=TEAMS) if args.month is None
              else _month(args.month, args.scale, fleet))
        name = "Philly" if args.month is None else f"month {args.month}"
        jobs = tr.jobs
        if args.without_limit > 0:
            draw = random.Random(1)
            jobs = [replace(j, time_limit_s=None) if draw.random() < args.without_limit
                    else j for j in jobs]
        t0 = time.perf_counter()
        ref = replay(jobs, nodes, 8)
        took = time.perf_counter() - t0
        print(f"| {name} {nodes} x 8 | clairvoyant | {ref['avg_jct_s'] / h:.1f}k s | "
              f"{ref['p50_jct_s'] / h:.1f}k | {ref['p95_jct_s'] / h:.1f}k | "
              f"{ref['p99_jct_s'] / h:.1f}k | {ref['avg_wait_s'] / h:.1f}k s | | | {took:.0f} s |",
              flush=True)
        if args.no_default:
            continue
        quotas = resolve_quotas({}, tr.teams, nodes * 8)
        for result in compare(jobs, fleet, quotas, names=("guarded", "default")):
            _row(f"{name} {nodes} x 8", result.figures, ref["avg_jct_s"], result.seconds)
        if args.without_limit > 0:  # the default with the promotion of long jobs (off by
            # default), and without attained service: what each buys
            for label, config in (
                    ("default, promoting at 4x", PolicyConfig(quotas=quotas,
                                                              promote_after_slowdown=4.0)),
                    ("default, attained service off", PolicyConfig(quotas=quotas,
                                                                   demote_after_gpu_s=()))):
                t0 = time.perf_counter()
                out = engine.replay(jobs, fleet, config)
                seconds = time.perf_counter() - t0
                _row(f"{name} {nodes} x 8", metrics.figures(label, out, quotas),
                     ref["avg_jct_s"], seconds)


def _month(seed: int, scale: float, fleet: list[trace.FleetGroup]) -> trace.Trace:
    """The synthetic month of ``bench/mixed_month.py``, every job of any GPU type."""
    from mixed_month import generate

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "month.csv"
        rows = [{**r, "gpu_type": ""} for r in generate(seed, scale)]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return trace.load(path, fleet=fleet)


def _row(scenario: str, f: metrics.Figures, reference_s: float, seconds: float) -> None:
    h = 1000.0
    print(f"| {scenario} | {f.policy} | {f.avg_jct_s / h:.1f}k s "
          f"({f.avg_jct_s / reference_s:.1f}x) | {f.p50_jct_s / h:.1f}k | "
          f"{f.p95_jct_s / h:.1f}k | {f.p99_jct_s / h:.1f}k | {f.avg_wait_s / h:.1f}k s "
          f"| {f.jain:.2f} | {f.preemptions} ({f.lost_share:.2%}) | {seconds:.0f} s |",
          flush=True)


if __name__ == "__main__":
    main()
