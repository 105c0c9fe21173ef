"""Job commands: submit, jobs, show, logs, cancel, wait."""

from __future__ import annotations

import inspect
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clusterctl import batch_script, parsing
from clusterctl import settings as settings_mod
from clusterctl.cli import packages
from clusterctl.cli.common import (
    client,
    console,
    err_console,
    fail,
    gib,
    handles_errors,
    local_time,
    percent,
    print_json,
    seconds_between,
    watts,
)
from clusterctl.client import ApiError, Client
from clusterctl.gpu_types import describe_ask, parse_gpu_ask
from clusterctl.notifications import parse_webhook
from clusterctl.parsing import BadInput, format_duration
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


@handles_errors
def submit(
    ctx: typer.Context,
    command: Annotated[list[str] | None, typer.Argument(
        help="The command, after '--'; or a script (its #CLUSTERCTL lines give flags).")] = None,
    gpus: Annotated[str, typer.Option(
        help="GPUs per node: 2, or H100:2 for two of that type.")] = "1",
    gpu_type: Annotated[str | None, typer.Option(
        help="Any of these GPU types, in order of preference: A100,H100.")] = None,
    gpu_mem: Annotated[str | None, typer.Option(
        help="At least this much memory per GPU: 40G.")] = None,
    nodes: Annotated[str, typer.Option(help="Nodes (torchrun-style variables are set).")] = "1",
    name: Annotated[str | None, typer.Option(help="Job name.")] = None,
    team: Annotated[str | None, typer.Option(help="Team (default: yours).")] = None,
    priority: Annotated[str, typer.Option(help="Integer, higher runs first.")] = "0",
    time_limit: Annotated[str | None, typer.Option(help="90m, 2h, 1d or 1:30:00.")] = None,
    retries: Annotated[str, typer.Option(help="Requeues if the job's node is lost.")] = "0",
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    workdir_: Annotated[
        str | None,
        typer.Option("--workdir", help="Run in place in this directory (shared filesystem) "
                     "instead of shipping the current directory."),
    ] = None,
    no_preempt: Annotated[
        bool, typer.Option("--no-preempt", help="Never preempt it (it then runs only within "
                           "its team's quota, never on borrowed GPUs).")] = False,
    after: Annotated[
        list[str] | None,
        typer.Option(help="JOB or JOB:ok: start after JOB ends (with :ok, only if it "
                     "succeeded; else this job is cancelled). Repeatable.")] = None,
    array: Annotated[
        str | None,
        typer.Option(help="0-31%4: one job per index (CLUSTERCTL_ARRAY_INDEX), at most 4 "
                     "running at once.")] = None,
    notify: Annotated[str | None, typer.Option(
        help="A webhook URL (Slack, Mattermost, Discord-style) told when the job ends.")] = None,
    idle_timeout: Annotated[str | None, typer.Option(
        help="End the job once all its GPUs stay idle this long: 30m.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the new job as JSON.")] = False,
) -> None:
    """Queue a job; prints its id once it is stored (one id per line for an array).

    A script's leading comment lines may give flags, as sbatch's #SBATCH lines do:
    '#CLUSTERCTL --gpus 2 --time-limit 2h'. Flags on the command line win."""
    p = _with_directives(ctx, command)
    job = _submit(p)
    if p["json_"]:
        print_json(job)
    else:
        print("\n".join(str(i) for i in job.get("array_job_ids") or [job["id"]]))


def _with_directives(ctx: typer.Context, command: list[str] | None) -> dict[str, Any]:
    """The command's flags, with those a script's #CLUSTERCTL lines give."""
    p = dict(ctx.params)
    script = batch_script.read_head(command[0]) if command else None
    if command and script is not None:
        p.update(_directive_flags(ctx, command[0], batch_script.directives(script[0])))
        p["command"] = batch_script.command_for(command, *script)
    return p


