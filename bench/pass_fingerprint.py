"""The scheduling pass's decisions, as one hash per replay: a change meant to keep the pass the
same (a refactor) must print the same hashes before and after; the replay times show whether it
cost speed. Each hash covers every job's first start, end and preemptions.

Replays: the Philly scenario (teams 6214e9, 6c71a0, 11cb48, 103959 on 16 x 8) with the default
policy and EASY backfill, and the mixed month (bench/mixed_month.py, seed 1) with every policy.

    python bench/pass_fingerprint.py            # from a checkout; run the old one the same hour
"""

from __future__ import annotations

import csv
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mixed_month import FLEET, generate

from clusterctl.gpu_types import parse_fleet
from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import baselines, engine, trace

PHILLY = Path(__file__).resolve().parents[2] / "shared" / "traces" / "philly.csv"
TEAMS = ["6214e9", "6c71a0", "11cb48", "103959"]


def fingerprint(out: engine.Outcome) -> str:
    h = hashlib.sha256()
    for r in sorted(out.records, key=lambda r: r.job.id):
        h.update(f"{r.job.id},{r.first_start!r},{r.end!r},{r.preemptions};".encode())
    return h.hexdigest()[:16]


def replay(name: str, tr: trace.Trace, fleet: list, gpus: int, policies: tuple[str, ...],
           typed: dict[str, dict[str, float]] | None = None) -> None:
    quotas = resolve_quotas({}, tr.teams, gpus)
    for team, kinds in (typed or {}).items():
        quotas[team] = sum(kinds.values())
    base = PolicyConfig(quotas=quotas, type_quotas=typed or {})
    for policy in policies:
        t0 = time.perf_counter()
        out = engine.replay(tr.jobs, fleet, baselines.config(policy, base))
        print(f"{name:12} {policy:9} {fingerprint(out)}  {out.preemptions:6,} preemptions  "
              f"{time.perf_counter() - t0:6.1f} s", flush=True)


def main() -> None:
    fleet = parse_fleet(FLEET)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="") as f:
        rows = generate(1, 1.2)
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        f.flush()
        month = trace.load(Path(f.name), fleet=fleet, seed=1)
    gpus = sum(n * g for n, g, _ in fleet)
    replay("mixed month", month, fleet, gpus, baselines.POLICIES)
    replay("typed quotas", month, fleet, gpus, ("default",),  # quotas per GPU type
           {"llm": {"H100": 6.0, "A100": 6.0}, "vision": {"A100": 8.0, "RTX-4090": 4.0}})
    philly_fleet = trace.uniform(16, 8)
    philly = trace.load(PHILLY, fleet=philly_fleet, teams=TEAMS)
    replay("philly 16x8", philly, philly_fleet, 128, ("backfill", "default"))


if __name__ == "__main__":
    main()
