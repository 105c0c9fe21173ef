"""#36 item 3: how the default policy's figures move with what a preemption costs in the
replay (bench/simulate_philly.py's scenario, the Philly teams on 16 x 8 and 24 x 8 GPUs): a
resumed job's restore overhead (0 or 60 s) and its checkpoints (at preemption, or every
30 minutes of progress, losing the work since the last).

    python bench/resume_costs.py
"""

from __future__ import annotations

import time

from simulate_philly import TEAMS, TRACE

from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.simulate import trace
from clusterctl.simulate.compare import compare
from clusterctl.simulate.engine import Resume

SETTINGS = [("0 s", "at preemption", Resume(0.0, None)),
            ("60 s", "at preemption", Resume(60.0, None)),
            ("0 s", "every 30 min", Resume(0.0, 1800.0)),
            ("60 s (default)", "every 30 min (default)", Resume())]


def main() -> None:
    print("| cluster | restore | checkpoints | avg JCT | p99 JCT | avg wait | preemptions "
          "| GPU-h lost (share of held) | replay |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for nodes in (16, 24):
        fleet = trace.uniform(nodes, 8)
        tr = trace.load(TRACE, fleet=fleet, teams=TEAMS)
        quotas = resolve_quotas({}, tr.teams, nodes * 8)
        for restore, checkpoints, resume in SETTINGS:
            t0 = time.perf_counter()
            (run,) = compare(tr.jobs, fleet, quotas, ("default",), resume=resume)
            f = run.figures
            print(f"| {nodes} x 8 | {restore} | {checkpoints} | {f.avg_jct_s / 1000:.1f}k s | "
                  f"{f.p99_jct_s / 1000:.1f}k s | {f.avg_wait_s / 1000:.1f}k s | "
                  f"{f.preemptions:,} | {f.lost_gpu_h:,.0f} ({f.lost_share:.2%}) | "
                  f"{time.perf_counter() - t0:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
