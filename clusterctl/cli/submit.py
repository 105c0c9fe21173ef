"""submit: flags and #CLUSTERCTL directives to one job request, its working directory
shipped as a package (cli/packages.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clusterctl import job_words, parsing
from clusterctl.cli import batch_script, packages
from clusterctl.cli.common import (
    client,
    handles_errors,
    print_json,
)
from clusterctl.client_settings import load_client
from clusterctl.parsing import BadInput


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
    p = with_directives(ctx, command)
    job = submit_job(p)
    if p["json_"]:
        print_json(job)
    else:
        print("\n".join(str(i) for i in job.get("array_job_ids") or [job["id"]]))


def with_directives(ctx: typer.Context, command: list[str] | None) -> dict[str, Any]:
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


def submit_job(p: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job the flags ``p`` (and ``extra``: run's interactive ones) ask for, parsed into a
    job request's typed values here (``job_words``: a bad flag is exit 2 before anything is
    sent), its directory shipped unless ``--workdir`` names one on the nodes; the answer."""
    workdir = p["workdir_"]
    if workdir is not None:
        path = Path(workdir).expanduser()
        workdir = str(path if path.is_absolute() else path.resolve())
    body = job_words.wire({
        **(extra or {}),
        "command": list(p["command"] or []), "gpus": p["gpus"], "gpu_type": p["gpu_type"],
        "gpu_mem": p["gpu_mem"], "nodes": p["nodes"], "priority": p["priority"],
        "retries": p["retries"], "env": parsing.parse_env(p["env"] or []),
        "time_limit": p["time_limit"], "name": p["name"], "team": p["team"],
        "no_preempt": p["no_preempt"], "after": list(p["after"] or []), "array": p["array"],
        "notify": p["notify"], "idle_timeout": p["idle_timeout"], "workdir": workdir})
    c = client()
    if workdir is None:
        return packages.submit(c, body, Path.cwd(), int(load_client().max_package_mb * (1 << 20)))
    return c.submit(body)
