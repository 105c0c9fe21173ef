"""A startup's month on a mixed fleet, replayed through every policy (#18's numbers).

The fleet: one 8 x H100 box bought this year, three 8 x A100 machines from last year and two
4 x RTX 4090 workstations (40 GPUs). Four teams of different habits, generated with a seed:

- ``llm``: few, large and long: 8 or 16 GPUs for hours to days, most asking for H100 (a
  16-GPU H100 job cannot run on one H100 box: it is left out, as ``simulate`` reports);
- ``vision``: 1 to 4 GPUs for 1 to 12 h, a third asking for A100;
- ``research``: many 1-GPU experiments of minutes to hours (log-normal), a fifth on 4090s;
- ``product``: 1 to 2 GPUs of evaluation, short, and a deadline burst in the third week (ten
  times its rate for two days).

Arrivals follow office hours (three times the night rate from 9:00 to 19:00, weekdays); every
duration is heavy-tailed (log-normal), time limits are the duration times 1 to 3.

    python bench/mixed_month.py [--seed 1] [--csv FILE] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

from clusterctl.gpu_types import parse_fleet
from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.simulate import trace
from clusterctl.simulate.compare import compare

FLEET = "1x8:H100-80GB,3x8:A100-80GB,2x4:RTX-4090"
DAY = 86400.0
MONTH = 30 * DAY

# team: (jobs per day, [(weight, GPUs)], (median h, sigma), [(weight, type or None)])
TEAMS: dict[str, tuple[float, list[tuple[int, int]], tuple[float, float],
                       list[tuple[int, str | None]]]] = {
    "llm": (1.8, [(3, 8), (1, 16)], (14.0, 0.8), [(3, "H100"), (2, None)]),
    "vision": (28.0, [(4, 1), (3, 2), (2, 4)], (3.0, 0.9), [(1, "A100"), (2, None)]),
    "research": (120.0, [(1, 1)], (0.5, 1.3), [(1, "4090"), (4, None)]),
    "product": (18.0, [(3, 1), (1, 2)], (0.4, 0.8), [(1, None)]),
}
BURST = (15 * DAY, 17 * DAY, 10.0)  # product's deadline: ten times its rate for two days


def _pick(rng: random.Random, weighted: list[tuple[int, object]]) -> object:
    return rng.choices([v for _, v in weighted], [w for w, _ in weighted])[0]


def _rate(team: str, t: float, scale: float = 1.0) -> float:
    """Arrivals per second at ``t`` (office hours three times the night, weekends a third)."""
    per_day = TEAMS[team][0] * scale
    hour, weekday = (t % DAY) / 3600, int(t // DAY) % 7
    shape = 3.0 if 9 <= hour < 19 else 1.0
    if weekday >= 5:
        shape /= 3
    burst = BURST[2] if team == "product" and BURST[0] <= t < BURST[1] else 1.0
    mean_shape = (10 * 3 + 14) / 24 * (5 + 2 / 3) / 7
    return per_day / DAY * shape / mean_shape * burst


def generate(seed: int, scale: float = 1.0) -> list[dict[str, object]]:
    """The month's jobs, every team's rate times ``scale``."""
    rng = random.Random(seed)
    rows = []
    for team, (per_day, sizes, (median_h, sigma), types) in TEAMS.items():
        peak = per_day * scale / DAY * 3 * 10 * 2  # thinning: a bound on _rate
        t = 0.0
        while True:
            t += rng.expovariate(peak)
            if t >= MONTH:
                break
            if rng.random() > _rate(team, t, scale) / peak:
                continue
            duration = max(60.0, rng.lognormvariate(math.log(median_h * 3600), sigma))
            rows.append({"submit_s": round(t), "duration_s": round(min(duration, 5 * DAY)),
                         "num_gpus": _pick(rng, sizes),  # type: ignore[arg-type]
                         "team": team, "user": f"{team}-{rng.randrange(4)}",
                         "gpu_type": _pick(rng, types) or ""})  # type: ignore[arg-type]
    rows.sort(key=lambda r: (r["submit_s"], r["team"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", type=Path, default=Path("/tmp/mixed-month.csv"))
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--scale", type=float, default=1.2, help="every team's rate times this")
    args = ap.parse_args()
    rows = generate(args.seed, args.scale)
    with args.csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fleet = parse_fleet(FLEET)
    tr = trace.load(args.csv, fleet=fleet, seed=args.seed)
    gpus = sum(n * g for n, g, _ in fleet)
    demand = sum(j.run_s * j.total_gpus for j in tr.jobs)
    print(f"{len(tr.jobs)} jobs ({tr.skipped} skipped) of {len(tr.teams)} teams on {FLEET} "
          f"({gpus} GPUs); offered load {demand / (gpus * MONTH):.0%} of the month; "
          f"{sum(1 for j in tr.jobs if j.gpu_type)} typed")
    quotas = resolve_quotas({}, tr.teams, gpus)
    print("\n| policy | avg wait | p50 | p95 | p99 | GPU util | Jain | preemptions | replay |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    results, waits = [], {}
    for run in compare(tr.jobs, fleet, quotas,
                       names=("fifo", "greedy", "backfill", "guarded", "default")):
        fig, name = run.figures, run.figures.policy
        results.append(fig)
        waits[name] = run.waits
        h = 3600
        print(f"| {name} | {fig.avg_wait_s / h:.2f} h | {fig.p50_wait_s / h:.2f} h | "
              f"{fig.p95_wait_s / h:.1f} h | {fig.p99_wait_s / h:.1f} h | "
              f"{fig.utilization:.1%} | {fig.jain:.3f} | {fig.preemptions:,} | "
              f"{run.seconds:.1f} s |", flush=True)
    print("\nper GPU type: avg wait / p95 / utilization of that model")
    for i, row in enumerate(results[0].types):
        print(f"  {row.gpu_type} ({row.jobs} jobs, {row.gpus or '-'} GPUs): " + "; ".join(
            f"{r.policy} {r.types[i].avg_wait_s / 3600:.2f} h / "
            f"{r.types[i].p95_wait_s / 3600:.1f} h"
            + (f" / {r.types[i].utilization:.0%}" if row.gpus else "") for r in results))
    by = {r.policy: r for r in results}
    d = by["default"]
    checks = {
        "avg wait <= greedy's and backfill's": d.avg_wait_s <= min(by["greedy"].avg_wait_s,
                                                                    by["backfill"].avg_wait_s),
        "avg wait <= a third of fifo's": d.avg_wait_s <= by["fifo"].avg_wait_s / 3,
        "p95 and p99 <= backfill's": d.p95_wait_s <= by["backfill"].p95_wait_s
        and d.p99_wait_s <= by["backfill"].p99_wait_s,
        "Jain >= 0.9": d.jain >= 0.9,
    }
    print("\n" + "\n".join(f"  {'met' if ok else 'NOT MET'}: default's {what}"
                           for what, ok in checks.items()))
    if args.plot is not None:
        from clusterctl.reports import plots

        plots.write_simulation(waits, results, args.plot)


if __name__ == "__main__":
    main()
