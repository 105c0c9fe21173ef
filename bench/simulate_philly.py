"""The standard scenario: the Philly trace's teams 6214e9, 6c71a0, 11cb48 and 103959 (69,204
jobs) replayed through every policy, on 16 nodes x 8 GPUs (heavy load) and 24 x 8 (moderate).
Times each replay (goal: under 60 s) and prints the results table of docs/benchmarks.md;
``--plot DIR`` also writes the wait-time CDFs.

    python bench/simulate_philly.py [--cluster 16x8] [--plot docs/img]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.simulate import baselines, trace
from clusterctl.simulate.compare import compare

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "philly.csv"
TEAMS = ["6214e9", "6c71a0", "11cb48", "103959"]


def run(nodes: int, plot_dir: Path | None) -> None:
    tr = trace.load(TRACE, fleet=trace.uniform(nodes, 8), teams=TEAMS)
    quotas = resolve_quotas({}, tr.teams, nodes * 8)
    print(f"\n{len(tr.jobs)} jobs on {nodes} x 8 GPUs ({tr.skipped} skipped), quotas "
          f"{nodes * 2:g} GPUs each\n")
    print("| policy | avg wait | p50 | p95 | p99 | avg JCT | bounded slowdown | makespan "
          "| GPU util | Jain | preemptions | replay time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    waits, results = {}, []
    for run in compare(tr.jobs, trace.uniform(nodes, 8), quotas):
        f, name, elapsed = run.figures, run.figures.policy, run.seconds
        results.append(f)
        waits[name] = run.waits
        h = 3600
        print(f"| {name} | {f.avg_wait_s / h:.1f} h | {f.p50_wait_s / h:.1f} h | "
              f"{f.p95_wait_s / h:.1f} h | {f.p99_wait_s / h:.1f} h | {f.avg_jct_s / h:.1f} h | "
              f"{f.bounded_slowdown:.0f} | {f.makespan_s / 86400:.1f} d | {f.utilization:.1%} | "
              f"{f.jain:.3f} | {f.preemptions:,} | {elapsed:.0f} s |", flush=True)
    print("\nper team, share of GPU-hours and got-of-due (" + ", ".join(baselines.POLICIES) + ")")
    for i, team in enumerate(results[0].teams):
        print(f"  {team.team}: {team.jobs} jobs; " + "; ".join(
            f"{r.policy} {r.teams[i].gpu_share:.0%} / {r.teams[i].satisfaction:.0%}"
            for r in results))
    if plot_dir is not None:
        from clusterctl.reports import plots

        plots.write_simulation(waits, results, plot_dir / f"simulate-philly-{nodes}x8.png")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", action="append", default=None, help="NODESx8 (repeatable)")
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    for c in args.cluster or ["16x8", "24x8"]:
        run(int(c.lower().split("x")[0]), args.plot)
