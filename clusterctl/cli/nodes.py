"""Node commands: ``nodes`` (one table of every GPU) and ``top`` (the same, live)."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from clusterctl import parsing
from clusterctl.cli.common import (
    client,
    console,
    gib,
    handles_errors,
    percent,
    print_json,
    seconds_between,
    watts,
)
from clusterctl.cli.jobs import gpus_asked, jobs_table
from clusterctl.controller.host_memory import PRESSURE
from clusterctl.parsing import format_duration

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
        read = {g.get("model") for g in n["gpu_jobs"]}
        if len(read) > 1 and None not in read:  # a machine of several models: per GPU
            for g in n["gpu_jobs"]:
                tally = models.setdefault(g["model"], [0, 0])
                tally[0] += 1
                tally[1] += g.get("job_id") is None
        elif n["gpus"]:
            tally = models.setdefault(_model(n), [0, 0])
            tally[0] += n["gpus"]
            tally[1] += 0 if n.get("drained") else n["free_gpus"]
    if len(models) < 2:
        return ""
    return ": " + ", ".join(f"{t} {m} ({f} free)" for m, (t, f) in sorted(models.items()))


def title(rows: list[dict[str, Any]]) -> str:
    """``3 node(s), 24 GPU(s), 10 free, 8 drained``: a drained node's idle GPUs are not free
    (nothing new starts there), so they are counted apart."""
    total = sum(n["gpus"] for n in rows)
    free = sum(n["free_gpus"] for n in rows if not n.get("drained"))
    drained = sum(n["gpus"] for n in rows if n.get("drained"))
    return (f"{len(rows)} node(s), {total} GPU(s), {free} free"
            + (f", {drained} drained" if drained else "") + _by_model(rows))


def _pressure(node: dict[str, Any]) -> str:
    """`` (memory 96% used)`` once a node nears where Ray's memory monitor kills workers."""
    used = node.get("memory_used")
    return f" [red](memory {used:.0%} used)[/]" if used is not None and used >= PRESSURE else ""


def gpu_table(rows: list[dict[str, Any]], now: datetime | None = None) -> Table:
    now = now or datetime.now(timezone.utc)
    table = Table(box=None, pad_edge=False, title=title(rows), title_justify="left")
    for col in ("NODE", "GPU", "MODEL", "JOB", "USER", "UTIL", "MEM GiB", "POWER", "TEMP",
                "SEEN"):
        table.add_column(col, justify="right" if col in ("GPU", "UTIL", "MEM GiB", "POWER",
                                                         "TEMP") else "left")
    for n in rows:
        name = n["name"] + ("" if n["alive"] else " (down)") + (
            " [yellow](drained)[/]" if n.get("drained") else "") + (
            " [yellow](not answering)[/]" if n.get("suspect") else "") + _pressure(n)
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


SPARKS = "▁▂▃▄▅▆▇█"
HISTORY = 30
"""Reads of each GPU kept for its sparkline (a minute at the default refresh)."""


def bar(fraction: float | None, width: int = 10) -> str:
    """``█████░░░░░``: a share drawn in text, as nvitop and htop draw them."""
    if fraction is None:
        return " " * width
    full = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * full + "░" * (width - full)


def sparkline(values: list[float]) -> str:
    return "".join(SPARKS[min(len(SPARKS) - 1, int(max(0.0, min(1.0, v)) * len(SPARKS)))]
                   for v in values)


def cost_per_hour(job: dict[str, Any], nodes: list[dict[str, Any]]) -> float | None:
    """What a running job's GPUs cost an hour (capacity, by the inventory; None: unpriced)."""
    rates = {n["name"]: n.get("gpu_hour_cost") for n in nodes}
    held = [rates.get(name) for name in job.get("node_names") or []]
    if not held or any(r is None for r in held):
        return None
    return sum(job["gpus"] * r for r in held if r is not None)


