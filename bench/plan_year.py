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
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    total_peak = 0
    while proc.poll() is None:  # the command and its worker processes together
        total_peak = max(total_peak, tree_rss(proc.pid))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    print(stdout, stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"plan: {seconds:.1f} s, peak memory {total_peak / 2**20:.0f} MB all processes "
          f"together ({peak:.0f} MB the largest one) (exit {proc.returncode})")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                rss = next((line for line in f if line.startswith("VmRSS:")), None)
            total += int(rss.split()[1]) * 1024 if rss else 0
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # it ended between two reads
    return total


if __name__ == "__main__":
    main()