def _directive_flags(ctx: typer.Context, script: str, tokens: list[str]) -> dict[str, Any]:
    """The flags a script's directives give that the command line does not."""
    if not tokens:
        return {}
    try:
        parsed = ctx.command.make_context(ctx.info_name or "submit", list(tokens),
                                          parent=ctx.parent)
    except typer.exceptions.TyperException as e:  # typer's own click's usage errors
        why = e.format_message() if hasattr(e, "format_message") else str(e)
        raise BadInput(batch_script.FIELD, f"{script}: {why}") from None
    if parsed.params.get("command"):
        raise BadInput(batch_script.FIELD, f"{script}: gives flags only (the command is the "
                       f"script), not {' '.join(parsed.params['command'])!r}")
    def given(c: Any, name: str) -> bool:
        source = c.get_parameter_source(name)  # typer's vendored click's enum: by name
        return source is not None and source.name == "COMMANDLINE"

    return {name: value for name, value in parsed.params.items()
            if given(parsed, name) and not given(ctx, name)}


def _submit(p: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        **(extra or {}),
        "command": parsing.parse_command(p["command"] or []),
        "nodes": parsing.parse_nodes(p["nodes"]),
        "priority": parsing.parse_priority(p["priority"]),
        "retries": parsing.parse_retries(p["retries"]),
        "env": parsing.parse_env(p["env"] or []),
    }
    gpu_mem = p["gpu_mem"]
    count, types, mem = parse_gpu_ask(p["gpus"], p["gpu_type"], gpu_mem,
                                      parsing.MAX_GPUS_PER_NODE)
    body["gpus"] = count
    if types:
        body["gpu_type"] = types
    if mem is not None:
        body["gpu_mem"] = gpu_mem
    if p["time_limit"] is not None:
        body["time_limit"] = parsing.parse_duration(p["time_limit"])
    if p["name"] is not None:
        body["name"] = parsing.parse_name(p["name"], "--name")
    if p["team"] is not None:
        body["team"] = parsing.parse_name(p["team"], "--team")
    if p["no_preempt"]:
        body["no_preempt"] = True
    if p["after"]:
        parsing.parse_after(p["after"])
        body["after"] = list(p["after"])
    if p["array"] is not None:
        parsing.parse_array(p["array"])
        body["array"] = p["array"]
    if p["notify"] is not None:
        body["notify"] = parse_webhook(p["notify"], "--notify")
    if p["idle_timeout"] is not None:
        body["idle_timeout"] = parsing.parse_duration(p["idle_timeout"], "--idle-timeout")
    settings = settings_mod.load()
    c = client()
    if p["workdir_"] is not None:
        path = Path(p["workdir_"]).expanduser()
        if not path.is_absolute():
            path = path.resolve()
        body["workdir"] = str(path)
    else:
        return packages.submit(c, body, Path.cwd(), int(settings.max_package_mb * (1 << 20)))
    return c.submit(body)


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
    rows, total = client().jobs_page(all=all_, user=user, state=state, team=team, name=name,
                                     since=after, limit=count)
    if json_:
        print_json(rows)
    else:
        console.print(jobs_table(rows))
    if total > len(rows):
        err_console.print(f"{len(rows)} of {total} jobs shown (the newest); "
                          f"--limit {total} shows them all, or narrow with --state, --user, "
                          "--team, --name or --since")


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


