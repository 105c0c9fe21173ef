"""``clusterctl-agent``: reads this machine's GPUs, serves ``/metrics`` and ships samples.

Settings come from flags, then ``CLUSTERCTL_AGENT_*`` environment variables. The node token is
read from a file or the environment, never from the command line (which ``ps`` shows).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import platformdirs
import typer
from prometheus_client import CollectorRegistry, start_http_server

from agents.agent import Agent, read_boot_id
from agents.exporter import GpuCollector
from agents.reader import GpuReader, NoGpuBackend
from agents.shipper import Shipper
from agents.simulated import Profile, SimulatedReader, parse_profiles
from agents.spool import Spool
from clusterctl.gpu_types import model_memory, parse_models
from clusterctl.parsing import BadInput, parse_duration

log = logging.getLogger("clusterctl-agent")
ENV = "CLUSTERCTL_AGENT_"


def _fail(message: str, code: int) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def run(
    interval: Annotated[str, typer.Option(envvar=ENV + "INTERVAL",
                                          help="Time between reads.")] = "5s",
    port: Annotated[int, typer.Option(envvar=ENV + "PORT", help="/metrics port.")] = 9400,
    address: Annotated[str, typer.Option(envvar=ENV + "ADDRESS",
                                         help="/metrics address.")] = "127.0.0.1",
    node: Annotated[str | None, typer.Option(
        envvar=ENV + "NODE", help="Node name, as the controller knows it (default: hostname)."
    )] = None,
    controller: Annotated[str | None, typer.Option(
        envvar=ENV + "CONTROLLER", help="Controller URL to ship samples to (none: export only)."
    )] = None,
    token_file: Annotated[Path | None, typer.Option(
        envvar=ENV + "TOKEN_FILE", help="File holding this node's token (or set "
        "CLUSTERCTL_AGENT_TOKEN)."
    )] = None,
    ca_file: Annotated[Path | None, typer.Option(
        envvar=ENV + "CA_FILE", help="The cluster's CA, to verify an https controller "
        "(default: the system's CAs).")] = None,
    spool: Annotated[Path | None, typer.Option(
        envvar=ENV + "SPOOL", help="Spool file (default: in the user data directory).")] = None,
    spool_max_age: Annotated[str, typer.Option(
        envvar=ENV + "SPOOL_MAX_AGE", help="How much the spool holds while the controller "
        "is away; older samples are dropped and counted.")] = "7d",
    simulate_gpus: Annotated[int | None, typer.Option(
        envvar=ENV + "SIMULATE_GPUS", help="Simulate N GPUs (for machines without a driver).")
    ] = None,
    simulate_model: Annotated[str, typer.Option(
        envvar=ENV + "SIMULATE_MODEL", help="The model the simulated GPUs report (its memory "
        "from the name, e.g. H100-80GB or RTX-4090), or models with counts for a machine of "
        "several: H100-80GB:2+RTX-4090:2.")] = "A100-80GB (sim)",
    simulate_profile: Annotated[str | None, typer.Option(
        envvar=ENV + "SIMULATE_PROFILE",
        help="Awkward GPUs to simulate, e.g. '2=no-power,3=lost' (no-power, no-energy, "
        "energy-reset, lost).")] = None,
    once: Annotated[bool, typer.Option(help="Read once, print, exit.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
) -> None:
    """Read this machine's GPUs every interval; serve /metrics; ship samples to the controller."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per shipped batch
    interval_s, max_age_s, profiles, models, token, verify = _checked(
        interval, spool_max_age, port, simulate_gpus, simulate_profile, simulate_model,
        controller, token_file, ca_file)
    node_name = node or socket.gethostname()
    agent_ref: list[Agent] = []

    def busy() -> set[int]:
        return agent_ref[0].busy() if agent_ref else set()

    reader = _reader(simulate_gpus, node_name, profiles, busy, simulate_model, models)
    if once:
        _print_once(reader, node_name, json_)
        return

    store = shipper = None
    if controller:
        spool_path = spool or Path(platformdirs.user_data_dir("clusterctl")) / "agent-spool.db"
        store = Spool(spool_path, max_rows=max_age_s // interval_s * 8)
        http = httpx.Client(base_url=controller.rstrip("/"), timeout=30, verify=verify,
                            headers={"Authorization": f"Bearer {token}"})
        shipper = Shipper(store, http, node_name)
    agent = Agent(reader, node_name, interval_s=interval_s, boot_id=read_boot_id(),
                  spool=store, shipper=shipper)
    agent_ref.append(agent)
    try:
        first = agent.tick()
    except NoGpuBackend as e:
        raise _fail(str(e), 1) from None
    if store is not None:  # bound the spool by time: max age over interval, times the GPUs
        store.max_rows = max_age_s // interval_s * max(1, len(first.gpus) + len(first.errors))
    _serve(agent, address, port, f", shipping to {controller}" if controller else "")


def _serve(agent: Agent, address: str, port: int, shipping: str) -> None:
    """/metrics served and the agent reading, until SIGINT or SIGTERM."""
    registry = CollectorRegistry()
    registry.register(GpuCollector(agent.view))
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as e:
        raise _fail(f"cannot serve /metrics on {address}:{port}: {e}", 1) from None
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    agent.start()
    log.info("agent for node %s: %d GPU(s), reading every %ss, /metrics on %s:%d%s",
             agent.node, len(agent.latest.gpus) if agent.latest else 0, agent.interval_s,
             address, port, shipping)
    done.wait()
    agent.stop()


def _checked(interval: str, spool_max_age: str, port: int, simulate_gpus: int | None,
             simulate_profile: str | None, simulate_model: str, controller: str | None,
             token_file: Path | None, ca_file: Path | None
             ) -> tuple[int, int, dict[int, Profile], list[str], str | None, ssl.SSLContext | bool]:
    """Every flag checked before anything starts (exit 2 naming the flag): the interval and
    spool age in seconds, the simulated profiles and models, the node token, and what
    verifies the controller's certificate."""
    try:
        interval_s = parse_duration(interval, "--interval")
        max_age_s = parse_duration(spool_max_age, "--spool-max-age")
        if not 0 < port < 65536:
            raise BadInput("--port", "must be from 1 to 65535")
        if simulate_gpus is not None and not 0 <= simulate_gpus <= 1024:
            raise BadInput("--simulate-gpus", "must be from 0 to 1024")
        try:
            profiles = parse_profiles(simulate_profile)
        except ValueError as e:
            raise BadInput("--simulate-profile", str(e)) from None
        try:
            models = parse_models(simulate_model, simulate_gpus or 0)
        except ValueError as e:
            raise BadInput("--simulate-model", str(e)) from None
        token = _token(token_file) if controller else None
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as e:
                raise BadInput("--ca-file", f"cannot read {ca_file}: {e}") from None
        if controller and not token:
            raise BadInput("--token-file", "a node token is needed to ship samples: give "
                           "--token-file or set CLUSTERCTL_AGENT_TOKEN "
                           "(`clusterctl admin node-token NODE` makes one)")
    except BadInput as e:
        raise _fail(str(e), 2) from None
    return interval_s, max_age_s, profiles, models, token, verify


def _reader(simulate_gpus: int | None, node_name: str, profiles: dict[int, Profile],
            busy: Callable[[], set[int]], simulate_model: str, models: list[str]) -> GpuReader:
    """Simulated GPUs where asked, else NVML's (imported only then: it needs the driver)."""
    if simulate_gpus is not None:
        return SimulatedReader(simulate_gpus, node=node_name, profiles=profiles, busy=busy,
                               proc=Path("/proc"), model=simulate_model,
                               models=[(m, model_memory(m) or 80 << 30) for m in models])
    from agents.nvml import NvmlReader

    return NvmlReader()


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            return token_file.read_text().strip() or None
        except OSError as e:
            raise BadInput("--token-file", f"cannot read {token_file}: {e.strerror}") from None
    return os.environ.get(ENV + "TOKEN") or None


def _print_once(reader: GpuReader, node: str, as_json: bool) -> None:
    try:
        snap = reader.read()
    except NoGpuBackend as e:
        raise _fail(str(e), 1) from None
    finally:
        reader.close()
    if as_json:
        out = {"node": node, "driver_version": getattr(reader, "driver_version", None),
               **dataclasses.asdict(snap)}
        print(json.dumps(out, indent=2))
        return
    for g in snap.gpus:
        mem = (f"{(g.memory_used_bytes or 0) / 2**30:.1f}/{(g.memory_total_bytes or 0) / 2**30:.0f}"
               " GiB")
        print(f"{node} gpu{g.index} {g.model} util={g.utilization} mem={mem} "
              f"power={g.power_watts}W energy={g.energy_mj}mJ temp={g.temperature_celsius}C")
    for bad in snap.errors:
        print(f"{node} gpu{bad.index} ERROR {bad.error}")


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    main()
