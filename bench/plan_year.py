"""``clusterctl plan`` on a year of a 64-GPU cluster's history (#20: about 100,000 jobs, three
scenarios, under 60 s and 1 GB).

The year is twelve of ``mixed_month.py``'s startup months (four teams of different habits,
office hours, heavy-tailed durations, a deadline burst each month), each team's rate scaled so
that the year holds about 100,000 jobs. The fleet: 2 x 8 H100, 5 x 8 A100-80GB and 1 x 8
RTX 4090 (64 GPUs). The three scenarios: the current fleet, adding an 8 x H100 box, selling an
A100 machine. Time and peak memory are of the whole command, as a user runs it.

    python bench/plan_year.py [--scale 1.6] [--csv FILE]
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mixed_month import MONTH, generate

FLEET = "2x8:H100-80GB@280000,5x8:A100-80GB@150000,1x8:RTX-4090@22000"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.6)
    ap.add_argument("--csv", type=Path, default=Path("/tmp/plan-year.csv"))
    args = ap.parse_args()
    rows = []
    for month in range(12):
        for r in generate(100 + month, args.scale):
            rows.append(r | {"submit_s": int(r["submit_s"]) + int(month * MONTH)})  # type: ignore[call-overload]
    with args.csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows):,} jobs over 12 months on {FLEET}", flush=True)
    argv = [sys.executable, "-m", "clusterctl", "plan", "--trace", str(args.csv),
            "--fleet", FLEET, "--add", "1x8:H100-80GB@280000", "--remove", "node-3"]
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    print(out.stdout, out.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"plan: {seconds:.1f} s, peak memory of one process {peak:.0f} MB "
          f"(exit {out.returncode})")


if __name__ == "__main__":
    main()
