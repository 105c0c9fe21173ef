"""The queue and one job: jobs, show, logs (and the tables `nodes` and the demo share)."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import typer
from rich.table import Table

from clusterctl import parsing
from clusterctl.cli.client import Client
from clusterctl.cli.common import (
    client,
    console,
    err_console,
    gib,
    handles_errors,
    local_time,
    percent,
    print_json,
    seconds_between,
    watts,
)
from clusterctl.gpu_types import describe_ask, parse_type
from clusterctl.parsing import format_duration
from clusterctl.states import ENDED, JobState

STATE_STYLE = {
    "PENDING": "yellow", "STARTING": "cyan", "RUNNING": "green", "SUCCEEDED": "bold green",
    "FAILED": "bold red", "CANCELLED": "magenta", "TIMEOUT": "red", "LOST": "red",
}


def gpus_asked(job: dict[str, Any]) -> str:
    """``2``, ``2x8``, ``8 H100``, ``1 (40 GiB+)``: the GPUs asked for, with their type."""
    count = str(job["gpus"]) if job["nodes"] == 1 else f"{job['nodes']}x{job['gpus']}"
    asked = describe_ask(job.get("gpu_types"), job.get("gpu_mem_bytes"))
    if not asked:
        return count
    return f"{count} {asked}" if job.get("gpu_types") else f"{count} ({asked})"


def jobs_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(box=None, pad_edge=False, title=title, title_justify="left")
    for col in ("ID", "NAME", "USER", "TEAM", "STATE", "GPUS", "NODES / WHY IT WAITS",
                "WAITED", "RAN"):
        table.add_column(col, justify="right" if col in ("ID", "GPUS") else "left")
    for j in rows:
        waited = seconds_between(j["submitted_at"], j["started_at"])
        ran = seconds_between(j["started_at"], j["ended_at"]) if j["started_at"] else None
        table.add_row(
            str(j["id"]), _name(j), j["user"], j["team"],
            f"[{STATE_STYLE.get(j['state'], '')}]{j['state']}[/]"
            + (" [yellow](idle GPUs)[/]" if j.get("idle_gpus") else ""), gpus_asked(j),
            ",".join(j["node_names"]) or why_waiting(j), format_duration(waited),
            format_duration(ran),
        )
    return table


def _name(j: dict[str, Any]) -> str:
    return j["name"] if j.get("array_index") is None else f"{j['name']}[{j['array_index']}]"


def why_waiting(j: dict[str, Any]) -> str:
    """A pending job's wait reason as the scheduler's last pass saw it, with the estimated
    start where backfill could tell."""
    if j["state"] != "PENDING" or not j.get("wait_reason"):
        return "-"
    text = j["wait_reason"] + (f": {j['wait_detail']}" if j.get("wait_detail") else "")
    if j.get("estimated_start"):
        text += f", starts by {local_time(j['estimated_start'])}"
    elif j.get("start_unknown"):
        text += ", start unknown (jobs ahead of it have no time limit)"
    return text


@handles_errors
def jobs(
    all_: Annotated[bool, typer.Option("--all", help="Include finished jobs.")] = False,
    user: Annotated[str | None, typer.Option(help="Only this user's jobs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only these states (comma-separated).")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team's jobs.")] = None,
    name: Annotated[str | None, typer.Option(
        help="Only jobs of this name (* matches any text: 'sweep-*').")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only jobs submitted in this last while: 2h, 7d.")] = None,
    gpu_type: Annotated[str | None, typer.Option(
        help="Only jobs that asked for this GPU type (H100 also finds H100-80GB).")] = None,
    limit: Annotated[str, typer.Option(help="Show the newest N jobs that match.")] = "1000",
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The queue: pending and running jobs (with --all, finished ones too). Never cut short
    silently: when more jobs match than are shown, it says how many."""
    if state:
        for s in state.split(","):
            if s.strip().upper() not in JobState.__members__:
                raise parsing.BadInput("--state", f"{s!r} is not one of "
                                       + ", ".join(JobState.__members__))
    if team is not None:
        parsing.parse_name(team, "--team")
    if name is not None and not name.strip():
        raise parsing.BadInput("--name", "is empty")
    count = parsing.parse_count(limit, "--limit", 100_000)
    after = None
    if since is not None:
        after = (datetime.now(timezone.utc)
                 - timedelta(seconds=parsing.parse_duration(since, "--since"))).isoformat()
    if gpu_type is not None:
        gpu_type = parse_type(gpu_type)
    rows, total = client().jobs_page(all=all_, user=user, state=state, team=team, name=name,
                                     since=after, limit=count, gpu_type=gpu_type)
    if json_:
        print_json(rows)
    else:
        console.print(jobs_table(rows))
    if total > len(rows):
        err_console.print(f"{len(rows)} of {total} jobs shown (the newest); "
                          f"--limit {total} shows them all, or narrow with --state, --user, "
                          "--team, --name, --gpu-type or --since")


