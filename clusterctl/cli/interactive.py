"""Interactive jobs: run (submit and stay with it, as srun does), attach, port-forward."""

from __future__ import annotations

import inspect
import json
import os
import socket
import sys
import time
from typing import Annotated, Any

import typer

from clusterctl import parsing
from clusterctl.cli.client import Client
from clusterctl.cli.common import (
    client,
    err_console,
    handles_errors,
    print_json,
)
from clusterctl.cli.jobs import follow_log, why_waiting
from clusterctl.cli.submit import submit, submit_job, with_directives
from clusterctl.parsing import BadInput
from clusterctl.states import ENDED, JobState


def run(ctx: typer.Context, **params: Any) -> None:
    """Run a command through the queue and stay with it, as srun does: says why it waits,
    then connects your terminal to it: stdin, and its output (stdout and stderr together),
    through the controller. Exits with the command's exit code (1 if it ended otherwise).
    Ctrl-C cancels the job; with --pty, Ctrl-C and every other key go to the job, whose
    terminal is a real one (window size, bash, python, htop), and closing your terminal ends
    it. A dropped connection leaves the job running a while: `clusterctl attach JOB`.
    Takes submit's flags."""
    pty, ports = bool(params.pop("pty", False)), list(params.pop("port", None) or [])
    if params.get("array") is not None:
        raise BadInput("--array", "run follows one job; submit an array with `submit`")
    p = with_directives(ctx, params.get("command"))
    p.pop("pty", None)
    p.pop("port", None)
    env = list(p.get("env") or [])
    if pty and not any(e.startswith("TERM=") for e in env):
        env.append(f"TERM={os.environ.get('TERM') or 'xterm-256color'}")
    p["env"] = env
    job = submit_job(p, {"interactive": True, "pty": pty, "ports": parsing.parse_ports(ports)})
    job_id = int(job["id"])
    _stay_with(client(), job_id, pty, 0, p["json_"])


def _with_params(sig: inspect.Signature, **extra: tuple[Any, Any]) -> inspect.Signature:
    """``sig`` with more options (name: (type, typer.Option)), each defaulting to None/False:
    ``run`` takes submit's flags and its own."""
    added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                               annotation=Annotated[kind, option],
                               default=False if kind is bool else None)
             for name, (kind, option) in extra.items()]
    return sig.replace(parameters=[*sig.parameters.values(), *added])


def _stay_with(c: Client, job_id: int, pty: bool, offset: int | None, json_: bool) -> None:
    """Wait for the job, be its terminal until it ends, and exit as it did."""
    from clusterctl.cli.terminal import Ended, Session  # websockets: for run and attach only

    interrupted = False
    ended = Ended()
    shown = 0
    try:
        try:
            j = _until_started(c, job_id)
            if JobState(j["state"]) in ENDED:
                ended = Ended(state=j["state"])
            else:
                _say_ports(c, j)
                session = Session(c, job_id, pty)
                ended = session.run(offset)
                shown = session.received
            if ended.state is not None and offset is not None:
                # It ended before its terminal could show all it printed: the rest is in
                # its log (which holds everything once the job has ended).
                sys.stdout.flush()
                follow_log(c, job_id, follow=False, start=offset + shown)
        except KeyboardInterrupt:
            interrupted = True
            err_console.print(f"cancelling job {job_id} (Ctrl-C again leaves now)",
                              markup=False)
            c.cancel(job_id)
            _until_ended(c, job_id, 120)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if ended.lost is not None:
        if ended.lost == "terminal closed":
            raise typer.Exit(129)
        err_console.print(f"lost the connection to job {job_id} ({ended.lost}); it keeps "
                          f"running for a while: clusterctl attach {job_id}", markup=False)
        raise typer.Exit(3)
    j = _until_ended(c, job_id, 30)
    if json_:
        print_json(j)
    if j["state"] not in {s.value for s in ENDED} and ended.exit_code is not None:
        raise typer.Exit(ended.exit_code if 0 <= ended.exit_code < 256 else 1)
    if j["state"] == "SUCCEEDED":
        raise typer.Exit(0)
    if interrupted and j["state"] == "CANCELLED":
        raise typer.Exit(130)  # as a shell reports a command ended by SIGINT
    err_console.print(f"job {job_id}: {j['state']}"
                      + (f" ({j['reason']})" if j.get("reason") else ""), markup=False)
    code = j.get("exit_code")
    raise typer.Exit(code if j["state"] == "FAILED" and isinstance(code, int)
                     and 0 < code < 256 else 1)


