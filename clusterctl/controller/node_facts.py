"""What the scheduler knows of the nodes beyond Ray's counts: each GPU's model and memory as
its agent reported them (NVML's words), what a GPU-hour of each node costs, and from these the
capacity a pass sees: free and held GPUs per node, a machine of several models as one node per
model (``scheduler/mixed_nodes.py``), and the devices a start on such a machine gets."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar

from clusterctl.executor.types import NodeInfo
from clusterctl.gpu_types import model_memory
from clusterctl.scheduler import mixed_nodes
from clusterctl.scheduler.records import NodeCapacity
from clusterctl.store import Job, SampleStore

T = TypeVar("T")

FACTS_RETRY_S = 2.0
"""How soon the GPUs' facts are read again while a node's agent has not reported every GPU Ray
counts (a node just joined): its models decide where jobs may go, a machine of several models
is split only once they are known."""


def gpus_reported(samples: SampleStore) -> dict[str, list[mixed_nodes.Gpu]]:
    """Node name → its GPUs (model, memory) as its agent last read them."""
    facts: dict[str, list[mixed_nodes.Gpu]] = {}
    for d in samples.devices():
        facts.setdefault(d.node, []).append(mixed_nodes.Gpu(d.gpu_index, d.model,
                                                            d.memory_total))
    return facts


def ranks(job: Job) -> list[tuple[str, list[int] | None]]:
    """Per rank of a placed job: its Ray node, and the devices the controller picked there
    (None where Ray picked them)."""
    devices = job.gpu_devices or []
    return [(node, devices[rank] if rank < len(devices) else None)
            for rank, node in enumerate(job.placement or [])]


class NodeFacts:
    def __init__(self, gpu_facts: Callable[[], Mapping[str, Sequence[mixed_nodes.Gpu]]] = dict,
                 gpu_hour_costs: Callable[[], Mapping[str, float]] = dict,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._read_gpu_facts, self._read_gpu_hour_costs = gpu_facts, gpu_hour_costs
        self.monotonic = monotonic
        self.gpus: Mapping[str, Sequence[mixed_nodes.Gpu]] = {}
        """Node name → its GPUs (model, memory) as its agent last reported them: NVML's
        words, over Ray's short ``accelerator_type``."""
        self.read_at = -1e18
        self.several_models: set[str] = set()
        """Names of the nodes whose GPUs are of several models (as last read)."""
        self.gpu_hour_costs: Mapping[str, float] = {}
        """Node name → what a GPU-hour of it costs (the inventory's capacity rate)."""
        self.nodes: list[NodeInfo] = []

    def refresh(self, nodes: list[NodeInfo], every_s: float) -> None:
        """Ray's nodes as of now; the facts read again every ``every_s`` (sooner while a
        node's agent has not reported all its GPUs yet)."""
        self.nodes = nodes
        unread = any(n.alive and n.gpus and len(self.gpus.get(n.name, ())) != n.gpus
                     for n in nodes)
        if self.monotonic() - self.read_at >= (FACTS_RETRY_S if unread else every_s):
            self.read()
            self.gpu_hour_costs = self._read_gpu_hour_costs()

    def refused_after_reading(self, check: Callable[[], T | None]) -> T | None:
        """``check``'s refusal (of a request, on these facts), asked again on facts read anew:
        an agent may have reported since the last read (a node that just joined reports its
        models within seconds, and ``nodes`` shows them at once), and a request is refused
        only on what is known now. One small read per refusal, none per request accepted."""
        never = check()
        if never is not None:
            self.read()
            never = check()
        return never

    def read(self) -> None:
        self.read_at = self.monotonic()
        facts = self._read_gpu_facts()
        self.several_models = {name for name, gpus in facts.items()
                               if len({mixed_nodes.model_key(g.model) for g in gpus}) > 1}
        self.gpus = facts

    def mixed(self) -> dict[str, Sequence[mixed_nodes.Gpu]]:
        """Ray node id → its GPUs, for the machines whose GPUs are of several models."""
        return {n.id: gpus for n in self.nodes if n.name in self.several_models
                and mixed_nodes.is_mixed(gpus := self.gpus.get(n.name, ()), n.gpus)}

    def capacity(self, active: list[Job], drained: Collection[str],
                 suspects: Collection[str]) -> list[NodeCapacity]:
        """Each node's GPUs, free and held; a machine of several models as one node per
        model (``mixed_nodes``), its held devices as its jobs keep them."""
        held: Counter[str] = Counter()
        devices: dict[str, set[int]] = {}
        for job in active:
            for node_id, picked in ranks(job):
                if picked is not None:
                    devices.setdefault(node_id, set()).update(picked)
                else:
                    held[node_id] += job.gpus
        out = []
        for n in self.nodes:
            gpus = self.gpus.get(n.name, ())
            mems = [g.memory for g in gpus if g.memory]
            whole = NodeCapacity(
                n.id, n.gpus, max(0, n.gpus - held[n.id] - len(devices.get(n.id, ()))),
                schedulable=n.alive and n.gpus > 0 and n.name not in drained
                and n.id not in suspects, drained=n.name in drained,
                gpu_model=next((g.model for g in gpus if g.model), None) or n.gpu_model,
                gpu_mem=min(mems) if mems else model_memory(n.gpu_model),
                gpu_hour_cost=self.gpu_hour_costs.get(n.name))
            if n.name in self.several_models and mixed_nodes.is_mixed(gpus, n.gpus):
                out += mixed_nodes.split(whole, gpus, devices.get(n.id, ()), held[n.id])
            else:
                out.append(whole)
        return out

    def place(self, job: Job, node_ids: Sequence[str], active: list[Job]
              ) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...] | None]:
        """The Ray nodes of a start and, on a machine of several models, the devices: the
        free ones of the model the pass chose (not held by ``active``, which holds the starts
        made earlier in this pass too)."""
        if not any(mixed_nodes.SEP in n for n in node_ids):
            return tuple(node_ids), None
        mixed = self.mixed()
        picked: list[tuple[int, ...]] = []
        for node_id in node_ids:
            ray_id = mixed_nodes.node_of(node_id)
            held = {d for j in active for n, mine in ranks(j)
                    if n == ray_id and mine for d in mine}
            picked.append(mixed_nodes.pick(mixed.get(ray_id, ()), node_id, held, job.gpus))
        return tuple(mixed_nodes.node_of(n) for n in node_ids), tuple(picked)
