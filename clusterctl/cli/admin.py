"""Administration: users and their tokens, and the tokens node agents ship samples with."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clusterctl import parsing
from clusterctl.cli.common import client, console, handles_errors, local_time, print_json

app = typer.Typer(help="Administration.", no_args_is_help=True)
users = typer.Typer(help="Users and tokens.", no_args_is_help=True)
app.add_typer(users, name="user")


def _check_teams(teams: list[str]) -> None:
    for t in teams:
        parsing.parse_name(t, "--team")


def _check_account(teams: list[str], unix_user: str | None) -> None:
    """What ``users add`` and ``users set`` check before asking: team names, the account."""
    _check_teams(teams)
    if unix_user is not None:
        parsing.parse_unix_user(unix_user, "--unix-user")


@users.command("add")
@handles_errors
def add(
    name: Annotated[str, typer.Argument(help="User name.")],
    team: Annotated[list[str], typer.Option(
        help="The user's team; repeat for more (the first is their default).")],
    admin: Annotated[bool, typer.Option("--admin", help="May cancel any job, add users.")] = False,
    expires: Annotated[str | None, typer.Option(
        help="The token stops working after this long (90d); default: never.")] = None,
    unix_user: Annotated[str | None, typer.Option(
        help="The Unix account their jobs run as (default: the account named NAME).")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a user and print their token (shown once, stored hashed)."""
    parsing.parse_name(name, "NAME")
    _check_account(team, unix_user)
    if expires:
        parsing.parse_duration(expires, "--expires")
    created = client().json("POST", "/v1/users", json={
        "name": name, "team": team[0], "other_teams": team[1:], "admin": admin,
        "expires": expires, "unix_user": unix_user})
    if json_:
        print_json(created)
    else:
        print(created["token"])


@users.command("token")
@handles_errors
def token(
    name: Annotated[str, typer.Argument(help="User name.")],
    rotate: Annotated[bool, typer.Option("--rotate", help="Issue a new token; the old one "
                                         "stops working at once.")] = False,
    expires: Annotated[str | None, typer.Option(
        help="The new token stops working after this long; default: never.")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rotate a user's token (tokens are stored hashed, so a lost one cannot be shown again)."""
    parsing.parse_name(name, "NAME")
    if not rotate:
        raise parsing.BadInput("--rotate", "is required: a token can only be replaced, never "
                               "shown again")
    if expires:
        parsing.parse_duration(expires, "--expires")
    issued = client().json("POST", f"/v1/users/{name}/token",
                           params={"expires": expires} if expires else None)
    if json_:
        print_json(issued)
    else:
        print(issued["token"])


@handles_errors
def whoami(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Who the CLI's token says you are: user, team, admin or not."""
    me = client().whoami()
    if json_:
        print_json(me)
    else:
        teams = ", ".join(me["teams"])
        print(f"{me['name']} (team{'s' if len(me['teams']) > 1 else ''} {teams}"
              f"{', admin' if me['is_admin'] else ''})")


@users.command("set")
@handles_errors
def set_(
    name: Annotated[str, typer.Argument(help="User name.")],
    team: Annotated[list[str] | None, typer.Option(
        help="The user's teams, all of them (the first is their default).")] = None,
    unix_user: Annotated[str | None, typer.Option(
        help="The Unix account their jobs run as.")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change which teams a user may submit to, or the Unix account their jobs run as."""
    parsing.parse_name(name, "NAME")
    if not team and unix_user is None:
        raise parsing.BadInput("--team", "give --team or --unix-user (what to change)")
    _check_account(team or [], unix_user)
    out = client().json("PATCH", f"/v1/users/{name}",
                        json={"teams": team or None, "unix_user": unix_user})
    if json_:
        print_json(out)
    else:
        print(f"{out['name']}: teams {', '.join(out['teams'])}"
              + (f"; jobs run as Unix account {out['unix_user']}" if unix_user else ""))


@users.command("remove")
@handles_errors
def remove(
    name: Annotated[str, typer.Argument(help="User name.")],
    cancel_running: Annotated[bool, typer.Option(
        "--cancel-running", help="Cancel their running jobs too (default: they finish).")
    ] = False,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Remove a user: their token is refused at once and their queued jobs are cancelled."""
    parsing.parse_name(name, "NAME")
    out = client().json("DELETE", f"/v1/users/{name}",
                        params={"cancel_running": cancel_running})
    if json_:
        print_json(out)
        return
    print(f"{out['name']}: removed; cancelled {len(out['cancelled'])} job(s)"
          + (f"; still running: {' '.join(map(str, out['running']))}" if out["running"]
             else ""))


@app.command("audit")
@handles_errors
def audit(
    since: Annotated[str, typer.Option(help="How far back (30d).")] = "30d",
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Admin actions: users and tokens, drains, the cost basis, priority overrides."""
    parsing.parse_duration(since, "--since")
    rows = client().json("GET", "/v1/audit", params={"since": since})
    if json_:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("AT", "WHO", "ACTION", "TARGET", "DETAIL"):
        table.add_column(col)
    for r in rows:
        table.add_row(local_time(r["at"]), r["actor"], r["action"], r["target"],
                      r["detail"] or "")
    console.print(table)


@users.command("list")
@handles_errors
def list_(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users."""
    rows = client().json("GET", "/v1/users")
    if json_:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "TEAMS", "ADMIN", "UNIX ACCOUNT", "EXPIRES"):
        table.add_column(col)
    for u in rows:
        table.add_row(u["name"], ", ".join(u["teams"]), "yes" if u["is_admin"] else "",
                      u["unix_user"], local_time(u["expires_at"]) if u["expires_at"] else "")
    console.print(table)


@app.command("node-token")
@handles_errors
def node_token(
    node: Annotated[str, typer.Argument(help="Node name, as its agent reports it.")],
    direct: Annotated[bool, typer.Option(
        "--direct", help="Write it into the settings' database instead of asking the "
        "controller (on the head node, as the deploy does).")] = False,
    db: Annotated[str | None, typer.Option(help="With --direct: this database URL.")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue a token for a node's agent (printed once; an older one stops working)."""
    parsing.parse_node_name(node)
    if direct:  # the deploy's path: on the head, before or without a running controller
        from clusterctl import settings as settings_mod
        from clusterctl.controller.installation import local_user_name
        from clusterctl.store import UserStore, make_engine

        engine = make_engine(settings_mod.load(db_url=db).db_url)
        issued = {"node": node, "token": UserStore(engine).issue_node_token(
            node, local_user_name())}
        engine.dispose()
    else:
        issued = client().node_token(node)
    if json_:
        print_json(issued)
    else:
        print(issued["token"])


@app.command("migrate")
@handles_errors
def migrate(
    db: Annotated[str | None, typer.Option(help="Database URL (default: the settings').")] = None,
) -> None:
    """Bring the database schema up to date (each deploy runs it; safe to repeat). The
    controller also migrates when it starts; this lets an upgrade do it first, once."""
    from clusterctl import settings as settings_mod
    from clusterctl import store

    url = settings_mod.load(db_url=db).db_url
    before = store.revision(url)
    store.migrate(url)
    after = store.revision(url)
    print(f"database schema at {after}, up to date" if before == after
          else f"database schema at {after} (was {before or 'empty'})")