def _until_ended(c: Client, job_id: int, timeout_s: float) -> dict[str, Any]:
    """The job once it has ended (the controller records the end at its next pass), or as it
    is when ``timeout_s`` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        j = c.job(job_id)
        if JobState(j["state"]) in ENDED or time.monotonic() > deadline:
            return j
        time.sleep(0.3)


def _say_ports(c: Client, j: dict[str, Any]) -> None:
    job_id = j["id"]
    ports = (j.get("interactive") or {}).get("ports") or []
    if not ports:
        return
    address = {n["name"]: n.get("address") for n in c.nodes()}
    where = (j.get("node_names") or ["?"])[0]
    host = address.get(where) or where
    for port in ports:
        err_console.print(f"job {job_id} serves port {port} at {host}:{port} (node {where}); "
                          f"from your machine: clusterctl port-forward {job_id} {port}",
                          markup=False, soft_wrap=True)


run.__signature__ = _with_params(  # type: ignore[attr-defined]
    inspect.signature(submit, eval_str=True),
    pty=(bool, typer.Option("--pty", help="A real terminal: window size, Ctrl-C and "
                            "full-screen programs (bash, python, htop).")),
    port=(list[str] | None, typer.Option(help="A TCP port the job serves (a notebook): "
                                         "says where, for port-forward. Repeatable.")),
)
run = handles_errors(run)


@handles_errors
def attach(job: Annotated[str, typer.Argument(metavar="JOB")]) -> None:
    """Come back to an interactive job (one started with `run`) after a dropped connection,
    or from another terminal (the earlier one is let go). Shows the last of its output, then
    behaves as `run` does until the job ends."""
    job_id = parsing.parse_job_id(job)
    c = client()
    j = c.job(job_id)
    if j.get("interactive") is None:
        raise BadInput("JOB", f"job {job_id} is a batch job, with no terminal to attach to; "
                       f"its output: clusterctl logs -f {job_id}")
    _stay_with(c, job_id, bool(j["interactive"].get("pty")), None, False)


@handles_errors
def port_forward(
    job: Annotated[str, typer.Argument(metavar="JOB")],
    port: Annotated[str, typer.Argument(metavar="PORT", help="The job's port (run --port).")],
    local_port: Annotated[str | None, typer.Option(
        help="The port on this machine (default: the same).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Say where it listens as JSON.")] = False,
) -> None:
    """Bring a port an interactive job serves (`run --port 8888`, a notebook) to this
    machine's 127.0.0.1, through the controller, until Ctrl-C."""
    from clusterctl.cli.terminal import forward  # websockets: for this command only

    job_id = parsing.parse_job_id(job)
    remote = parsing.parse_ports([port])[0]
    local = parsing.parse_ports([local_port])[0] if local_port is not None else remote
    c = client()
    j = c.job(job_id)
    served = (j.get("interactive") or {}).get("ports") or []
    if remote not in served:
        raise BadInput("PORT", f"job {job_id} serves "
                       + (", ".join(map(str, served)) or "no port (run --port PORT)")
                       + f", not {remote}")
    try:
        listener = socket.create_server(("127.0.0.1", local))
    except OSError as e:
        raise BadInput("--local-port", f"cannot listen on 127.0.0.1:{local}: "
                       f"{e.strerror or e}") from None
    if json_:
        print(json.dumps({"job": job_id, "port": remote, "local": f"127.0.0.1:{local}"}),
              flush=True)
    else:
        print(f"forwarding 127.0.0.1:{local} -> job {job_id} port {remote} (Ctrl-C stops)",
              flush=True)
    try:
        forward(c, job_id, remote, listener, say=lambda text: err_console.print(
            text, markup=False))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    finally:
        listener.close()


def _until_started(c: Client, job_id: int) -> dict[str, Any]:
    """Wait while the job is pending, saying why on stderr each time the reason changes; the
    job as it then is."""
    said = None
    while True:
        j = c.job(job_id)
        if j["state"] not in ("PENDING", "STARTING"):
            return j
        why = why_waiting(j)
        if why != "-" and why != said:
            err_console.print(f"job {job_id} waits: {why}", markup=False, soft_wrap=True)
            said = why
        time.sleep(0.5)
