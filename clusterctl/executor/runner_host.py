"""Warm runners: one detached Ray actor per node, the host, starts every rank on its node as a
Ray task in the attempt's placement group, and that task runs the rank's :class:`JobRunner`.

Why tasks: a Ray actor always gets a new worker process, and a runner actor per attempt cost a
new Python process with Ray's core worker (0.45-0.5 CPU-s, half a second before the job's first
line) for every job. Ray hands a task a pooled worker that earlier tasks used, so after the
first job on a node an attempt's runner starts in milliseconds. The user's command is still
the child of its own worker, alone: a worker that dies takes one job with it.

Why a host: the controller cannot own the tasks (a driver's tasks die with it, and a controller
restart must not end any job). The host submits them and so owns them; it relays what the
controller asks (terminate, withdraw, cleanup) to the task, which long-polls for it, and
answers status, wait and the log from what the task posted and the run directory. A host that
dies leaves its tasks no one to answer to: they end their jobs (the controller sees them LOST).

The task is declared with ``max_retries=0`` (Ray re-runs a task whose worker died: a job must
never run twice) and ``max_calls=0`` (Ray keeps a GPU task's worker for one call by default,
for GPU memory a task's own process may hold; a runner holds none, its command's child does).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from clusterctl.executor.local_ray import free_port
from clusterctl.executor.runner import WITHDRAWN, JobRunner, RunnerError
from clusterctl.executor.types import LaunchSpec, Outcome, Rendezvous, RunnerStatus, Started

Key = tuple[int, int, int]
"""(job id, attempt, rank)."""

POLL_S = 30.0
"""How long a rank's task waits for a command before asking again (a host call per rank every
30 s while nothing happens)."""


LOST_QUIET_S = 2.0
"""How long a host waits before it reports a rank's worker lost (see ``_watch``)."""


class RankLost(RuntimeError):
    """The rank's worker died (its task failed) or its host is gone: the attempt is lost."""


HOST_PREFIX = "host-"


def host_name(node_id: str) -> str:
    return HOST_PREFIX + node_id


@ray.remote(num_cpus=0, max_retries=0, max_calls=0)
def run_rank(host: Any, namespace: str, key: Key, run_root: str | None, spec: LaunchSpec,
             rendezvous: Rendezvous | None, package: bytes | None) -> None:
    """One rank, in a pooled worker: start it unless it was withdrawn first, tell the host,
    then do what the host relays until the cleanup."""
    if not ray.get(host.begin.remote(key)):
        return  # withdrawn before it began: nothing was started
    job_id, attempt, rank = key
    runner = JobRunner(namespace, job_id, attempt, rank, run_root)
    try:
        started = runner.start(spec, rendezvous, package)
    except Exception as e:  # RunnerError, or whatever else kept it from starting
        text = str(e) if isinstance(e, RunnerError) else f"{type(e).__name__}: {e}"
        ray.get(host.post_start.remote(key, None, text, str(runner.log_path)))
    else:
        ray.get(host.post_start.remote(key, started, None, str(runner.log_path)))

        def report() -> None:
            outcome = runner.wait()
            with contextlib.suppress(RayActorError):
                ray.get(host.post_outcome.remote(key, outcome))

        threading.Thread(target=report, name=f"job-{job_id}-rank-{rank}-outcome",
                         daemon=True).start()
    while True:
        try:
            command = ray.get(host.next_command.remote(key))
        except RayActorError:  # the host is gone: nobody can collect this job any more
            runner.cleanup()
            return
        if command is None:
            continue
        what, grace_s = command
        if what == "terminate":
            runner.terminate(grace_s)
        elif what == "withdraw":
            runner.withdraw(grace_s)
        else:
            runner.cleanup()
            return


