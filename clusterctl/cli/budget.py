"""``clusterctl budget``: what each team may spend per month or quarter, and where it stands."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from clusterctl import parsing
from clusterctl.cli.common import client, console, handles_errors, print_json
from clusterctl.cost.budget import parse_amount, parse_budget_period

app = typer.Typer(help="Team budgets: spent, forecast, and holding jobs when over.",
                  no_args_is_help=True)
STATE_STYLE = {"ok": "green", "warning": "yellow", "over": "bold red"}


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("TEAM", "PERIOD", "BUDGET", "SPENT", "FORECAST", "STATE", "ENFORCED"):
        table.add_column(col, justify="right" if col in ("BUDGET", "SPENT", "FORECAST")
                         else "left")
    for b in rows:
        table.add_row(b["team"], b["period"], f"${b['amount']:,.2f}", f"${b['spent']:,.2f}",
                      f"${b['forecast']:,.2f}",
                      f"[{STATE_STYLE.get(b['state'], '')}]{b['state']}[/]",
                      "yes" if b["enforce"] else "no")
    return table


@app.command("set")
@handles_errors
def set_(
    team: Annotated[str, typer.Argument(help="The team.")],
    amount: Annotated[str, typer.Argument(help="Dollars per period: 10000 or $12,500.")],
    per: Annotated[str, typer.Option(help="month or quarter (calendar, UTC).")] = "month",
    enforce: Annotated[bool, typer.Option(
        "--enforce", help="Over it, the team's new jobs wait (running ones finish).")] = False,
    loaded: Annotated[bool, typer.Option(
        "--loaded", help="Count the team's share of idle capacity too.")] = False,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set a team's budget (admins); raising it releases the jobs it held."""
    name = parsing.parse_name(team, "TEAM")
    body = {"amount": parse_amount(amount), "per": parse_budget_period(per), "enforce": enforce,
            "loaded": loaded}
    out = client().json("PUT", f"/v1/budgets/{name}", json=body)
    if json_:
        print_json(out)
    else:
        console.print(_table([out]))


@app.command("list")
@handles_errors
def list_(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every budget you may see (admins: all; others: their teams'), with spent and forecast."""
    rows = client().json("GET", "/v1/budgets")
    if json_:
        print_json(rows)
    elif rows:
        console.print(_table(rows))
    else:
        console.print("no budgets")


@app.command("remove")
@handles_errors
def remove(team: Annotated[str, typer.Argument(help="The team.")],
           json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """No budget for TEAM any more (its held jobs may start)."""
    out = client().json("DELETE", f"/v1/budgets/{parsing.parse_name(team, 'TEAM')}")
    if json_:
        print_json(out)
    else:
        print(f"{out['team']}: no budget")
