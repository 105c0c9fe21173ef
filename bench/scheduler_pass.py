"""One scheduling pass over 10,000 pending jobs on 1,000 GPUs (125 nodes x 8), as the live
controller runs it: building the pending queue from plain rows, the pass, and a wait reason for
every pending job (``explain``). Goal: under 50 ms.

Three cluster states: empty (about 1,000 jobs start), half busy, and full with a team under its
quota (the reclaim-by-preemption path); each on one GPU model and on a mixed fleet of three
(25 nodes of H100, 50 of A100, 50 of L40S; a third of the jobs typed or bound by memory). Job
sizes follow the Philly trace's mix (95% one GPU);
8 teams of 5 users, limits from 10 minutes to 3 days (a sixth without one). Then the full
cluster again with a third of the running jobs without a limit, up to a day into their run:
the attained-service path (demotion, #36).

    python bench/scheduler_pass.py
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace

from clusterctl.scheduler.pending import PendingQueue
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.quotas import resolve_quotas
from clusterctl.scheduler.records import (
    FairShareUsage,
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    guarded,
)

NOW = 1_800_000_000.0
TEAMS = [f"team{i}" for i in range(8)]
SIZES = [(1, 1)] * 950 + [(2, 1)] * 22 + [(4, 1)] * 13 + [(8, 1)] * 10 + [(8, 2)] * 5


GIB = 1 << 30
MODELS = [("NVIDIA H100 80GB HBM3", 80 * GIB)] * 25 + [("NVIDIA A100-SXM4-80GB", 80 * GIB)] * 50 \
    + [("NVIDIA L40S", 48 * GIB)] * 50
ASKS: list[tuple[tuple[str, ...], int | None]] = [((), None)] * 66 + [(("H100",), None)] * 15 \
    + [(("A100",), None)] * 10 + [(("A100", "H100"), None)] * 5 + [((), 64 * GIB)] * 4


def pending(rng: random.Random, n: int, mixed: bool) -> list[QueuedJob]:
    out = []
    for i in range(n):
        gpus, nodes = rng.choice(SIZES)
        team = rng.choice(TEAMS[:7])  # team7 has nothing queued but its quota (reclaim case)
        types, mem = rng.choice(ASKS) if mixed else ((), None)
        out.append(QueuedJob(i + 1, rng.choice([0, 0, 0, 1]), NOW - rng.uniform(0, 5 * 86400),
                             gpus, nodes, team, f"{team}-u{rng.randrange(5)}",
                             rng.choice([600.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0, None]),
                             gpu_types=types, gpu_mem=mem))
    return out


def running(rng: random.Random, caps: dict[str, int], share: float,
            unlimited: bool = False) -> list[RunningJob]:
    out: list[RunningJob] = []
    target = share * 8 * len(caps)
    held = 0
    for i, node in enumerate(caps):
        while held < target and caps[node] > 0:
            g = min(caps[node], rng.choice([1, 1, 1, 2, 4, 8]))
            caps[node] -= g
            held += g
            team = TEAMS[(i + len(out)) % 7]
            started = NOW - rng.uniform(0, 86400)  # drawn in the order of earlier runs
            limit = rng.choice([3600.0, 86400.0, None] if unlimited else [3600.0, 86400.0])
            out.append(RunningJob(100_000 + len(out), team, f"{team}-u0", (node,), g,
                                  started, limit))
    return out


def scenario(name: str, share: float, reclaim: bool, mixed: bool = False,
             unlimited: bool = False) -> None:
    rng = random.Random(7)
    caps = {f"node{i:03d}": 8 for i in range(125)}
    run = running(rng, caps, share, unlimited)
    rows = pending(rng, 10_000, mixed)
    if reclaim:
        rows = rows[:-5] + [replace(j, team="team7", user="team7-u0") for j in rows[-5:]]
    nodes = [NodeCapacity(n, 8, f, gpu_model=MODELS[i][0] if mixed else None,
                          gpu_mem=MODELS[i][1] if mixed else None)
             for i, (n, f) in enumerate(caps.items())]
    usage = FairShareUsage({t: rng.uniform(0, 1e7) for t in TEAMS},
                  {(t, f"{t}-u{u}"): rng.uniform(0, 1e6) for t in TEAMS for u in range(5)})
    base = PolicyConfig(quotas=resolve_quotas({}, TEAMS, 1000))
    for policy in ("guarded", "default"):  # the former default beside today's, same jobs
        _time(f"{name}{' (3 models)' if mixed else ''}, {policy}",
              guarded(base) if policy == "guarded" else base, rows, run, nodes, usage)


def _time(label: str, cfg: PolicyConfig, rows: list[QueuedJob], run: list[RunningJob],
          nodes: list[NodeCapacity], usage: FairShareUsage) -> None:
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        queue = PendingQueue(rows, cfg.demote_after_gpu_s, cfg.promote_after_slowdown)
        d = schedule(queue, run, nodes, now=NOW, config=cfg, usage=usage,
                     explain=True)
        times.append(time.perf_counter() - t0)
    print(f"{label:<56} median {statistics.median(times) * 1000:6.1f} ms  "
          f"max {max(times) * 1000:6.1f} ms  ({len(run)} running, {len(d.starts)} started, "
          f"{len(d.preemptions)} preempted, {len(d.waiting)} explained)")


if __name__ == "__main__":
    scenario("empty cluster", 0.0, False)
    scenario("half busy", 0.5, False)
    scenario("full, a team under quota (reclaim)", 1.0, True)
    scenario("empty cluster", 0.0, False, mixed=True)
    scenario("half busy", 0.5, False, mixed=True)
    scenario("full, a team under quota (reclaim)", 1.0, True, mixed=True)
    scenario("full, a third without limits (demotion)", 1.0, False, unlimited=True)
    scenario("full, a third without limits (demotion)", 1.0, False, mixed=True, unlimited=True)