@dataclass
class _Rank:
    begun: bool = False
    withdrawn: bool = False
    started: Started | None = None
    start_error: str | None = None
    outcome: Outcome | None = None
    lost: str | None = None
    log: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    commands: asyncio.Queue[tuple[str, float | None]] = field(default_factory=asyncio.Queue)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Its task returned (or failed)."""

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class RunnerHost:
    """The node's host of runner tasks (an async actor: every call that waits is a coroutine,
    not a thread)."""

    def __init__(self, namespace: str, run_root: str | None) -> None:
        self.namespace, self.run_root = namespace, run_root
        self.ranks: dict[Key, _Rank] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _rank(self, key: Key) -> _Rank:
        rank = self.ranks.get(key)
        if rank is None:
            rank = self.ranks[key] = _Rank()
        return rank

    # -- from the controller ------------------------------------------------------------------

    async def launch(self, key: Key, spec: LaunchSpec, rendezvous: Rendezvous | None,
                     package: bytes | None, pg: PlacementGroup, bundle: int) -> None:
        """Submit the rank's task into its bundle (it waits there until the GPUs are granted)."""
        self._rank(key)
        me = ray.get_runtime_context().current_actor
        ref = run_rank.options(  # type: ignore[attr-defined]
            num_gpus=spec.gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=bundle),
        ).remote(me, self.namespace, key, self.run_root, spec, rendezvous, package)
        task = asyncio.get_running_loop().create_task(self._watch(key, ref))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _watch(self, key: Key, ref: Any) -> None:
        try:
            await ref
        except Exception as e:  # its worker died, or its placement group was removed
            # A node that dies takes its workers a moment before its host: the host says
            # nothing for a while, so the controller hears of the node's death (the node is
            # then suspect, and no retry lands there), not of a worker's.
            await asyncio.sleep(LOST_QUIET_S)
            rank = self.ranks.get(key)
            if rank is not None and rank.outcome is None:
                rank.lost = (str(e).strip().splitlines() or [repr(e)])[0]
        rank = self.ranks.get(key)
        if rank is not None:
            rank.finished.set()
            rank.touch()

    async def start_result(self, key: Key) -> Started:
        """The rank's start, once known: RunnerError if it could not start (or was withdrawn),
        RankLost if its worker died first."""
        rank = self._rank(key)
        while True:
            if rank.started is not None:
                return rank.started
            if rank.start_error is not None:
                raise RunnerError(rank.start_error)
            if rank.withdrawn and rank.finished.is_set():
                raise RunnerError(WITHDRAWN)
            if rank.lost is not None:
                raise RankLost(rank.lost)
            await rank.changed.wait()

    async def wait(self, key: Key) -> Outcome:
        rank = self._rank(key)
        while rank.outcome is None:
            if rank.lost is not None:
                raise RankLost(rank.lost)
            await rank.changed.wait()
        return rank.outcome

    def status(self, key: Key) -> RunnerStatus | None:
        """None for a rank this host does not know."""
        rank = self.ranks.get(key)
        if rank is None:
            return None
        if rank.lost is not None and rank.outcome is None:
            raise RankLost(rank.lost)
        return RunnerStatus(rank.started, rank.outcome, rank.start_error)

    def terminate(self, key: Key, grace_s: float | None = None) -> None:
        rank = self.ranks.get(key)
        if rank is not None and rank.begun:  # not begun: nothing runs yet (as a runner had)
            rank.commands.put_nowait(("terminate", grace_s))

    def withdraw(self, key: Key, grace_s: float | None = None) -> bool:
        """True when the rank had not begun and now never will; else what began is ended as
        by terminate (a command that already exited keeps its outcome)."""
        rank = self._rank(key)
        if not rank.begun:
            rank.withdrawn = True
            rank.touch()
            return True
        rank.commands.put_nowait(("withdraw", grace_s))
        return False

    def read_log(self, key: Key, offset: int, max_bytes: int = 1 << 20) -> bytes:
        rank = self.ranks.get(key)
        if rank is None or rank.log is None:
            raise FileNotFoundError(f"no log for {key}")
        with open(rank.log, "rb") as f:
            f.seek(offset)
            return f.read(max_bytes)

    async def cleanup(self, key: Key) -> None:
        """End what is left of the rank and remove its run directory; returns once its task
        has (its worker is then free for the next). The last call made."""
        rank = self.ranks.get(key)
        if rank is None:
            return
        if not rank.begun:
            rank.withdrawn = True  # a task still waiting for its GPUs must not start later
            rank.lost = "released before it began"  # whoever waits on it is answered
            rank.touch()
        else:
            rank.commands.put_nowait(("cleanup", None))
            await rank.finished.wait()
        self.ranks.pop(key, None)

    def rendezvous(self) -> Rendezvous:
        """This node's address and a free port, for rank 0's MASTER_ADDR / MASTER_PORT."""
        return Rendezvous(ray.util.get_node_ip_address(), free_port(""))

    def keys(self) -> list[Key]:
        return list(self.ranks)

    # -- from the rank's task -----------------------------------------------------------------

    def begin(self, key: Key) -> bool:
        rank = self._rank(key)
        if rank.withdrawn:
            return False
        rank.begun = True
        return True

    def post_start(self, key: Key, started: Started | None, error: str | None,
                   log: str) -> None:
        rank = self._rank(key)
        rank.started, rank.start_error, rank.log = started, error, str(Path(log))
        rank.touch()

    def post_outcome(self, key: Key, outcome: Outcome) -> None:
        rank = self._rank(key)
        rank.outcome = outcome
        rank.touch()

    async def next_command(self, key: Key) -> tuple[str, float | None] | None:
        rank = self.ranks.get(key)
        if rank is None:
            return ("cleanup", None)
        try:
            return await asyncio.wait_for(rank.commands.get(), POLL_S)
        except asyncio.TimeoutError:
            return None
