"""``clusterctl simulate``: replay a job trace through the scheduling policies side by side."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clusterctl.cli.common import console, err_console, handles_errors, print_json
from clusterctl.cli.report import check_plot, plots
from clusterctl.gpu_types import parse_fleet
from clusterctl.parsing import BadInput, parse_duration
from clusterctl.scheduler.quotas import parse_quotas, resolve_quotas, totals, unknown_types
from clusterctl.simulate import baselines, metrics, trace
from clusterctl.simulate.compare import compare
from clusterctl.simulate.engine import Resume
from clusterctl.simulate.trace import parse_overestimate

Overestimate = Annotated[str, typer.Option(
    help="Time limit = duration x a factor drawn from LOW-HIGH (histories without limits)")]


def _h(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


@handles_errors
def simulate(
    trace_file: Annotated[Path, typer.Option("--trace", help="CSV: submit_s, duration_s, "
                                             "num_gpus, team (or vc); time_limit_s and "
                                             "gpu_type optional")],
    cluster: Annotated[str, typer.Option(
        help="NODESxGPUS per node, or a mixed fleet: 2x8:H100,4x8:A100")] = "16x8",
    policy: Annotated[str, typer.Option(help="Comma-separated: " + ", ".join(
        baselines.KNOWN) + " (guarded: the former default)")] = ",".join(baselines.POLICIES),
    teams: Annotated[str | None, typer.Option(help="Only these teams (comma-separated)")] = None,
    quota: Annotated[list[str] | None, typer.Option(
        help="TEAM=GPUS or TEAM=TYPE:GPUS+TYPE:GPUS (vision=H100:8+A100:16), repeatable; "
             "other teams share the rest equally")] = None,
    overestimate: Overestimate = "1-3",
    seed: int = 0,
    restore_overhead: Annotated[str, typer.Option(
        help="What a preempted job's resumed attempt spends before it makes progress again "
             "(loading its checkpoint)")] = "60s",
    checkpoint_interval: Annotated[str, typer.Option(
        help="Progress between a job's checkpoints (a preempted job loses what it did since "
             "its last), or 'preemption': it checkpoints when told, losing nothing")] = "30m",
    preempt_min_run: Annotated[str, typer.Option(
        help="No job is preempted before it has run this long in its attempt (the "
             "controller's preempt_min_run_s); 0: at once")] = "10m",
    json_: Annotated[bool, typer.Option("--json")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Wait-time CDFs: FILE.png, or FILE.html with the table")] = None,
) -> None:
    """Replay a trace in simulated time through the live policy and the baselines."""
    fleet = parse_fleet(cluster)
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in baselines.KNOWN]
    if unknown or not names:
        raise BadInput("--policy", f"{','.join(unknown) or policy!r} is not one of "
                                   f"{', '.join(baselines.KNOWN)}")
    check_plot(plot)
    bare, typed = parse_quotas(quota or [])
    limits = parse_overestimate(overestimate)
    wanted = [t.strip() for t in teams.split(",") if t.strip()] if teams else None
    try:
        tr = trace.load(trace_file, fleet=fleet, teams=wanted, overestimate=limits, seed=seed)
    except trace.TraceError as e:
        raise BadInput("--trace", str(e)) from None
    if not tr.jobs:
        raise BadInput("--trace", f"{trace_file} has no jobs for this cluster and these teams")
    for missing in unknown_types(typed, (model for _, _, model in fleet)):
        err_console.print(f"warning: --quota {missing}: no node of --cluster has that type")
    quotas = resolve_quotas(totals(bare, typed), tr.teams, sum(n * g for n, g, _ in fleet))
    results: list[metrics.Figures] = []
    waits: dict[str, Any] = {}
    min_run = _seconds_or_zero(preempt_min_run, "--preempt-min-run")
    for run in compare(tr.jobs, fleet, quotas, names, typed,
                       _resume(restore_overhead, checkpoint_interval), min_run):
        results.append(run.figures)
        waits[run.figures.policy] = run.waits
    if plot is not None:
        plots().write_simulation(waits, results, plot)
    if json_:
        print_json([asdict(f) | {"skipped": tr.skipped} for f in results])
        return
    _print(results, tr, cluster)
    if plot is not None:
        console.print(f"chart written to {plot}")


def _seconds_or_zero(text: str, flag: str) -> float:
    """A duration where 0 is allowed (a time limit's parser refuses it)."""
    return 0.0 if text.strip() in ("0", "0s") else float(parse_duration(text, flag))


def _resume(restore: str, interval: str) -> Resume:
    seconds = _seconds_or_zero(restore, "--restore-overhead")
    if interval.strip().lower() == "preemption":
        return Resume(seconds, None)
    return Resume(seconds, float(parse_duration(interval, "--checkpoint-interval")))


def _print(results: list[metrics.Figures], tr: trace.Trace, cluster: str) -> None:
    console.print(f"{len(tr.jobs)} jobs of {len(tr.teams)} teams on {cluster}"
                  + (f"; {tr.skipped} no node of the fleet can hold skipped" if tr.skipped
                     else ""), markup=False)
    t = Table("policy", "avg wait", "p50", "p95", "p99", "avg JCT", "p50", "p95", "p99",
              "bounded slowdown", "makespan", "GPU util", "Jain", "preemptions",
              "GPU-h lost")
    for f in results:
        t.add_row(f.policy, _h(f.avg_wait_s), _h(f.p50_wait_s), _h(f.p95_wait_s),
                  _h(f.p99_wait_s), _h(f.avg_jct_s), _h(f.p50_jct_s), _h(f.p95_jct_s),
                  _h(f.p99_jct_s), f"{f.bounded_slowdown:.1f}",
                  f"{f.makespan_s / 86400:.1f} d", f"{f.utilization:.1%}", f"{f.jain:.3f}",
                  str(f.preemptions) + (f" ({f.demotions} demoted)" if f.demotions else ""),
                  f"{f.lost_gpu_h:,.0f} ({f.lost_share:.1%})")
    console.print(t)
    teams = Table("team", "jobs", "quota (GPUs)", "GPU-hours share",
                  *[f"{f.policy}: got of due" for f in results],
                  caption="got of due: GPU-time received / min(quota, demand) over time")
    for i, team in enumerate(results[0].teams):
        teams.add_row(team.team, str(team.jobs), f"{team.quota:.1f}",
                      f"{results[-1].teams[i].gpu_share:.0%}",
                      *[f"{f.teams[i].satisfaction:.0%}" for f in results])
    console.print(teams)
    if results[0].types:
        types = Table("GPU type", "jobs", "GPUs", *[f"{f.policy}: avg wait / p95 / util"
                                                    for f in results],
                      caption="any: jobs that named no type; util: of that model's GPUs")
        for i, row in enumerate(results[0].types):
            types.add_row(row.gpu_type, str(row.jobs), str(row.gpus or "-"), *[
                f"{_h(f.types[i].avg_wait_s)} / {_h(f.types[i].p95_wait_s)} / "
                + (f"{f.types[i].utilization:.0%}" if row.gpus else "-") for f in results])
        console.print(types)
