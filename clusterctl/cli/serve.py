"""``clusterctl serve``: model services on the cluster's GPUs, their replicas queued as jobs.

``serve NAME [flags] -- CMD`` starts one (its flags may come from a TOML file, ``--file``);
``serve list``, ``show``, ``logs``, ``scale`` and ``stop`` act on them. Each replica listens on
the port in ``$PORT`` and is ready once its health path answers 200; callers reach the service at
``CONTROLLER/services/NAME/`` with their token.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from clusterctl import parsing
from clusterctl.cli import packages
from clusterctl.cli.common import client, console, handles_errors, print_json
from clusterctl.client_settings import load_client, tomllib
from clusterctl.parsing import BadInput
from clusterctl.serving.pricing import money_text
from clusterctl.serving.request import ServiceRequest, parse_replicas, parse_service_name


class _Serve(TyperGroup):
    """``serve NAME ...`` starts a service; ``serve list`` (and the other verbs) act on them."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return super().resolve_command(ctx, ["start", *args])
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_Serve, no_args_is_help=True, help=(
    "Model services: `serve NAME --gpus 1 --replicas 1:4 -- CMD` starts one; "
    "list, show, logs, scale, stop, key."))
JSON = typer.Option("--json", help="Print JSON.")
REPLICA = ("gpus", "gpu_type", "team", "env", "workdir")
"""The flags that go to each replica's job request."""


def _from_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadInput("--file", f"{path}: {e}") from None
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def service_request(flags: dict[str, Any], command: list[str] | None) -> ServiceRequest:
    """The request the flags (over a file's values) make: parsed here, so a bad one is exit 2
    before anything is sent."""
    given = {**_from_file(flags.pop("file")),
             **{k: v for k, v in flags.items() if v not in (None, [])}}
    replica: dict[str, Any] = {k: given.pop(k) for k in REPLICA if k in given}
    replica["command"] = parsing.parse_command(list(command or given.pop("command", None)
                                                    or []))
    if isinstance(replica.get("env"), list):
        replica["env"] = parsing.parse_env(replica["env"])
    if replica.get("workdir"):
        replica["workdir"] = str(Path(replica["workdir"]).expanduser().resolve())
    return ServiceRequest.parse({**given, "replica": replica})


