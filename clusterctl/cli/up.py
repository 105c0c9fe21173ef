"""``clusterctl up``: Ray (unless --ray-address), the controller and an admin user, in the
foreground until Ctrl-C."""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clusterctl import parsing
from clusterctl import settings as settings_mod
from clusterctl.cli import up_state
from clusterctl.cli.common import err_console, fail, handles_errors
from clusterctl.executor.local_ray import (
    HeadKeeper,
    LocalRay,
    start_local_ray,
    start_local_worker,
)
from clusterctl.gpu_types import parse_fleet, parse_models

if TYPE_CHECKING:
    from clusterctl.cli.local_agent import LocalAgent


def _keep_head(local: LocalRay, data: Path, options: dict[str, Any],
               simulate_gpus: int | None, agent_pid: Callable[[], int | None]) -> HeadKeeper:
    """Start our Ray head again where it was if it dies, and note the new one in the state
    file (a crash of ``up`` after that takes over the new head)."""
    def start(port: int) -> LocalRay:
        return start_local_ray(data, num_gpus=simulate_gpus, node_name=socket.gethostname(),
                               gpu_model="simulated" if simulate_gpus else None, port=port)

    def noted(new: LocalRay) -> None:
        state = up_state.RayState(new.pid, new.address, str(new.token_file), options)
        up_state.write(data, up_state.UpState(os.getpid(), state, agent_pid()))

    return HeadKeeper(local, start, noted, err_console.print)


SimNode = tuple[str, int, str | None]
"""(node name, GPUs, model) of a simulated machine."""


def _simulated_fleet(value: str | None, host: str) -> list[SimNode]:
    """``--simulate-gpus``: ``8`` is this machine with 8 GPUs (of the agent's default model);
    ``1x2:H100-80GB,1x2:RTX-4090`` one Ray node per machine, named after its model;
    ``H100-80GB:2+RTX-4090:2`` one machine of two models (its agent reports each GPU's)."""
    if value is None:
        return []
    if value.strip().isascii() and value.strip().isdigit():
        count = int(value)
        if not 0 <= count <= parsing.MAX_GPUS_PER_NODE:
            raise parsing.BadInput("--simulate-gpus", "must be from 0 to 1024")
        return [(host, count, None)]
    out: list[SimNode] = []
    for part in value.split(","):
        if "+" in part:  # one machine of several models
            try:
                models = parse_models(part.strip(), None)
            except ValueError as e:
                raise parsing.BadInput("--simulate-gpus", str(e)) from None
            taken = sum(1 for name, _, _ in out if name.startswith(f"{host}-mixed-"))
            out.append((f"{host}-mixed-{taken}", len(models), part.strip()))
            continue
        for nodes, gpus, model in parse_fleet(part, "--simulate-gpus"):
            if len(out) + nodes > 8:
                out += [("", 0, None)] * (9 - len(out))  # too many: said below
                break
            slug = re.sub(r"[^a-z0-9]+", "-", (model or "gpu").lower()).strip("-")
            taken = sum(1 for name, _, _ in out if name.startswith(f"{host}-{slug}-"))
            out += [(f"{host}-{slug}-{taken + i}", gpus, model) for i in range(nodes)]
        if len(out) > 8:
            break
    if len(out) > 8:
        raise parsing.BadInput("--simulate-gpus", "at most 8 simulated machines on one "
                               "machine (each is a Ray node)")
    return out


def _ray_model(model: str | None) -> str | None:
    """The Ray node's model label: none for a machine of several models (its agent tells the
    model of each GPU)."""
    return None if model is not None and "+" in model else model


def _who_runs_jobs(s: settings_mod.Settings) -> str:
    if not s.run_as_submitter:
        me = getpass.getuser()
        return (f"jobs run as {me}, the account that runs Ray" if s.ray_address else
                f"jobs run as {me}: `up` started by an ordinary account runs every job as it")
    fallback = (f"; without one, as {s.job_account}" if s.job_account else
                "; a user without one there cannot start jobs")
    return ("jobs run as their submitter's Unix account on each node (`admin user add "
            f"--unix-user` maps another){fallback}")


