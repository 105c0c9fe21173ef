"""Node commands: ``nodes`` (one table of every GPU) and ``top`` (the same, live)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from clusterctl import parsing
from clusterctl.cli.common import client, console, gib, handles_errors, percent, print_json, watts
from clusterctl.cli.jobs import jobs_table

app = typer.Typer(help="Nodes and their GPUs.", invoke_without_command=True)

STALE_S = 60.0
"""A GPU whose last sample is older than this shows its age instead of figures."""


@app.callback()
@handles_errors
def nodes(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per node and GPU: model, the job holding it, and live utilization, memory, power."""
    if ctx.invoked_subcommand is not None:
        return
    rows = client().nodes()
    if json_:
        print_json(rows)
        return
    console.print(gpu_table(rows))


def _model(node: dict[str, Any]) -> str:
    """A node's GPU model as its agent reads it, else as Ray labels it."""
    read = [g.get("model") for g in node["gpu_jobs"] if g.get("model")]
    return read[0] if read else node["gpu_model"] or "unknown"


def _by_model(rows: list[dict[str, Any]]) -> str:
    """``: 4 A100-80GB (2 free), 4 RTX-4090 (1 free)`` on a fleet of several models."""
    models: dict[str, list[int]] = {}
    for n in rows:
        if n["gpus"]:
            tally = models.setdefault(_model(n), [0, 0])
            tally[0] += n["gpus"]
            tally[1] += n["free_gpus"]
    if len(models) < 2:
        return ""
    return ": " + ", ".join(f"{t} {m} ({f} free)" for m, (t, f) in sorted(models.items()))


def gpu_table(rows: list[dict[str, Any]], now: datetime | None = None) -> Table:
    now = now or datetime.now(timezone.utc)
    total = sum(n["gpus"] for n in rows)
    free = sum(n["free_gpus"] for n in rows)
    table = Table(box=None, pad_edge=False, title=f"{len(rows)} node(s), {total} GPU(s), "
                  f"{free} free" + _by_model(rows), title_justify="left")
    for col in ("NODE", "GPU", "MODEL", "JOB", "USER", "UTIL", "MEM GiB", "POWER", "TEMP",
                "SEEN"):
        table.add_column(col, justify="right" if col in ("GPU", "UTIL", "MEM GiB", "POWER",
                                                         "TEMP") else "left")
    for n in rows:
        name = n["name"] + ("" if n["alive"] else " (down)") + (
            " [yellow](drained)[/]" if n.get("drained") else "") + (
            " [yellow](not answering)[/]" if n.get("suspect") else "")
        for g in n["gpu_jobs"] or [None]:
            if g is None:
                table.add_row(name, "-", n["gpu_model"] or "-", *["-"] * 7)
                continue
            seen = _age(g.get("sampled_at"), now)
            live = g.get("sampled_at") is not None and seen is not None and seen < STALE_S
            figures = [percent(g["utilization"]), _memory(g), watts(g["power_watts"]),
                       "-" if g["temperature_celsius"] is None
                       else f"{g['temperature_celsius']:.0f}C"] if live else ["-"] * 4
            if g.get("error"):
                figures = [f"[red]{g['error']}[/]", "-", "-", "-"]
            stray = g.get("stray_processes") or 0
            holder = str(g["job_id"]) if g["job_id"] else (
                f"[red]{stray} stray process{'es' if stray > 1 else ''}[/]" if stray and live
                else "-")
            table.add_row(
                name, str(g["index"]), g.get("model") or n["gpu_model"] or "-",
                holder, g["user"] or "-", *figures,
                "no agent" if seen is None else f"{seen:.0f}s ago")
            name = ""
    return table


@app.command()
@handles_errors
def drain(
    node: Annotated[str, typer.Argument(help="Node name, as `clusterctl nodes` shows it.")],
    reason: Annotated[str | None, typer.Option(help="Why (shown in `nodes`).")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """No new jobs land on NODE; the running ones finish (admins only)."""
    r = client().drain(parsing.parse_node_name(node), reason)
    if json_:
        print_json(r)
        return
    running = r["running_jobs"]
    print(f"{r['node']}: drained; " + (
        f"{len(running)} running job(s) will finish there: {', '.join(map(str, running))}"
        if running else "no jobs running there"))


@app.command()
@handles_errors
def undrain(
    node: Annotated[str, typer.Argument(help="Node name.")],
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """NODE takes new jobs again (admins only)."""
    r = client().undrain(parsing.parse_node_name(node))
    if json_:
        print_json(r)
    else:
        print(f"{r['node']}: takes new jobs")


def _memory(g: dict[str, Any]) -> str:
    if g["memory_used_bytes"] is None:
        return "-"
    return f"{gib(g['memory_used_bytes'])}/{gib(g['memory_total_bytes'])}"


def _age(sampled_at: str | None, now: datetime) -> float | None:
    if not sampled_at:
        return None
    return max(0.0, (now - datetime.fromisoformat(sampled_at)).total_seconds())


@handles_errors
def top(
    interval: Annotated[str, typer.Option(help="Time between refreshes.")] = "2s",
    iterations: Annotated[int, typer.Option(
        help="Stop after this many refreshes (0: until Ctrl-C).")] = 0,
) -> None:
    """A live, refreshing view of nodes, GPUs and running jobs."""
    every = parsing.parse_duration(interval, "--interval")
    if iterations < 0:
        raise parsing.BadInput("--iterations", "must be 0 or more")
    c = client()

    def frame() -> Group:
        jobs = c.jobs(state="RUNNING,STARTING,PENDING")
        return Group(gpu_table(c.nodes()), "", jobs_table(jobs) if jobs else "no jobs queued")

    done = 0
    with Live(frame(), console=console, auto_refresh=False, screen=False) as live:
        try:
            while True:
                done += 1
                if iterations and done >= iterations:
                    break
                time.sleep(every)
                live.update(frame(), refresh=True)
        except KeyboardInterrupt:
            pass
