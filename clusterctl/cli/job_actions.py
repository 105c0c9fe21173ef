"""What one does to jobs once queued: cancel, hold, release, update, wait."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from clusterctl import parsing
from clusterctl.cli.client import ApiError
from clusterctl.cli.common import (
    client,
    err_console,
    fail,
    handles_errors,
    print_json,
)
from clusterctl.gpu_types import parse_gpu_ask
from clusterctl.parsing import BadInput, format_duration
from clusterctl.states import ENDED, JobState


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
