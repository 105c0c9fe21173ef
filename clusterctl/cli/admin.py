"""Administration: users and their tokens, and the tokens node agents ship samples with."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clusterctl import parsing
from clusterctl.cli.common import client, console, handles_errors, print_json

app = typer.Typer(help="Administration.", no_args_is_help=True)
users = typer.Typer(help="Users and tokens.", no_args_is_help=True)
app.add_typer(users, name="user")


@users.command("add")
@handles_errors
def add(
    name: Annotated[str, typer.Argument(help="User name.")],
    team: Annotated[str, typer.Option(help="The user's team.")],
    admin: Annotated[bool, typer.Option("--admin", help="May cancel any job, add users.")] = False,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a user and print their token (shown once, stored hashed)."""
    parsing.parse_name(name, "NAME")
    parsing.parse_name(team, "--team")
    created = client().add_user(name, team, admin)
    if json_:
        print_json(created)
    else:
        print(created["token"])


@users.command("list")
@handles_errors
def list_(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users."""
    rows = client().json("GET", "/v1/users")
    if json_:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "TEAM", "ADMIN"):
        table.add_column(col)
    for u in rows:
        table.add_row(u["name"], u["team"], "yes" if u["is_admin"] else "")
    console.print(table)


@app.command("node-token")
@handles_errors
def node_token(
    node: Annotated[str, typer.Argument(help="Node name, as its agent reports it.")],
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue a token for a node's agent (printed once; an older one stops working)."""
    parsing.parse_node_name(node)
    issued = client().node_token(node)
    if json_:
        print_json(issued)
    else:
        print(issued["token"])
