"""What ``clusterctl up`` started, kept in its data directory (``up-state.json``, 0600), so a
new ``up`` after a crash takes over instead of starting a second cluster beside the first.

``up`` holds the database lease while it runs, so whoever reads this file holding the lease
knows the ``up`` that wrote it is gone. What that ``up`` left running is then adopted (the Ray
head, when it was started with the same GPUs: its jobs run on and the controller re-attaches
to them) or stopped cleanly (an agent, whose token the new ``up`` replaces; a Ray head started
with other options).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clusterctl.executor.local_ray import LocalRay, adopt_local_ray, command_line, stop_pid

NAME = "up-state.json"


@dataclass(frozen=True)
class RayState:
    pid: int
    address: str
    token_file: str
    options: dict[str, Any]
    """What it was started with (GPUs, node name): a head started otherwise is not adopted."""


@dataclass(frozen=True)
class UpState:
    pid: int
    ray: RayState | None = None
    agent_pid: int | None = None
    workers: tuple[int, ...] = ()
    """Ray worker nodes of a simulated fleet (``--simulate-gpus 1x2:H100,...``)."""
    agents: tuple[int, ...] = ()
    """The fleet's other agents (one per worker node)."""


def read(data_dir: Path) -> UpState | None:
    try:
        raw = json.loads((data_dir / NAME).read_text())
        ray = RayState(**raw["ray"]) if raw.get("ray") else None
        return UpState(int(raw["pid"]), ray, raw.get("agent_pid"),
                       tuple(int(p) for p in raw.get("workers") or ()),
                       tuple(int(p) for p in raw.get("agents") or ()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(data_dir: Path, state: UpState) -> None:
    path = data_dir / NAME
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(state), f)
    tmp.replace(path)


def remove(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / NAME).unlink()


def take_over(data_dir: Path, ray_options: dict[str, Any] | None,
              say: Any) -> LocalRay | None:
    """Deal with what a crashed ``up`` left: stop its agent, adopt its Ray head if it was
    started with ``ray_options`` (None: this ``up`` joins another cluster), else stop it.
    Returns the adopted head, if any."""
    state = read(data_dir)
    if state is None:
        return None
    if state.agent_pid and any("agent" in a for a in command_line(state.agent_pid)[:3]):
        say(f"stopping the GPU agent a crashed `up` left running (pid {state.agent_pid})")
        stop_pid(state.agent_pid, 20)
    for pid in state.agents:
        if any("agent" in a for a in command_line(pid)[:3]):
            stop_pid(pid, 20)
    for pid in state.workers:  # a simulated fleet is started anew, whole
        if any(a.endswith("ray") for a in command_line(pid)[:2]):
            say(f"stopping a Ray worker node a crashed `up` left running (pid {pid})")
            stop_pid(pid, 30)
    adopted = None
    if state.ray is not None:
        head = adopt_local_ray(state.ray.pid, state.ray.address, Path(state.ray.token_file))
        if head is not None and ray_options == state.ray.options and not state.workers:
            say(f"re-attaching to the Ray head a crashed `up` left running (pid "
                f"{state.ray.pid}, {state.ray.address}): its jobs run on")
            adopted = head
        elif head is not None:
            say(f"stopping the Ray head a crashed `up` left running (pid {state.ray.pid}): "
                "it was started with other options; its jobs end and are settled")
            head.stop()
    remove(data_dir)
    return adopted