@app.command("start", hidden=True)
@handles_errors
def start(
    name: Annotated[str, typer.Argument(help="The service's name (its endpoint's path).")],
    command: Annotated[list[str] | None, typer.Argument(
        help="The replica's command, after '--': it listens on $PORT.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPUs per replica: 1, or H100:1.")] = None,
    gpu_type: Annotated[str | None, typer.Option(help="Any of these GPU types.")] = None,
    replicas: Annotated[str | None, typer.Option(
        help="MIN:MAX replicas (0:4 scales to zero when idle); default 1:1.")] = None,
    target_rps: Annotated[float | None, typer.Option(
        help="Requests a second one replica should take; more load adds replicas.")] = None,
    scale_to_zero_after: Annotated[str | None, typer.Option(
        help="With MIN 0: no replica after this long without a request (15m).")] = None,
    health: Annotated[str | None, typer.Option(
        help="The path that answers 200 once a replica is ready (/healthz).")] = None,
    price_per_1k: Annotated[float | None, typer.Option(
        help="What 1,000 requests cost from an API provider (USD), to compare.")] = None,
    team: Annotated[str | None, typer.Option(help="Team (default: yours).")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    workdir: Annotated[str | None, typer.Option(
        help="Run in place in this directory instead of shipping the current one.")] = None,
    file: Annotated[str | None, typer.Option(
        "--file", "-f", help="A TOML file of these flags (command = [...] too).")] = None,
    json_: Annotated[bool, JSON] = False,
) -> None:
    """Start a service: its replicas are queued as jobs of your team."""
    flags = {"name": parse_service_name(name), "gpus": gpus, "gpu_type": gpu_type,
             "replicas": replicas, "target_rps": target_rps,
             "scale_to_zero_after": scale_to_zero_after, "health": health,
             "price_per_1k": price_per_1k, "team": team, "env": env, "workdir": workdir,
             "file": file}
    request = service_request(flags, command)
    c = client()
    body = request.wire()
    if request.replica.workdir is None:
        out = packages.with_package(
            c, Path.cwd(), int(load_client().max_package_mb * (1 << 20)),
            lambda sha: c.json("POST", "/v1/services", json={
                **body, "replica": {**body["replica"], "package": sha}}))
    else:
        out = c.json("POST", "/v1/services", json=body)
    if json_:
        print_json(out)
    else:
        print(f"service {out['name']} started: {c.url}{out['endpoint']}")


def _show(out: dict[str, Any], url: str) -> None:
    r = out["replicas"]
    lines = [
        f"service {out['name']} (team {out['team']}, by {out['user']})"
        + (" stopped" if out["stopped_at"] else ""),
        f"endpoint: {url}{out['endpoint']}",
        f"replicas: {r['ready']} ready, {r['running']} running, {r['pending']} pending; "
        f"wanted {r['desired']} (min {r['min']}, max {r['max']}); jobs "
        + (", ".join(str(j) for j in out["replica_jobs"]) or "none"),
        f"requests: {out['requests']}, errors {out['errors']}, tokens {out['tokens']}; "
        f"latency p50 {_ms(out['latency_p50_ms'])}, p99 {_ms(out['latency_p99_ms'])}",
        f"cost: {_money(out['cost'], out)} for {out['gpu_hours']:.3f} GPU-hours; per 1,000 "
        f"requests {_money(out['cost_per_1k_requests'], out)}, per million tokens "
        f"{_money(out['cost_per_1m_tokens'], out)}",
    ]
    if out["api_equivalent"] is not None:
        lines.append(f"from an API at {_money(out['price_per_1k'], out)} per 1,000: "
                     f"{_money(out['api_equivalent'], out)} (saving "
                     f"{_money(out['saving'], out)})")
    if out["idle_share"] is not None:
        lines.append(f"replicas idle {out['idle_share']:.0%} of {out['replica_hours']:.3f} "
                     f"replica-hours: {_money(out['waste_cost'], out)} of waste")
    console.print("\n".join(lines), markup=False, soft_wrap=True)


def _money(value: float | None, out: dict[str, Any]) -> str:
    return "-" if value is None else money_text(value, out["currency"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


@app.command("list")
@handles_errors
def listing(all_: Annotated[bool, typer.Option("--all", help="Stopped ones too.")] = False,
            json_: Annotated[bool, JSON] = False) -> None:
    """The services: name, team, replicas ready of wanted, requests."""
    out = client().json("GET", "/v1/services", params={"all": str(all_).lower()})
    if json_:
        print_json(out)
        return
    print(f"{'NAME':<24} {'TEAM':<16} {'READY':>6} {'WANTED':>6} {'MIN:MAX':>8} {'REQUESTS':>9}")
    for s in out:
        r = s["replicas"]
        print(f"{s['name']:<24} {s['team']:<16} {r['ready']:>6} {r['desired']:>6} "
              f"{str(r['min']) + ':' + str(r['max']):>8} {s['requests']:>9}")


@app.command("show")
@handles_errors
def show(name: Annotated[str, typer.Argument(help="Service name.")],
         json_: Annotated[bool, JSON] = False) -> None:
    """A service: its endpoint, replicas, requests, errors, tokens and latency."""
    c = client()
    out = c.json("GET", f"/v1/services/{parse_service_name(name)}")
    if json_:
        print_json(out)
    else:
        _show(out, c.url)


@app.command("scale")
@handles_errors
def scale(name: Annotated[str, typer.Argument(help="Service name.")],
          replicas: Annotated[str, typer.Argument(help="MIN:MAX")],
          json_: Annotated[bool, JSON] = False) -> None:
    """Change a service's MIN:MAX replicas."""
    low, high = parse_replicas(replicas)
    c = client()
    out = c.json("POST", f"/v1/services/{parse_service_name(name)}/scale",
                 json={"replicas": f"{low}:{high}"})
    if json_:
        print_json(out)
    else:
        _show(out, c.url)


@app.command("stop")
@handles_errors
def stop(name: Annotated[str, typer.Argument(help="Service name.")],
         json_: Annotated[bool, JSON] = False) -> None:
    """Stop a service: its replicas are cancelled and its name is free again."""
    out = client().json("POST", f"/v1/services/{parse_service_name(name)}/stop")
    if json_:
        print_json(out)
    else:
        print(f"service {out['name']} stopped")


@app.command("logs")
@handles_errors
def logs(name: Annotated[str, typer.Argument(help="Service name.")],
         json_: Annotated[bool, JSON] = False) -> None:
    """The end of each live replica's output, each under a heading (a replica's whole output
    is its job's: clusterctl logs JOB)."""
    out = client().json("GET", f"/v1/services/{parse_service_name(name)}/logs")
    if json_:
        print_json(out)
        return
    for replica in out:
        sys.stdout.write(f"--- replica job {replica['job']} ({replica['state']}) ---\n")
        sys.stdout.write(replica["log"])
    sys.stdout.flush()


@app.command("key")
@handles_errors
def key(name: Annotated[str, typer.Argument(help="Service name.")],
        json_: Annotated[bool, JSON] = False) -> None:
    """A new key for applications: send it as 'Authorization: Bearer KEY'; it opens this
    service's endpoint and nothing else. Shown once."""
    out = client().json("POST", f"/v1/services/{parse_service_name(name)}/keys")
    if json_:
        print_json(out)
    else:
        print(out["key"])
