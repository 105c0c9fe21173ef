"""#36 items 2 and 3: how the default policy's figures move with what a preemption costs in
the replay (bench/simulate_philly.py's scenario, the Philly teams on 16 x 8 and 24 x 8 GPUs): a
resumed job's restore overhead (0 or 60 s) and its checkpoints (at preemption, or every
30 minutes of progress, losing the work since the last); and, at the defaults, with and
without the minimum run time before a job may be preempted (``preempt_min_run_s``).

    python bench/resume_costs.py           every setting
    python bench/resume_costs.py --min-run the defaults, with the minimum run time 0 and 10 min
"""

from __future__ import annotations

import sys
import time

from simulate_philly import TEAMS, TRACE

from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import trace
from clusterctl.simulate.compare import compare
from clusterctl.simulate.engine import Resume

DEFAULT_MIN_RUN = PolicyConfig.preempt_min_run_s
SETTINGS = [("0 s", "at preemption", Resume(0.0, None), DEFAULT_MIN_RUN),
            ("60 s", "at preemption", Resume(60.0, None), DEFAULT_MIN_RUN),
            ("0 s", "every 30 min", Resume(0.0, 1800.0), DEFAULT_MIN_RUN),
            ("60 s (default)", "every 30 min (default)", Resume(), 0.0),
            ("60 s (default)", "every 30 min (default)", Resume(), DEFAULT_MIN_RUN)]


def main() -> None:
    settings = [s for s in SETTINGS if s[2] == Resume()] if "--min-run" in sys.argv else SETTINGS
    print("| cluster | restore | checkpoints | min run | avg JCT | p99 JCT | avg wait "
          "| preemptions | GPU-h lost (share of held) | replay |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for nodes in (16, 24):
        fleet = trace.uniform(nodes, 8)
        tr = trace.load(TRACE, fleet=fleet, teams=TEAMS)
        quotas = resolve_quotas({}, tr.teams, nodes * 8)
        for restore, checkpoints, resume, min_run in settings:
            t0 = time.perf_counter()
            (run,) = compare(tr.jobs, fleet, quotas, ("default",), resume=resume,
                             preempt_min_run_s=min_run)
            f = run.figures
            print(f"| {nodes} x 8 | {restore} | {checkpoints} | {min_run / 60:g} min | "
                  f"{f.avg_jct_s / 1000:.1f}k s | "
                  f"{f.p99_jct_s / 1000:.1f}k s | {f.avg_wait_s / 1000:.1f}k s | "
                  f"{f.preemptions:,} | {f.lost_gpu_h:,.0f} ({f.lost_share:.2%}) | "
                  f"{time.perf_counter() - t0:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
