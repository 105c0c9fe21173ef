"""Node commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clusterctl.cli.common import client, console, handles_errors, print_json

app = typer.Typer(help="Nodes and their GPUs.", invoke_without_command=True)


@app.callback()
@handles_errors
def nodes(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per node: GPUs, model, and which job holds each GPU."""
    if ctx.invoked_subcommand is not None:
        return
    rows = client().nodes()
    if json_:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NODE", "GPUS", "FREE", "MODEL", "ADDRESS", "GPU USE"):
        table.add_column(col)
    for n in rows:
        use = " ".join(
            f"{g['index']}:{'job ' + str(g['job_id']) if g['job_id'] else 'free'}"
            for g in n["gpu_jobs"]
        )
        table.add_row(n["name"], str(n["gpus"]), str(n["free_gpus"]), n["gpu_model"] or "-",
                      n["address"], use or "-")
    console.print(table)