@handles_errors
def cancel(
    jobs_: Annotated[list[str] | None, typer.Argument(
        metavar="JOB...", help="Job ids and ranges: 12 14 20-25.")] = None,
    array: Annotated[str | None, typer.Option(
        help="Every task of this array (its id: the first task's job id).")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cancel jobs: queued ones at once, running ones by SIGTERM, then SIGKILL after a grace."""
    if not jobs_ and array is None:
        raise parsing.BadInput("JOB", "give job ids, ranges (12-20) or --array ID")
    ids = parsing.parse_job_ids(jobs_) if jobs_ else []
    c = client()
    if array is not None:
        array_id = parsing.parse_job_id(array)
        tasks = c.jobs(array=array_id, limit=100_000)
        if not tasks:
            raise ApiError(f"--array: no live task of array {array_id}")
        ids += [t["id"] for t in tasks if t["id"] not in ids]
    _each(ids, c.cancel, json_,
          lambda r: "cancelled" if r["outcome"] == "cancelled" else "stopping")


def _each(ids: list[int], act: Callable[[int], dict[str, Any]], json_: bool,
          say: Callable[[dict[str, Any]], str]) -> None:
    """Do ``act`` to each job: one line each (or the answers as JSON, an error as
    ``{"id", "error"}``); exit 1 if any failed, once all were tried."""
    done: list[dict[str, Any]] = []
    failed = False
    for job_id in ids:
        try:
            r = act(job_id)
        except ApiError as e:
            if e.exit_code == 2:
                raise
            print(f"{job_id}: {e}", file=sys.stderr)
            done.append({"id": job_id, "error": str(e)})
            failed = True
            continue
        done.append(r)
        if not json_:
            print(f"{job_id}: {say(r)}")
    if json_:
        print_json(done)
    if failed:
        raise typer.Exit(1)


IDS = typer.Argument(metavar="JOB...", help="Job ids and ranges: 12 14 20-25.")


@handles_errors
def hold(jobs_: Annotated[list[str], IDS],
         json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keep pending jobs from starting until released (their place in the queue is kept)."""
    _post_each(jobs_, "hold", "held", json_)


@handles_errors
def release(jobs_: Annotated[list[str], IDS],
            json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Let held jobs start again."""
    _post_each(jobs_, "release", "released", json_)


def _post_each(jobs_: list[str], action: str, said: str, json_: bool) -> None:
    c = client()
    _each(parsing.parse_job_ids(jobs_), lambda i: c.json("POST", f"/v1/jobs/{i}/{action}"),
          json_, lambda _: said)


@handles_errors
def update(
    jobs_: Annotated[list[str], IDS],
    priority: Annotated[str | None, typer.Option(help="Integer, higher runs first.")] = None,
    time_limit: Annotated[str | None, typer.Option(
        help="90m, 2h, 1:30:00, or none.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPUs per node: 2, or H100:2.")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change pending jobs: yours within the limits a submit has (admins: any job)."""
    body: dict[str, Any] = {}
    if priority is not None:
        body["priority"] = parsing.parse_priority(priority)
    if time_limit is not None:
        body["time_limit"] = ("none" if time_limit.strip().lower() == "none"
                              else parsing.parse_duration(time_limit))
    if gpus is not None:
        parse_gpu_ask(gpus, None, None, parsing.MAX_GPUS_PER_NODE)
        body["gpus"] = gpus
    if not body:
        raise BadInput("update", "give --priority, --time-limit or --gpus")
    c = client()
    _each(parsing.parse_job_ids(jobs_),
          lambda i: c.json("PATCH", f"/v1/jobs/{i}", json=body), json_, lambda _: "updated")


@handles_errors
def wait(
    job: Annotated[str, typer.Argument(help="Job id.")],
    timeout: Annotated[str | None, typer.Option(
        help="Give up after this long (90s, 2h): exit 3.")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Wait for a job to end. Exit 0 if it SUCCEEDED, 1 if it ended otherwise, 3 if the
    time ran out (a controller that does not answer is retried until then)."""
    job_id = parsing.parse_job_id(job)
    limit = parsing.parse_duration(timeout, "--timeout") if timeout is not None else None
    c = client()
    c.wait_for_s = 0  # this loop retries, within --timeout
    deadline = None if limit is None else time.monotonic() + limit
    pause, said = 1.0, False
    while True:
        try:
            j = c.job(job_id)
        except ApiError as e:
            if e.status == 404:
                raise parsing.BadInput("JOB", str(e)) from None
            if not (e.unreachable or e.status == 503):
                raise
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise fail(f"timed out after {format_duration(limit)}: {e}", 3) from None
            if not said:
                err_console.print(f"{e}; trying again until "
                                  + ("the job ends" if deadline is None else "--timeout"),
                                  markup=False, soft_wrap=True)
                said = True
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 10.0)
            continue
        pause = 1.0
        if JobState(j["state"]) in ENDED:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise fail(f"timed out after {format_duration(limit)}: job {job_id} is still "
                       f"{j['state']}", 3)
        time.sleep(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
    if json_:
        print_json(j)
    else:
        extra = f" ({j['reason']})" if j["reason"] else ""
        print(f"{job_id}: {j['state']}{extra}")
    raise typer.Exit(0 if j["state"] == "SUCCEEDED" else 1)


def run(ctx: typer.Context, **params: Any) -> None:
    """Run a command through the queue and stay with it, as srun does: says why it waits,
    then connects your terminal to it: stdin, and its output (stdout and stderr together),
    through the controller. Exits with the command's exit code (1 if it ended otherwise).
    Ctrl-C cancels the job; with --pty, Ctrl-C and every other key go to the job, whose
    terminal is a real one (window size, bash, python, htop), and closing your terminal ends
    it. A dropped connection leaves the job running a while: `clusterctl attach JOB`.
    Takes submit's flags."""
    pty, ports = bool(params.pop("pty", False)), list(params.pop("port", None) or [])
    if params.get("array") is not None:
        raise BadInput("--array", "run follows one job; submit an array with `submit`")
    p = _with_directives(ctx, params.get("command"))
    p.pop("pty", None)
    p.pop("port", None)
    env = list(p.get("env") or [])
    if pty and not any(e.startswith("TERM=") for e in env):
        env.append(f"TERM={os.environ.get('TERM') or 'xterm-256color'}")
    p["env"] = env
    job = _submit(p, {"interactive": True, "pty": pty, "ports": parsing.parse_ports(ports)})
    job_id = int(job["id"])
    _stay_with(client(), job_id, pty, 0, p["json_"])


def _with_params(sig: inspect.Signature, **extra: tuple[Any, Any]) -> inspect.Signature:
    """``sig`` with more options (name: (type, typer.Option)), each defaulting to None/False:
    ``run`` takes submit's flags and its own."""
    added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                               annotation=Annotated[kind, option],
                               default=False if kind is bool else None)
             for name, (kind, option) in extra.items()]
    return sig.replace(parameters=[*sig.parameters.values(), *added])


def _stay_with(c: Client, job_id: int, pty: bool, offset: int | None, json_: bool) -> None:
    """Wait for the job, be its terminal until it ends, and exit as it did."""
    from clusterctl.cli.terminal import Ended, Session  # websockets: for run and attach only

    interrupted = False
    ended = Ended()
    shown = 0
    try:
        try:
            j = _until_started(c, job_id)
            if JobState(j["state"]) in ENDED:
                ended = Ended(state=j["state"])
            else:
                _say_ports(c, j)
                session = Session(c, job_id, pty)
                ended = session.run(offset)
                shown = session.received
            if ended.state is not None and offset is not None:
                # It ended before its terminal could show all it printed: the rest is in
                # its log (which holds everything once the job has ended).
                sys.stdout.flush()
                follow_log(c, job_id, follow=False, start=offset + shown)
        except KeyboardInterrupt:
            interrupted = True
            err_console.print(f"cancelling job {job_id} (Ctrl-C again leaves now)",
                              markup=False)
            c.cancel(job_id)
            _until_ended(c, job_id, 120)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if ended.lost is not None:
        if ended.lost == "terminal closed":
            raise typer.Exit(129)
        err_console.print(f"lost the connection to job {job_id} ({ended.lost}); it keeps "
                          f"running for a while: clusterctl attach {job_id}", markup=False)
        raise typer.Exit(3)
    j = _until_ended(c, job_id, 30)
    if json_:
        print_json(j)
    if j["state"] not in {s.value for s in ENDED} and ended.exit_code is not None:
        raise typer.Exit(ended.exit_code if 0 <= ended.exit_code < 256 else 1)
    if j["state"] == "SUCCEEDED":
        raise typer.Exit(0)
    if interrupted and j["state"] == "CANCELLED":
        raise typer.Exit(130)  # as a shell reports a command ended by SIGINT
    err_console.print(f"job {job_id}: {j['state']}"
                      + (f" ({j['reason']})" if j.get("reason") else ""), markup=False)
    code = j.get("exit_code")
    raise typer.Exit(code if j["state"] == "FAILED" and isinstance(code, int)
                     and 0 < code < 256 else 1)


def _until_ended(c: Client, job_id: int, timeout_s: float) -> dict[str, Any]:
    """The job once it has ended (the controller records the end at its next pass), or as it
    is when ``timeout_s`` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        j = c.job(job_id)
        if JobState(j["state"]) in ENDED or time.monotonic() > deadline:
            return j
        time.sleep(0.3)


def _say_ports(c: Client, j: dict[str, Any]) -> None:
    job_id = j["id"]
    ports = (j.get("interactive") or {}).get("ports") or []
    if not ports:
        return
    address = {n["name"]: n.get("address") for n in c.nodes()}
    where = (j.get("node_names") or ["?"])[0]
    host = address.get(where) or where
    for port in ports:
        err_console.print(f"job {job_id} serves port {port} at {host}:{port} (node {where}); "
                          f"from your machine: clusterctl port-forward {job_id} {port}",
                          markup=False, soft_wrap=True)


run.__signature__ = _with_params(  # type: ignore[attr-defined]
    inspect.signature(submit, eval_str=True),
    pty=(bool, typer.Option("--pty", help="A real terminal: window size, Ctrl-C and "
                            "full-screen programs (bash, python, htop).")),
    port=(list[str] | None, typer.Option(help="A TCP port the job serves (a notebook): "
                                         "says where, for port-forward. Repeatable.")),
)
run = handles_errors(run)


@handles_errors
def attach(job: Annotated[str, typer.Argument(metavar="JOB")]) -> None:
    """Come back to an interactive job (one started with `run`) after a dropped connection,
    or from another terminal (the earlier one is let go). Shows the last of its output, then
    behaves as `run` does until the job ends."""
    job_id = parsing.parse_job_id(job)
    c = client()
    j = c.job(job_id)
    if j.get("interactive") is None:
        raise BadInput("JOB", f"job {job_id} is a batch job, with no terminal to attach to; "
                       f"its output: clusterctl logs -f {job_id}")
    _stay_with(c, job_id, bool(j["interactive"].get("pty")), None, False)


@handles_errors
def port_forward(
    job: Annotated[str, typer.Argument(metavar="JOB")],
    port: Annotated[str, typer.Argument(metavar="PORT", help="The job's port (run --port).")],
    local_port: Annotated[str | None, typer.Option(
        help="The port on this machine (default: the same).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Say where it listens as JSON.")] = False,
) -> None:
    """Bring a port an interactive job serves (`run --port 8888`, a notebook) to this
    machine's 127.0.0.1, through the controller, until Ctrl-C."""
    from clusterctl.cli.terminal import forward  # websockets: for this command only

    job_id = parsing.parse_job_id(job)
    remote = parsing.parse_ports([port])[0]
    local = parsing.parse_ports([local_port])[0] if local_port is not None else remote
    c = client()
    j = c.job(job_id)
    served = (j.get("interactive") or {}).get("ports") or []
    if remote not in served:
        raise BadInput("PORT", f"job {job_id} serves "
                       + (", ".join(map(str, served)) or "no port (run --port PORT)")
                       + f", not {remote}")
    try:
        listener = socket.create_server(("127.0.0.1", local))
    except OSError as e:
        raise BadInput("--local-port", f"cannot listen on 127.0.0.1:{local}: "
                       f"{e.strerror or e}") from None
    if json_:
        print(json.dumps({"job": job_id, "port": remote, "local": f"127.0.0.1:{local}"}),
              flush=True)
    else:
        print(f"forwarding 127.0.0.1:{local} -> job {job_id} port {remote} (Ctrl-C stops)",
              flush=True)
    try:
        forward(c, job_id, remote, listener, say=lambda text: err_console.print(
            text, markup=False))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    finally:
        listener.close()


def _until_started(c: Client, job_id: int) -> dict[str, Any]:
    """Wait while the job is pending, saying why on stderr each time the reason changes; the
    job as it then is."""
    said = None
    while True:
        j = c.job(job_id)
        if j["state"] not in ("PENDING", "STARTING"):
            return j
        why = why_waiting(j)
        if why != "-" and why != said:
            err_console.print(f"job {job_id} waits: {why}", markup=False, soft_wrap=True)
            said = why
        time.sleep(0.5)
