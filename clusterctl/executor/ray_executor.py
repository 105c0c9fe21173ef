"""The Ray door: nodes, placement groups, each node's runner host, and finding an attempt's
ranks again after a restart.

Every call here is non-blocking or bounded by a short timeout, so the scheduler loop that drives
it never stalls on a slow cluster. Each rank runs as a task its node's host submits into the
attempt's placement group (``runner_host.py``: warm runners); ranks are known by (job id,
attempt, rank) and hosts by their node, so a restarted controller finds them by name, and no
attempt can be launched twice. Runner actors of the release before (one per rank, named
``job-J-aA-rR``) are still found, watched and cleaned up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
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
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from clusterctl.executor.runner import WITHDRAWN
from clusterctl.executor.runner_host import HOST_PREFIX, Key, RankLost, RunnerHost, host_name
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
GRANT_WAIT_S = 0.1
"""How long a launch waits for its placement group to be granted before it returns."""

RemoteHost = ray.remote(RunnerHost)


@dataclass(frozen=True)
class Rank:
    """One rank's runner: its key on its node's host, or (``key`` None) a runner actor of
    the release before, whose methods take no key."""

    handle: Any
    key: Key | None

    def call(self, method: str, *args: Any) -> Any:
        fn = getattr(self.handle, method)
        return fn.remote(self.key, *args) if self.key is not None else fn.remote(*args)


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


def _not_started(err: RayTaskError) -> Progress:
    """A rank that did not start: FAILED with why (its command could not start, or it was
    withdrawn), or LOST when its worker died first."""
    if isinstance(getattr(err, "cause", None), RankLost):
        return _lost(err)
    return Progress(Phase.FAILED, _error_text(err))


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
        self._known: dict[tuple[int, int], list[Rank]] = {}
        """The ranks of the attempts launched or found again, until released."""

    # -- connection and nodes -----------------------------------------------------------------

    def connect(self) -> None:
        if not ray.is_initialized():
            ray.init(address=self.address, namespace=self.namespace, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False)

    def shutdown(self) -> None:
        if ray.is_initialized():
            self._retire_idle_hosts()
            ray.shutdown()

    def _retire_idle_hosts(self) -> None:
        """The controller stops: hosts that hold no rank go too. A detached actor holds up the
        stop of its Ray node by 30 s (`up`'s stop, the demo's), and a host is cheap to start
        again (its warmth is Ray's pooled workers, not the host). Hosts with ranks stay: their
        jobs outlive the controller."""
        for host, keys in self._host_keys(timeout=2.0):
            if not keys:
                ray.kill(host, no_restart=True)

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
        """Reserve the GPUs (all-or-nothing) and start one rank per node, without waiting."""
        bundles = [{"GPU": float(spec.gpus)} for _ in node_ids]
        pg = placement_group(
            bundles,
            strategy="STRICT_PACK" if len(node_ids) == 1 else "STRICT_SPREAD",
            name=pg_name(spec.job_id, spec.attempt),
            lifetime="detached",
            bundle_label_selector=[{"ray.io/node-id": nid} for nid in node_ids],
        )
        hosts = [self._host(nid) for nid in node_ids]
        ranks = [Rank(h, (spec.job_id, spec.attempt, r)) for r, h in enumerate(hosts)]
        package_ref = ray.put(package) if package is not None else None
        launch = Launch(spec.job_id, spec.attempt, len(ranks), ranks,
                        deferred=(spec, pg, package_ref))
        self._known[(spec.job_id, spec.attempt)] = ranks  # a host ignores a key never given
        # Free GPUs are granted in a few milliseconds: the ranks go now rather than at the next
        # poll, half a second later. GPUs still held go at a later poll.
        deadline = time.monotonic() + GRANT_WAIT_S
        while not self._begin(launch) and time.monotonic() < deadline:
            time.sleep(0.005)
        return launch

    def _begin(self, launch: Launch) -> bool:
        """Launch the ranks once the attempt's GPUs are granted (False: not yet). Not before:
        a host runs what it was given, so a rank given to it while the GPUs were still held
        would start after the controller that asked had died, a cancel taken meanwhile never
        applied (#31's lost cancel). Ranks never given start nothing."""
        spec, pg, package_ref = launch.deferred
        if placement_group_table(pg).get("state") != "CREATED":
            return False
        ranks = launch.actors
        rendezvous = ranks[0].handle.rendezvous.remote() if len(ranks) > 1 else None
        for r, rank in enumerate(ranks):
            rank.call("launch", spec, rendezvous, package_ref, pg, r)
        launch.start_refs = [rank.call("start_result") for rank in ranks]
        launch.deferred = None
        return True

    def _host(self, node_id: str) -> Any:
        """The node's runner host, started if it is not there (once per node, or after the
        one before died)."""
        return RemoteHost.options(  # type: ignore[attr-defined]
            name=host_name(node_id), namespace=self.namespace, lifetime="detached",
            get_if_exists=True, num_cpus=0, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(self.namespace, self.run_root)

    def _hosts(self) -> list[Any]:
        found = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") == self.namespace and \
                    entry["name"].startswith(HOST_PREFIX):
                with contextlib.suppress(ValueError):
                    found.append(ray.get_actor(entry["name"], namespace=self.namespace))
        return found

    def _host_keys(self, timeout: float = RUNNER_ANSWER_S) -> list[tuple[Any, list[Key]]]:
        """Each live host with the ranks it holds, all asked at once (a host that does not
        answer in time is left out)."""
        hosts = self._hosts()
        refs = [h.keys.remote() for h in hosts]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        out = []
        for host, ref in zip(hosts, refs, strict=True):
            if ref in ready:
                with contextlib.suppress(RayActorError, RayTaskError):
                    out.append((host, [tuple(k) for k in ray.get(ref)]))
        return out  # type: ignore[return-value]

    def _find(self, job_id: int, attempt: int, ranks: int) -> list[Rank | None]:
        """Each rank of an attempt: on its host, else a runner actor of the release before,
        else None."""
        known = self._known.get((job_id, attempt))
        if known is not None and len(known) == ranks:
            return list(known)
        held = {k: host for host, keys in self._host_keys() for k in keys}
        # One scan serves every attempt a restarted controller asks for next, not one each.
        groups: dict[tuple[int, int], list[Rank]] = {}
        for key in sorted(held):
            groups.setdefault(key[:2], []).append(Rank(held[key], key))
        for attempt_key, ranks_of in groups.items():
            if [r.key[2] for r in ranks_of if r.key] == list(range(len(ranks_of))):
                self._known.setdefault(attempt_key, ranks_of)
        found: list[Rank | None] = []
        for rank in range(ranks):
            key = (job_id, attempt, rank)
            if key in held:
                found.append(Rank(held[key], key))
                continue
            try:
                found.append(Rank(ray.get_actor(actor_name(job_id, attempt, rank),
                                                namespace=self.namespace), None))
            except ValueError:
                found.append(None)
        return found

    def reattach(self, job_id: int, attempt: int, ranks: int) -> Launch | None:
        """Find the ranks of an attempt after a controller restart; None if any is gone."""
        found = self._find(job_id, attempt, ranks)
        if all(r is None for r in found) and self._pg(job_id, attempt) is not None:
            # Its GPUs were asked for, its ranks never launched: nothing of it runs.
            return Launch(job_id, attempt, ranks, [])
        if any(r is None for r in found):
            return None
        handles = [r for r in found if r is not None]
        try:
            answers = ray.get([r.call("status") for r in handles], timeout=RUNNER_ANSWER_S)
        except (RayActorError, GetTimeoutError, RayTaskError):
            return None
        if any(a is None for a in answers):  # released by its host meanwhile
            return None
        statuses = [RunnerStatus.of(a) for a in answers]
        self._known[(job_id, attempt)] = handles
        launch = Launch(job_id, attempt, ranks, handles)
        started = [s.started for s in statuses if s.started is not None]
        if len(started) == ranks:
            launch.started = started
            launch.wait_refs = [r.call("wait") for r in handles]
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
        if launch.deferred is not None:
            if launch.withdrawn:
                return Progress(Phase.FAILED, WITHDRAWN)
            if not self._begin(launch):
                return Progress(Phase.STARTING)
        if launch.start_refs is None:  # reattached before any rank started
            return Progress(Phase.FAILED, "controller restarted before the job started")
        ready, _ = ray.wait(launch.start_refs, num_returns=launch.ranks, timeout=0)
        if len(ready) < launch.ranks:
            for ref in ready:  # fail fast if a started rank already reports an error
                try:
                    ray.get(ref)
                except RayTaskError as e:
                    return _not_started(e)
                except RayActorError as e:
                    return _lost(e)
            return Progress(Phase.STARTING)
        try:
            launch.started = [Started.of(s) for s in ray.get(launch.start_refs)]
        except RayTaskError as e:
            return _not_started(e)
        except RayActorError as e:
            return _lost(e)
        launch.wait_refs = [r.call("wait") for r in launch.actors]
        return Progress(Phase.STARTED)

    def terminate(self, launch: Launch, grace_s: float | None) -> None:
        launch.terminating = True
        for rank in launch.actors:
            rank.call("terminate", grace_s)

    def withdraw(self, launch: Launch, grace_s: float) -> bool:
        """Stop an attempt whose start has not been seen. True when nothing of it can run:
        its GPUs were never granted, so no runner exists to start it, and it may be released
        now. Otherwise each runner is told, once, to refuse its start or to end the command it
        started (one that already exited keeps its outcome), and ``poll`` brings the answer:
        FAILED for a refused start, or STARTED and then the outcome."""
        if launch.deferred is not None:  # its ranks were never given: none will be
            launch.withdrawn = True
            return True
        if not launch.withdrawn:  # the answer comes through the start calls, not these
            for rank in launch.actors:
                rank.call("withdraw", grace_s)
            launch.withdrawn = True
        pg = self._pg(launch.job_id, launch.attempt)
        if pg is None:
            return True
        granted = placement_group_table(pg).get("state") == "CREATED"
        launch.terminating = launch.terminating or granted
        return not granted

    def read_log(self, launch: Launch, rank: int, offset: int) -> bytes | None:
        """New output of a rank from ``offset``; None if the runner is unreachable."""
        if rank >= len(launch.actors):  # found again with no rank launched
            return None
        try:
            return ray.get(launch.actors[rank].call("read_log", offset),
                           timeout=RUNNER_ANSWER_S)
        except (RayActorError, GetTimeoutError, RayTaskError):
            return None

    def release(self, job_id: int, attempt: int, ranks: int) -> None:
        """Remove the runners and the placement group of an attempt; safe to repeat."""
        found = [r for r in self._find(job_id, attempt, ranks) if r is not None]
        self._known.pop((job_id, attempt), None)
        if found:  # all at once, one wait; a rank that failed or is gone counts as done
            ray.wait([r.call("cleanup") for r in found], num_returns=len(found),
                     timeout=RUNNER_ANSWER_S)
        for r in found:
            if r.key is None:  # a runner actor of the release before
                ray.kill(r.handle, no_restart=True)
        self._remove_pg(job_id, attempt)

    def _pg(self, job_id: int, attempt: int) -> PlacementGroup | None:
        """The attempt's placement group, None if there is none."""
        try:
            return get_placement_group(pg_name(job_id, attempt))
        except ValueError:
            return None

    def _remove_pg(self, job_id: int, attempt: int) -> None:
        pg = self._pg(job_id, attempt)
        if pg is not None:
            remove_placement_group(pg)

    def runner_names(self) -> list[tuple[int, int, int]]:
        """(job id, attempt, rank) of every runner alive in this installation's namespace: the
        ranks its hosts hold, and runner actors of the release before."""
        found = [k for _, keys in self._host_keys() for k in keys]
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