@handles_errors
def up(
    simulate_gpus: Annotated[str | None, typer.Option(
        help="Pretend this machine has N GPUs (no driver needed), or is a mixed fleet: "
        "1x2:H100-80GB,1x2:RTX-4090 starts a Ray node and an agent per machine.")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL (default: SQLite).")] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting one.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="API port.")] = None,
    host: Annotated[str | None, typer.Option(help="API address (default 127.0.0.1).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Logs, packages, SQLite.")] = None,
    kill_grace: Annotated[
        str | None, typer.Option(help="Time between SIGTERM and SIGKILL on cancel (30s).")
    ] = None,
    agent: Annotated[bool | None, typer.Option(
        "--agent/--no-agent", help="Run a GPU agent for this machine (default: when `up` "
        "starts Ray itself; with --ray-address each node runs its own).")] = None,
    agent_port: Annotated[int, typer.Option(help="The local agent's /metrics port.")] = 9400,
    agent_interval: Annotated[str, typer.Option(help="The local agent's read interval.")] = "5s",
    tls_cert: Annotated[str | None, typer.Option(
        help="Serve HTTPS with this certificate (PEM, with its chain).")] = None,
    tls_key: Annotated[str | None, typer.Option(help="The certificate's private key.")] = None,
) -> None:
    """Start Ray, the controller and an admin user for you; Ctrl-C stops what it started."""
    fleet = _simulated_fleet(simulate_gpus, socket.gethostname())
    s = _settings(db, ray_address, port, host, data_dir, kill_grace, agent_interval,
                  agent_port, tls_cert, tls_key)
    # Imported here, not at the top: every other command starts 1 s faster without them.
    from clusterctl.api.server import ApiServer
    from clusterctl.controller.service import Controller
    from clusterctl.store import LeaseHeld, acquire_lease

    os.umask(0o077)  # the database, logs and Ray's session files are this account's alone
    try:  # before Ray: a second `up` on the same database starts nothing
        lease = acquire_lease(s.db_url)
    except LeaseHeld as e:
        raise fail(f"{e}; stop it first (one controller per database)", 1) from None

    if s.ray_address is None and os.geteuid() != 0:
        # One person's machine: Ray runs as this account and cannot switch to another.
        s = s.model_copy(update={"run_as_submitter": False})
    data = Path(s.data_dir)
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    ray = _start_ray(s, data, fleet, simulate_gpus)
    controller = Controller(s, ray.address, ray.token_file, lease=lease)
    agents: list[LocalAgent] = []
    keeper = None
    try:
        # A head we just started is given time to come up; one we join answers now or is
        # an outage, served through like any other.
        controller.prepare(connect_timeout_s=90 if ray.local is not None else 15)
        if ray.workers:  # every simulated machine has joined before we say what there is
            controller.wait_for_nodes(len(fleet), 90)
        url, ca_file, gpus = _announce(controller, s)
        if agent if agent is not None else (ray.local is not None and gpus > 0):
            agents = _start_agents(controller, s, fleet, url, ca_file, agent_port,
                                   agent_interval)
            up_state.write(data, up_state.UpState(
                os.getpid(), ray.state, agents[0].process.pid,
                tuple(w.pid for w in ray.workers), tuple(a.process.pid for a in agents[1:])))
        if ray.local is not None and not ray.workers:
            keeper = _keep_head(ray.local, data, ray.options or {}, ray.head_gpus,
                                lambda: agents[0].process.pid if agents else None)
        ApiServer(controller).serve()
    finally:  # an orderly end (a crash never gets here): nothing is left to take over
        local = keeper.stop() if keeper is not None else ray.local
        for a in [*agents[1:], *agents[:1]]:
            a.stop()
        controller.close()
        for w in ray.workers:
            w.stop()
        if local is not None:
            local.stop()
        up_state.remove(data)


def _settings(db: str | None, ray_address: str | None, port: int | None, host: str | None,
              data_dir: str | None, kill_grace: str | None, agent_interval: str,
              agent_port: int, tls_cert: str | None, tls_key: str | None
              ) -> settings_mod.Settings:
    """The settings ``up`` runs with, every flag checked and a TLS certificate too: a bad
    one starts nothing."""
    grace = parsing.parse_duration(kill_grace, "--kill-grace") if kill_grace else None
    parsing.parse_duration(agent_interval, "--agent-interval")
    if not 0 < agent_port < 65536:
        raise parsing.BadInput("--agent-port", "must be from 1 to 65535")
    s = settings_mod.load(db_url=db, ray_address=ray_address, port=port, host=host,
                          data_dir=data_dir, kill_grace_s=grace, tls_cert=tls_cert,
                          tls_key=tls_key)
    settings_mod.check_transport(s)
    if s.tls_cert and s.tls_key:
        from clusterctl.cli import certificates

        checked = certificates.check(s.tls_cert, s.tls_key, s.ca_file or None,
                                     datetime.now(timezone.utc))
        for warning in checked.warnings:
            err_console.print(f"warning: {warning}", markup=False)
    return s


@dataclass
class _Ray:
    address: str
    token_file: str | None
    local: LocalRay | None
    """The head ``up`` started (or took over), None when it joined one."""
    options: dict[str, Any] | None
    state: up_state.RayState | None
    head_gpus: int | None
    workers: list[LocalRay] = field(default_factory=list)
    """A simulated fleet's other machines."""


def _start_ray(s: settings_mod.Settings, data: Path, fleet: list[SimNode],
               simulate_gpus: str | None) -> _Ray:
    """The Ray cluster to use: the one ``--ray-address`` names, the one a crashed ``up``
    left (we hold the lease: it is gone), or a new head (and a worker per simulated
    machine); recorded in ``up_state`` so that the next ``up`` can take over."""
    head_gpus = fleet[0][1] if fleet else None
    options = None if s.ray_address else {
        "num_gpus": head_gpus if len(fleet) <= 1 else simulate_gpus,
        "node": socket.gethostname()}
    local = up_state.take_over(data, options, err_console.print)
    if s.ray_address:
        address, token_file = s.ray_address, s.ray_token_file
    else:
        if local is None:
            head_name, _, head_model = fleet[0] if fleet else (socket.gethostname(), 0, None)
            local = start_local_ray(data, num_gpus=head_gpus, node_name=head_name,
                                    gpu_model=_ray_model(head_model) if head_model else (
                                        "simulated" if head_gpus else None))
        address, token_file = local.address, str(local.token_file)
    state = (up_state.RayState(local.pid, local.address, str(local.token_file), options or {})
             if local is not None else None)
    up_state.write(data, up_state.UpState(os.getpid(), state))
    ray = _Ray(address, token_file, local, options, state, head_gpus)
    if local is not None:
        for name, gpus, model in fleet[1:]:
            ray.workers.append(start_local_worker(data, local, num_gpus=gpus, node_name=name,
                                                  gpu_model=_ray_model(model), num_cpus=2))
        if ray.workers:
            up_state.write(data, up_state.UpState(os.getpid(), state,
                                                  workers=tuple(w.pid for w in ray.workers)))
    return ray


def _announce(controller: Any, s: settings_mod.Settings) -> tuple[str, str | None, int]:
    """The admin's token and the API's address into the CLI's config, and what is there said
    on stderr; (the API's URL, the CA file clients trust, the GPUs found)."""
    boot = controller.bootstrap_admin(s.token)
    url = settings_mod.api_url(s.host, s.port, bool(s.tls_cert))
    # This machine's CLI and agent trust the cluster's CA, or else the certificate itself
    # (a self-signed one, or a file that holds its chain up to the CA).
    ca_file = s.ca_file or (s.tls_cert or None)
    if boot.token or url != s.url or (ca_file and ca_file != s.ca_file):
        token = boot.token or s.token
        assert token is not None
        settings_mod.write_client_config(Path(s.config_path), url, token, ca_file)
    nodes = controller.cluster()
    gpus = sum(n.gpus for n in nodes)
    err_console.print(
        f"clusterctl controller on {url}: {len(nodes)} node(s), {gpus} GPU(s); "
        f"admin user {boot.user} (token in {s.config_path}). Ctrl-C stops.")
    err_console.print(_who_runs_jobs(s))
    err_console.print(f"dashboard: {url}/ (sign in with the token in {s.config_path})",
                      markup=False)
    for problem in controller.degraded().values():
        err_console.print(f"warning: {problem}", markup=False)
    if gpus == 0 and not controller.degraded():
        err_console.print("no GPUs found: on a machine without an NVIDIA driver, use "
                          "--simulate-gpus N")
    return url, ca_file, gpus


def _start_agents(controller: Any, s: settings_mod.Settings,
                  fleet: list[SimNode], url: str, ca_file: str | None,
                  agent_port: int, agent_interval: str) -> list[LocalAgent]:
    """A GPU agent for this machine, then one per other simulated machine."""
    from clusterctl.cli.local_agent import start_local_agent
    from clusterctl.controller.installation import local_user_name

    node = fleet[0][0] if fleet else socket.gethostname()
    agents = [start_local_agent(
        Path(s.data_dir), controller_url=url, node=node,
        token=controller.users.issue_node_token(node, local_user_name()),
        simulate_gpus=fleet[0][1] if fleet else None, port=agent_port,
        interval=agent_interval, ca_file=ca_file, simulate_model=fleet[0][2] if fleet else None)]
    err_console.print(f"GPU agent for {node}: /metrics on 127.0.0.1:{agent_port}, "
                      f"log in {Path(s.data_dir) / 'agent' / 'agent.log'}")
    for i, (name, gpus, model) in enumerate(fleet[1:], start=1):
        agents.append(start_local_agent(
            Path(s.data_dir), controller_url=url, node=name,
            token=controller.users.issue_node_token(name, local_user_name()),
            simulate_gpus=gpus,
            port=agent_port + i, interval=agent_interval, ca_file=ca_file,
            simulate_model=model, directory=f"agent-{name}"))
    return agents