@handles_errors
def show(
    job: Annotated[str, typer.Argument(help="Job id.")],
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A job's spec, state history and the GPUs it held."""
    j = client().job(parsing.parse_job_id(job))
    if json_:
        print_json(j)
        return
    console.print(f"[bold]Job {j['id']}[/] {j['name']}  "
                  f"[{STATE_STYLE.get(j['state'], '')}]{j['state']}[/]"
                  + (f"  ({j['reason']})" if j["reason"] else ""))
    limit = format_duration(j["time_limit_s"]) if j["time_limit_s"] else "none"
    console.print(f"  user {j['user']}  team {j['team']}  priority {j['priority']}  "
                  f"gpus {gpus_asked(j)}  time limit {limit}  "
                  f"retries {j['requeues']}/{j['retries']}")
    extras = []
    if j.get("array_index") is not None:
        extras.append(f"array {j['array_id']} index {j['array_index']}"
                      + (f" (at most {j['array_limit']} at once)" if j["array_limit"] else ""))
    if j.get("after"):
        extras.append("after " + ", ".join(f"{d['job']}{':ok' if d['ok'] else ''}"
                                           for d in j["after"]))
    if j.get("no_preempt"):
        extras.append("not preemptible")
    if j.get("preemptions"):
        extras.append(f"preempted {j['preemptions']} time(s)")
    if j.get("idle_timeout_s"):
        extras.append(f"idle timeout {format_duration(j['idle_timeout_s'])}")
    if j.get("interactive") is not None:
        it = j["interactive"]
        extras.append("interactive" + (" (pty)" if it.get("pty") else "")
                      + (f", ports {','.join(map(str, it['ports']))}" if it.get("ports") else "")
                      + f": clusterctl attach {j['id']}")
    if extras:
        console.print("  " + "  ".join(extras), markup=False)
    if j["state"] == "PENDING" and j.get("wait_reason"):
        console.print(f"  waiting: {why_waiting(j)}", markup=False)
    if j.get("idle_warning"):
        console.print(f"  [yellow]idle:[/] {j['idle_warning']}")
    console.print(f"  command: {' '.join(j['command'])}", markup=False)
    if j["workdir"]:
        console.print(f"  workdir: {j['workdir']}", markup=False)
    if j["exit_code"] is not None:
        console.print(f"  exit code: {j['exit_code']}")
    if j.get("cancel_asked_at"):
        took = next((h["at"] for h in j["history"] if h["state"] == "CANCELLED"), None)
        effect = (f"took effect {local_time(took)}" if took
                  else "not yet in effect" if j["state"] in ("STARTING", "RUNNING")
                  else f"the job ended {j['state']} first")
        console.print(f"  cancel: asked {local_time(j['cancel_asked_at'])} "
                      f"({j.get('cancel_reason') or 'cancelled'}); {effect}", markup=False)
    history = Table(title="history", box=None, title_justify="left")
    for col in ("AT", "STATE", "ATTEMPT", "REASON"):
        history.add_column(col)
    for h in j["history"]:
        history.add_row(local_time(h["at"]), h["state"], str(h["attempt"]), h["reason"] or "")
    console.print(history)
    if j["allocations"]:
        alloc = Table(title="GPUs held", box=None, title_justify="left")
        for col in ("ATTEMPT", "RANK", "NODE", "GPU", "UUID", "FROM", "TO"):
            alloc.add_column(col)
        for a in j["allocations"]:
            alloc.add_row(str(a["attempt"]), str(a["rank"]), a["node"], str(a["gpu_index"]),
                          a["gpu_uuid"] or "-", local_time(a["started_at"]),
                          local_time(a["ended_at"]))
        console.print(alloc)
    if j.get("usage"):
        console.print(usage_table(j["usage"]))
    if j.get("idle_gpus"):
        console.print("[yellow]  idle GPUs: a GPU of this job stayed under the waste threshold "
                      "for 30 minutes or more (`clusterctl report waste`)[/]")
    if j.get("cost"):
        console.print(cost_line(j["cost"]))


def cost_line(c: dict[str, Any]) -> str:
    cur = c["currency"]
    return (f"cost so far: {c['total_cost']:,.2f} {cur} (capacity {c['capacity_cost']:,.2f}, "
            f"energy {c['energy_cost']:,.2f} for {c['energy_kwh']:.3f} kWh) over "
            f"{c['gpu_hours']:.3f} GPU-hours; in the cloud: {c['cloud_equivalent']:,.2f} {cur}")


def usage_table(u: dict[str, Any]) -> Table:
    """Per GPU and in total: what the job did with the GPUs it held, and how much of the time
    samples cover (a gap is unknown, not idle)."""
    energy = "-" if u["energy_kwh"] is None else f"{u['energy_kwh']:.3f}"
    table = Table(title=f"usage: {u['gpu_hours']:.3g} GPU-hours, {energy} kWh; samples cover "
                  f"{percent(u['coverage'])}", box=None, title_justify="left")
    for col in ("RANK", "NODE", "GPU", "UTIL", "PEAK MEM GiB", "POWER", "ENERGY kWh", "COVERAGE"):
        table.add_column(col, justify="right" if col not in ("NODE",) else "left")

    def row(first: str, node: str, gpu: str, f: dict[str, Any]) -> list[str]:
        kwh = "-" if f["energy_kwh"] is None else f"{f['energy_kwh']:.4f}"
        return [first, node, gpu, percent(f["avg_utilization"]), gib(f["peak_memory_bytes"]),
                watts(f["avg_power_watts"]), kwh, percent(f["coverage"])]

    for g in u["gpus"]:
        table.add_row(*row(str(g["rank"]), g["node"], str(g["gpu_index"]), g))
    table.add_row(*row("all", "", "", u), style="bold")
    return table


@handles_errors
def logs(
    job: Annotated[str, typer.Argument(help="Job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    rank: Annotated[int, typer.Option(help="Which node's output, for multi-node jobs.")] = 0,
    attempt: Annotated[int | None, typer.Option(
        help="An earlier attempt's output (after a preemption or a requeue).")] = None,
) -> None:
    """A job's output (stdout and stderr together), kept by the controller. With --follow,
    it goes on into the next attempt when the job is preempted or requeued, marking where
    each attempt starts."""
    job_id = parsing.parse_job_id(job)
    follow_log(client(), job_id, rank, attempt, follow)


def follow_log(c: Client, job_id: int, rank: int = 0, attempt: int | None = None,
               follow: bool = True, start: int = 0) -> str:
    """Write a job's output to stdout from byte ``start`` (with ``follow``, until it ends,
    across attempts); the state it was last seen in."""
    out = sys.stdout.buffer
    data, offset, state, latest = c.log_chunk(job_id, start, rank, attempt)
    current = attempt or latest
    while True:
        if data:
            out.write(data)
            out.flush()
        elif not follow:
            return state
        elif current < latest:  # preempted or requeued: the next attempt's log
            current, offset = current + 1, 0
            out.write(f"--- clusterctl: attempt {current} of job {job_id} ---\n".encode())
            out.flush()
        elif JobState(state) in ENDED:
            # the last lines may land between our read and the state change
            out.write(c.log_chunk(job_id, offset, rank, current)[0])
            out.flush()
            return state
        else:
            time.sleep(0.5)
        data, offset, state, latest = c.log_chunk(job_id, offset, rank, current)
