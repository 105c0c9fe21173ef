"""The Ray door: nodes, placement groups, runner actors, and finding them again after a restart.

Every call here is non-blocking or bounded by a short timeout, so the scheduler loop that drives
it never stalls on a slow cluster. Names derive from (installation, job id, attempt, rank): a
restarted controller finds its runners by name, and no attempt can be launched twice.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError
from ray.util.placement_group import (
    PlacementGroup,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from clusterctl.executor.runner import JobRunner
from clusterctl.executor.types import (
    NODE_LABEL,
    Launch,
    LaunchSpec,
    NodeInfo,
    Outcome,
    Phase,
    Progress,
    RunnerStatus,
    Started,
)

log = logging.getLogger(__name__)

RUNNER_ANSWER_S = 10.0
"""How long a runner has to answer (status, log, cleanup) before it counts as unreachable. Far
above a live runner's milliseconds, and below the driver's deadline on the call that asks."""

GPU_MODEL_LABEL = "clusterctl-gpu-model"
RUNNER_MAX_CONCURRENCY = 8

RemoteRunner = ray.remote(JobRunner)


def pg_name(job_id: int, attempt: int) -> str:
    return f"job-{job_id}-a{attempt}"


def actor_name(job_id: int, attempt: int, rank: int) -> str:
    return f"job-{job_id}-a{attempt}-r{rank}"


def _lost(err: BaseException, prefix: str = "") -> Progress:
    """A runner that is gone. Unreachable (the connection to its node broke) or dead with its
    node: the node is suspect, unlike a runner process that died on a live node."""
    text = _error_text(err)
    suspect = isinstance(err, ActorUnavailableError) or "node has died" in str(err) \
        or "node died" in str(err)
    return Progress(Phase.LOST, prefix + text, node_suspect=suspect)


def _error_text(err: BaseException) -> str:
    if isinstance(err, RayTaskError):
        cause = err.cause if getattr(err, "cause", None) is not None else err
        return str(cause).strip().splitlines()[-1] if str(cause).strip() else repr(cause)
    return str(err).strip().splitlines()[0] if str(err).strip() else repr(err)


class RayExecutor:
    def __init__(self, address: str, namespace: str, run_root: str | None = None) -> None:
        self.address = address
        self.namespace = namespace
        self.run_root = run_root

    # -- connection and nodes -----------------------------------------------------------------

    def connect(self) -> None:
        if not ray.is_initialized():
            ray.init(address=self.address, namespace=self.namespace, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False)

    def shutdown(self) -> None:
        if ray.is_initialized():
            ray.shutdown()

    def nodes(self) -> list[NodeInfo]:
        raw = [n for n in ray.nodes() if n.get("Alive")]
        names: dict[str, int] = {}
        infos = []
        for n in raw:
            labels = n.get("Labels") or {}
            name = labels.get(NODE_LABEL) or n.get("NodeManagerHostname") or n["NodeID"][:12]
            names[name] = names.get(name, 0) + 1
            resources = n.get("Resources") or {}
            model = labels.get(GPU_MODEL_LABEL) or next(
                (k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")),
                None,
            )
            infos.append(NodeInfo(id=n["NodeID"], name=name, address=n["NodeManagerAddress"],
                                  gpus=int(resources.get("GPU", 0)), gpu_model=model,
                                  alive=True))
        # Two Ray nodes on one host without a clusterctl-node label: keep the names apart.
        return [
            NodeInfo(i.id, f"{i.name}-{i.id[:6]}", i.address, i.gpus, i.gpu_model, i.alive)
            if names[i.name] > 1 else i
            for i in infos
        ]

    # -- launching ----------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec, node_ids: list[str], package: bytes | None) -> Launch:
        """Reserve the GPUs (all-or-nothing) and start one runner per rank, without waiting."""
        bundles = [{"GPU": float(spec.gpus)} for _ in node_ids]
        pg = placement_group(
            bundles,
            strategy="STRICT_PACK" if len(node_ids) == 1 else "STRICT_SPREAD",
            name=pg_name(spec.job_id, spec.attempt),
            lifetime="detached",
            bundle_label_selector=[{"ray.io/node-id": nid} for nid in node_ids],
        )
        actors: list[Any] = []
        for rank in range(len(node_ids)):
            actors.append(
                RemoteRunner.options(
                    name=actor_name(spec.job_id, spec.attempt, rank),
                    namespace=self.namespace,
                    lifetime="detached",
                    num_cpus=0,
                    num_gpus=spec.gpus,
                    max_concurrency=RUNNER_MAX_CONCURRENCY,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        pg, placement_group_bundle_index=rank
                    ),
                ).remote(self.namespace, spec.job_id, spec.attempt, rank, self.run_root)
            )
        rendezvous = actors[0].rendezvous.remote() if len(actors) > 1 else None
        package_ref = ray.put(package) if package is not None else None
        start_refs = [a.start.remote(spec, rendezvous, package_ref) for a in actors]
        return Launch(spec.job_id, spec.attempt, len(actors), actors, start_refs=start_refs)

    def reattach(self, job_id: int, attempt: int, ranks: int) -> Launch | None:
        """Find the runners of an attempt after a controller restart; None if any is gone."""
        actors: list[Any] = []
        for rank in range(ranks):
            try:
                actors.append(ray.get_actor(actor_name(job_id, attempt, rank),
                                            namespace=self.namespace))
            except ValueError:
                return None
        try:
            statuses = [RunnerStatus.of(s) for s in
                        ray.get([a.status.remote() for a in actors], timeout=RUNNER_ANSWER_S)]
        except (RayActorError, GetTimeoutError, RayTaskError):
            return None
        launch = Launch(job_id, attempt, ranks, actors)
        started = [s.started for s in statuses if s.started is not None]
        if len(started) == ranks:
            launch.started = started
            launch.wait_refs = [a.wait.remote() for a in actors]
        elif started:
            return None  # half-started gang: not usable
        return launch

    def poll(self, launch: Launch) -> Progress:
        if launch.started is None:
            return self._poll_start(launch)
        assert launch.wait_refs is not None
        pending = [r for i, r in enumerate(launch.wait_refs) if i not in launch.outcomes]
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        for ref in ready:
            rank = launch.wait_refs.index(ref)
            try:
                launch.outcomes[rank] = Outcome.of(ray.get(ref))
            except (RayActorError, RayTaskError) as e:
                return _lost(e, f"rank {rank}: ")
        if len(launch.outcomes) == launch.ranks:
            return Progress(Phase.DONE)
        if any(o.exit_code != 0 for o in launch.outcomes.values()) and not launch.terminating:
            # One rank of a gang failed: the others would hang in their collectives.
            self.terminate(launch, None)
        return Progress(Phase.RUNNING)

    def _poll_start(self, launch: Launch) -> Progress:
        if launch.start_refs is None:  # reattached before any rank started
            return Progress(Phase.FAILED, "controller restarted before the job started")
        ready, _ = ray.wait(launch.start_refs, num_returns=launch.ranks, timeout=0)
        if len(ready) < launch.ranks:
            for ref in ready:  # fail fast if a started rank already reports an error
                try:
                    ray.get(ref)
                except RayTaskError as e:
                    return Progress(Phase.FAILED, _error_text(e))
                except RayActorError as e:
                    return _lost(e)
            return Progress(Phase.STARTING)
        try:
            launch.started = [Started.of(s) for s in ray.get(launch.start_refs)]
        except RayTaskError as e:
            return Progress(Phase.FAILED, _error_text(e))
        except RayActorError as e:
            return _lost(e)
        launch.wait_refs = [a.wait.remote() for a in launch.actors]
        return Progress(Phase.STARTED)

    def terminate(self, launch: Launch, grace_s: float | None) -> None:
        launch.terminating = True
        for actor in launch.actors:
            actor.terminate.remote(grace_s)

    def withdraw(self, launch: Launch, grace_s: float) -> bool:
        """Stop an attempt whose start has not been seen. True when nothing of it can run:
        its GPUs were never granted, so no runner exists to start it, and it may be released
        now. Otherwise each runner is told, once, to refuse its start or to end the command it
        started (one that already exited keeps its outcome), and ``poll`` brings the answer:
        FAILED for a refused start, or STARTED and then the outcome."""
        if not launch.withdrawn:  # the answer comes through the start calls, not these
            for actor in launch.actors:
                actor.withdraw.remote(grace_s)
            launch.withdrawn = True
        try:
            pg: PlacementGroup = get_placement_group(pg_name(launch.job_id, launch.attempt))
        except ValueError:
            return True
        granted = placement_group_table(pg).get("state") == "CREATED"
        launch.terminating = launch.terminating or granted
        return not granted

    def read_log(self, launch: Launch, rank: int, offset: int) -> bytes | None:
        """New output of a rank from ``offset``; None if the runner is unreachable."""
        try:
            return ray.get(launch.actors[rank].read_log.remote(offset),
                           timeout=RUNNER_ANSWER_S)
        except (RayActorError, GetTimeoutError, RayTaskError):
            return None

    def release(self, job_id: int, attempt: int, ranks: int) -> None:
        """Remove the runners and the placement group of an attempt; safe to repeat."""
        actors = []
        for rank in range(ranks):
            with contextlib.suppress(ValueError):
                actors.append(ray.get_actor(actor_name(job_id, attempt, rank),
                                            namespace=self.namespace))
        if actors:  # all at once, one wait; a rank that failed or is gone counts as done
            ray.wait([a.cleanup.remote() for a in actors], num_returns=len(actors),
                     timeout=RUNNER_ANSWER_S)
        for actor in actors:
            ray.kill(actor, no_restart=True)
        self._remove_pg(job_id, attempt)

    def _remove_pg(self, job_id: int, attempt: int) -> None:
        try:
            pg: PlacementGroup = get_placement_group(pg_name(job_id, attempt))
        except ValueError:
            return
        remove_placement_group(pg)

    def runner_names(self) -> list[tuple[int, int, int]]:
        """(job id, attempt, rank) of every runner alive in this installation's namespace."""
        found = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") != self.namespace:
                continue
            parts = entry["name"].split("-")
            if len(parts) == 4 and parts[0] == "job":
                try:
                    found.append((int(parts[1]), int(parts[2][1:]), int(parts[3][1:])))
                except ValueError:
                    continue
        return found
