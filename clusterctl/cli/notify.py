"""``clusterctl notify``: where the failures of your jobs (or, for admins, a team's) are posted.

A job's own ``--notify URL`` hears its end, however it ends; these hear the failures,
timeouts and losses. The body is what Slack, Mattermost and Discord-style incoming webhooks
accept (``text``), with the event's fields beside it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from clusterctl import parsing
from clusterctl.cli.common import client, console, handles_errors, print_json
from clusterctl.notifications import parse_webhook

app = typer.Typer(help="Webhooks for your jobs' failures (and, for admins, a team's).",
                  no_args_is_help=True)
TEAM = typer.Option(help="The team's webhook instead of your own (admins).")


def _print(out: dict[str, Any], json_: bool) -> None:
    if json_:
        print_json(out)
        return
    console.print(f"{out['user']}: {out['url'] or 'no webhook'}", markup=False, soft_wrap=True)
    for team, url in out["teams"].items():
        console.print(f"team {team}: {url or 'no webhook'}", markup=False, soft_wrap=True)


def _put(url: str | None, team: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if team is not None:
        body["team"] = parsing.parse_name(team, "--team")
    out: dict[str, Any] = client().json("PUT", "/v1/notify", json=body)
    return out


@app.command("show")
@handles_errors
def show(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Your webhook, and your teams' (their URLs to admins only)."""
    _print(client().json("GET", "/v1/notify"), json_)


@app.command("set")
@handles_errors
def set_(
    url: Annotated[str, typer.Argument(help="An http(s) incoming-webhook URL.")],
    team: Annotated[str | None, TEAM] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Post the failures, timeouts and losses of your jobs (or the team's) to URL."""
    _print(_put(parse_webhook(url, "URL"), team), json_)


@app.command("clear")
@handles_errors
def clear(
    team: Annotated[str | None, TEAM] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """No webhook any more."""
    _print(_put(None, team), json_)
