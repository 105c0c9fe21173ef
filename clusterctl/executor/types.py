"""Plain values exchanged between the scheduler and the executor, and the executor's protocol.

Nothing here imports Ray, so the scheduler loop and its tests depend on this module only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class NodeInfo:
    id: str
    name: str
    address: str
    gpus: int
    gpu_model: str | None
    alive: bool


@dataclass(frozen=True)
class LaunchSpec:
    job_id: int
    attempt: int
    command: list[str]
    gpus: int
    nodes: int
    env: dict[str, str]
    workdir: str | None
    time_limit_s: int | None
    kill_grace_s: float


@dataclass
class Launch:
    """What the controller holds in memory for one running attempt."""

    job_id: int
    attempt: int
    ranks: int
    actors: list[Any]
    start_refs: list[Any] | None = None
    wait_refs: list[Any] | None = None
    started: list[dict[str, Any]] | None = None
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)
    launched_at: float = field(default_factory=time.monotonic)
    terminating: bool = False


@dataclass(frozen=True)
class Progress:
    """What :meth:`RayExecutor.poll` saw. ``kind`` is one of ``starting``, ``running``,
    ``started`` (all ranks just started), ``done`` (all ranks ended), ``failed`` (could not
    start; ``error`` says why) or ``lost`` (a runner or its node died)."""

    kind: str
    error: str | None = None


class Executor(Protocol):
    def nodes(self) -> list[NodeInfo]: ...
    def launch(self, spec: LaunchSpec, node_ids: list[str], package: bytes | None) -> Launch: ...
    def reattach(self, job_id: int, attempt: int, ranks: int) -> Launch | None: ...
    def poll(self, launch: Launch) -> Progress: ...
    def terminate(self, launch: Launch, grace_s: float | None) -> None: ...
    def read_log(self, launch: Launch, rank: int, offset: int) -> bytes | None: ...
    def release(self, job_id: int, attempt: int, ranks: int) -> None: ...
    def runner_names(self) -> list[tuple[int, int, int]]: ...
