"""Plain values exchanged between the scheduler and the executor, and the executor's protocol.

Nothing here imports Ray, so the scheduler loop and its tests depend on this module only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Protocol

NODE_LABEL = "clusterctl-node"
"""The Ray node label that names a node as clusterctl and its agent know it."""


def _fields(cls: type, value: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` from a dict: what a runner of the release before typed results
    (still running across an upgrade) answers with."""
    return {f.name: value[f.name] for f in fields(cls) if f.name in value}


@dataclass(frozen=True)
class NodeInfo:
    id: str
    name: str
    address: str
    gpus: int
    gpu_model: str | None
    alive: bool


@dataclass(frozen=True)
class Interactive:
    """``clusterctl run``: rank 0's stdin, stdout and stderr go to a user through the
    controller (``executor/terminal.py``)."""

    pty: bool = False
    """A pseudo-terminal (``run --pty``): window size, Ctrl-C, full-screen programs."""
    grace_s: float = 300.0
    """How long the job waits for its user to come back (``attach``) after the connection
    drops, before it is hung up."""


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
    account: str | None = None
    """The Unix account the job runs as (None: the account that runs Ray)."""
    fallback_account: str | None = None
    """The site's ``job_account``, for a submitter without an account on the node."""
    devices: tuple[tuple[int, ...], ...] | None = None
    """Per rank, the GPUs to use on a machine of several models (the controller picked them,
    ``scheduler/mixed_nodes.py``); None: the ones Ray gave the rank."""
    interactive: Interactive | None = None
    serves: bool = False
    """A service's replica (``clusterctl serve``): rank 0 gets a free port of its node in
    ``PORT``, to listen on, and tells the controller (``Started.port``)."""


@dataclass(frozen=True)
class Rendezvous:
    """Rank 0's address and a free port on its node (``MASTER_ADDR``, ``MASTER_PORT``)."""

    addr: str
    port: int


@dataclass(frozen=True)
class Started:
    """One rank's process, as its runner started it."""

    rank: int
    pid: int
    gpu_ids: tuple[str, ...]
    """The GPUs Ray gave the rank (its ``CUDA_VISIBLE_DEVICES``)."""
    node_id: str
    node_ip: str
    started_at: float
    terminal: tuple[str, int, str] | None = None
    """An interactive job's rank 0: where its terminal listens and the key it asks for
    (address, port, key); known only to the controller, never stored."""
    port: int | None = None
    """A service's replica: the port of ``node_ip`` it was told to listen on (``PORT``)."""

    @classmethod
    def of(cls, value: Started | dict[str, Any]) -> Started:
        if isinstance(value, Started):
            return value
        return cls(**{**_fields(cls, value), "gpu_ids": tuple(value["gpu_ids"])})


@dataclass(frozen=True)
class Outcome:
    """How one rank's process ended."""

    rank: int
    exit_code: int
    """The process's exit code, or 128 + N for a process killed by signal N (as a shell says)."""
    signal: int | None
    timed_out: bool
    """Killed at its time limit."""
    terminated: bool
    """It had been sent SIGTERM (cancel or preemption) before it ended."""
    ended_at: float
    hangup: str | None = None
    """An interactive job hung up: why (its user closed the terminal, or did not come back
    within the grace period). It ends CANCELLED, with this reason."""

    @classmethod
    def of(cls, value: Outcome | dict[str, Any]) -> Outcome:
        return value if isinstance(value, Outcome) else cls(**_fields(cls, value))


@dataclass(frozen=True)
class RunnerStatus:
    started: Started | None
    outcome: Outcome | None
    start_error: str | None

    @classmethod
    def of(cls, value: RunnerStatus | dict[str, Any]) -> RunnerStatus:
        if isinstance(value, RunnerStatus):
            return value
        started, outcome = value.get("started"), value.get("outcome")
        return cls(Started.of(started) if started else None,
                   Outcome.of(outcome) if outcome else None, value.get("start_error"))


@dataclass
class Launch:
    """What the controller holds in memory for one running attempt."""

    job_id: int
    attempt: int
    ranks: int
    actors: list[Any]
    start_refs: list[Any] | None = None
    deferred: Any = None
    """What the executor starts once the attempt's GPUs are granted (its ranks are not
    launched before: a controller that dies meanwhile leaves nothing that could start)."""
    withdrawn: bool = False
    """Its runners were told, once, to refuse their start (cancelled or preempted before its
    start was seen)."""
    wait_refs: list[Any] | None = None
    started: list[Started] | None = None
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    launched_at: float = field(default_factory=time.monotonic)
    terminating: bool = False
    seen_at: float | None = None
    """When a poll last found it alive (epoch seconds): a runner lost with the Ray head, which
    is noticed only when the head answers again, ended then, not at the reconnection."""


class Phase(str, Enum):
    """Where an attempt stands, as :meth:`Executor.poll` sees it."""

    STARTING = "starting"
    STARTED = "started"
    """All ranks have just started (seen once)."""
    RUNNING = "running"
    DONE = "done"
    """All ranks ended; their outcomes are in ``Launch.outcomes``."""
    FAILED = "failed"
    """Could not start; ``Progress.error`` says why."""
    LOST = "lost"
    """A runner or its node died."""


@dataclass(frozen=True)
class Progress:
    kind: Phase
    error: str | None = None
    node_suspect: bool = False
    """With LOST: the runner's node stopped answering (it may be dead while Ray still lists it
    alive), so no new attempt should be placed there for a while."""


class RayUnavailable(RuntimeError):
    """The Ray head did not answer within a call's deadline (or the driver died): the state of
    the cluster is unknown until a call succeeds again."""


class Executor(Protocol):
    def nodes(self) -> list[NodeInfo]: ...
    def launch(self, spec: LaunchSpec, node_ids: list[str], package: bytes | None) -> Launch: ...
    def reattach(self, job_id: int, attempt: int, ranks: int) -> Launch | None: ...
    def poll(self, launch: Launch) -> Progress: ...
    def terminate(self, launch: Launch, grace_s: float | None) -> None: ...
    def withdraw(self, launch: Launch, grace_s: float) -> bool: ...
    def read_log(self, launch: Launch, rank: int, offset: int) -> bytes | None: ...
    def release(self, job_id: int, attempt: int, ranks: int) -> None: ...
    def runner_names(self) -> list[tuple[int, int, int]]: ...