class TopView:
    """One frame of ``top``: GPUs with bars and a short history, the running jobs with their
    cost per hour, and the queue with why each job waits."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}

    def remember(self, nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            for g in n["gpu_jobs"]:
                if g.get("uuid") and g.get("utilization") is not None:
                    seen = self.history.setdefault(g["uuid"], [])
                    seen.append(g["utilization"])
                    del seen[:-HISTORY]

    def gpus(self, nodes: list[dict[str, Any]], now: datetime) -> Table:
        table = Table(box=None, pad_edge=False, title_justify="left", title=title(nodes))
        for col in ("NODE", "GPU", "JOB", "UTIL", "", "HISTORY", "MEM", "GiB", "POWER", "TEMP"):
            table.add_column(col, justify="right" if col in ("GPU", "POWER", "TEMP") else "left")
        for n in nodes:
            name = n["name"] + ("" if n["alive"] else " (down)") + (
                " (drained)" if n.get("drained") else "") + _pressure(n)
            for g in n["gpu_jobs"]:
                seen = _age(g.get("sampled_at"), now)
                live = seen is not None and seen < STALE_S and not g.get("error")
                util = g["utilization"] if live else None
                mem = (g["memory_used_bytes"] / g["memory_total_bytes"]
                       if live and g["memory_used_bytes"] is not None
                       and g["memory_total_bytes"] else None)
                table.add_row(
                    name, str(g["index"]), str(g["job_id"] or "-"), bar(util),
                    percent(util) if util is not None else (g.get("error") or "no data"),
                    sparkline(self.history.get(g.get("uuid") or "", [])), bar(mem),
                    _memory(g) if live else "-", watts(g["power_watts"]) if live else "-",
                    f"{g['temperature_celsius']:.0f}C"
                    if live and g["temperature_celsius"] is not None else "-")
                name = ""
        return table

    @staticmethod
    def running(jobs: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> Table:
        table = Table(box=None, pad_edge=False, title="running", title_justify="left")
        for col in ("ID", "NAME", "USER", "TEAM", "GPUS", "NODES", "RAN", "COST/H"):
            table.add_column(col, justify="right" if col in ("ID", "GPUS", "COST/H") else "left")
        for j in jobs:
            rate = cost_per_hour(j, nodes)
            table.add_row(str(j["id"]), _job_name(j), j["user"], j["team"], gpus_asked(j),
                          ",".join(j["node_names"]),
                          format_duration(seconds_between(j["started_at"], None)),
                          "-" if rate is None else f"${rate:,.2f}")
        return table

    def frame(self, nodes: list[dict[str, Any]], jobs: list[dict[str, Any]],
              now: datetime | None = None) -> Group:
        now = now or datetime.now(timezone.utc)
        self.remember(nodes)
        running = [j for j in jobs if j["state"] in ("RUNNING", "STARTING")]
        queued = [j for j in jobs if j["state"] == "PENDING"]
        parts: list[Any] = [self.gpus(nodes, now), ""]
        parts.append(self.running(running, nodes) if running else "no job running")
        parts += ["", jobs_table(queued, title="queue") if queued else "nothing queued"]
        return Group(*parts)


def _job_name(j: dict[str, Any]) -> str:
    return j.get("name") or "-"


@handles_errors
def top(
    interval: Annotated[str, typer.Option(help="Time between refreshes.")] = "2s",
    iterations: Annotated[int, typer.Option(
        help="Stop after this many refreshes (0: until q or Ctrl-C).")] = 0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="With --once: the frame's data.")]
        = False,
) -> None:
    """A live view, as nvitop's: each GPU's utilization and memory with a short history, the
    running jobs with their cost per hour, and the queue with why each job waits. q quits."""
    every = parsing.parse_duration(interval, "--interval")
    if iterations < 0:
        raise parsing.BadInput("--iterations", "must be 0 or more")
    if json_ and not once:
        raise parsing.BadInput("--json", "goes with --once (one frame)")
    c = client()
    view = TopView()

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return c.nodes(), c.jobs(state="RUNNING,STARTING,PENDING")

    if once:
        nodes, jobs = read()
        if json_:
            print_json({"nodes": nodes, "jobs": jobs,
                        "cost_per_hour": {j["id"]: cost_per_hour(j, nodes) for j in jobs
                                          if j["state"] == "RUNNING"}})
        else:
            console.print(view.frame(nodes, jobs))
        return
    done = 0
    with _keys() as pressed, Live(view.frame(*read()), console=console, auto_refresh=False,
                                  screen=False) as live:
        try:
            while True:
                done += 1
                if iterations and done >= iterations:
                    break
                if pressed(every) == "q":
                    break
                live.update(view.frame(*read()), refresh=True)
        except KeyboardInterrupt:
            pass


@contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A wait that a key press ends: the key (None when the time ran out). On a terminal,
    stdin is read a key at a time while ``top`` runs (and restored after); elsewhere it only
    waits."""
    if not sys.stdin.isatty():
        yield lambda seconds: time.sleep(seconds)  # type: ignore[func-returns-value]
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(seconds: float) -> str | None:
        ready, _, _ = select.select([sys.stdin], [], [], seconds)
        return os.read(fd, 1).decode(errors="replace").lower() if ready else None

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
