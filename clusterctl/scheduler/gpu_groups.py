"""Which nodes a job may use on a mixed fleet: nodes grouped by GPU model, and for each job the
groups it accepts in the order to try them. A job's GPUs are all of one group, so a gang never
mixes models (its ranks would run at the slowest card's pace, and NCCL across models is slow).

Typed jobs try their types in the order asked. An untyped job tries first the group whose GPUs
the queue's typed jobs want least, so the scarce H100s stay free for the jobs that can only use
them; where they want both alike, the group of the cheaper GPU-hour. On a fleet of one model,
a job that asks for nothing the fleet lacks gets ``None`` (every node): the common case costs
the pass nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from clusterctl.gpu_types import GIB, matches, model_key
from clusterctl.scheduler.placement import fits_ever
from clusterctl.scheduler.records import Ask, NodeCapacity, QueuedJob


@dataclass(frozen=True)
class Group:
    model: str | None
    """The model as a node reports it (the first node's spelling); None: not reported."""
    nodes: frozenset[str]
    gpu_mem: int | None
    """The least memory per GPU among its nodes (None if any node's is unknown)."""
    gpu_hour_cost: float = float("inf")
    """The cheapest GPU-hour among its nodes (unpriced: last)."""

    @property
    def label(self) -> str:
        return self.model or "GPUs of unknown model"


def ask_of(job: QueuedJob) -> Ask:
    return job.gpu_types, job.gpu_mem


def accepts(group: Group, ask: Ask) -> bool:
    types, mem = ask
    if mem is not None and (group.gpu_mem is None or group.gpu_mem < mem):
        return False
    return not types or (group.model is not None and any(matches(t, group.model)
                                                         for t in types))


class Fleet:
    """The groups of one pass's nodes, with the answers it has given cached by ask."""

    def __init__(self, nodes: Iterable[NodeCapacity]) -> None:
        nodes = list(nodes)
        shape = tuple((n.id, n.gpu_model, n.gpu_mem, n.gpu_hour_cost) for n in nodes)
        static = _STATIC.get(shape)
        if static is None:
            if len(_STATIC) >= 64:  # nodes come and go: keep the recent shapes only
                _STATIC.clear()
            static = _STATIC[shape] = (_groups(nodes), {})
        self.groups: list[Group] = static[0]
        self.mixed = len(self.groups) > 1
        self._accepted: dict[Ask, list[Group]] = static[1]
        """Which groups meet an ask depends on the nodes alone: shared by every pass over
        the same nodes (a replay makes hundreds of thousands of passes over one fleet)."""
        self._demand: dict[str | None, int] | None = None
        self._choices: dict[Ask, list[Group] | None] = {}

    def accepted(self, ask: Ask) -> list[Group]:
        """The groups that meet ``ask``, in the order of its types (then by model)."""
        found = self._accepted.get(ask)
        if found is None:
            types, mem = ask
            if not types:
                found = [g for g in self.groups if accepts(g, ((), mem))]
            else:
                found = []
                for t in types:
                    found += [g for g in self.groups if g not in found
                              and accepts(g, ((t,), mem))]
            self._accepted[ask] = found
        return found

    def choices(self, job: QueuedJob, asked: Mapping[Ask, int] | None = None
                ) -> list[Group] | None:
        """The groups to try for ``job``, in order; None: every node, no group to keep to.
        ``asked``: GPUs the queue's typed jobs want, per ask (``PendingQueue.asked``), read
        once per fleet (fixed for a pass)."""
        ask = ask_of(job)
        if ask in self._choices:
            return self._choices[ask]
        found: list[Group] | None = self.accepted(ask)
        if len(self.groups) <= 1 and found == self.groups:
            found = None
        elif not ask[0] and found is not None and len(found) > 1:
            demand = self.demand(asked or {})
            found = sorted(found, key=lambda g: (demand.get(g.model, 0), g.gpu_hour_cost))
        self._choices[ask] = found
        return found

    def demand(self, asked: Mapping[Ask, int]) -> dict[str | None, int]:
        """GPUs the queue's typed jobs could take from each group (read once per fleet)."""
        if self._demand is None:
            self._demand = {}
            for ask, gpus in asked.items():
                for g in self.accepted(ask):
                    self._demand[g.model] = self._demand.get(g.model, 0) + gpus
        return self._demand


_STATIC: dict[tuple[tuple[str, str | None, int | None, float | None], ...],
              tuple[list[Group], dict[Ask, list[Group]]]] = {}


def _groups(nodes: Sequence[NodeCapacity]) -> list[Group]:
    members: dict[str, list[NodeCapacity]] = {}
    for n in nodes:
        members.setdefault(model_key(n.gpu_model), []).append(n)
    return [
        Group(ns[0].gpu_model or None, frozenset(n.id for n in ns),
              None if any(n.gpu_mem is None for n in ns) else min(
                  n.gpu_mem for n in ns if n.gpu_mem is not None),
              min((n.gpu_hour_cost for n in ns if n.gpu_hour_cost is not None),
                  default=float("inf")))
        for _, ns in sorted(members.items())
    ]


def _members(group: Group, capacity: Sequence[NodeCapacity]) -> list[NodeCapacity]:
    return [n for n in capacity if n.id in group.nodes]


def inventory(fleet: Fleet, capacity: Sequence[NodeCapacity]) -> str:
    """What the fleet holds, for refusals: ``H100-80GB (2 per node, 1 node), ...``."""
    parts = []
    for g in fleet.groups:
        sizes = sorted({n.total_gpus for n in _members(g, capacity)})
        per = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        count = len(g.nodes)
        parts.append(f"{g.label} ({per} per node, {count} node{'s' if count > 1 else ''})")
    return ", ".join(parts)


def why_never(gpus: int, nodes: int, ask: Ask, capacity: Sequence[NodeCapacity]
              ) -> tuple[str, str] | None:
    """Why a request can never run on this fleet, as (the field at fault, why), or None. A
    fleet that has not reported yet refuses nothing."""
    usable = [n for n in capacity if n.total_gpus > 0]
    if not usable:
        return None
    fleet = Fleet(usable)
    types, mem = ask
    groups = fleet.accepted(ask)
    here = f"here: {inventory(fleet, usable)}"
    if not groups:
        if types and not fleet.accepted((types, None)):
            return "--gpu-type", f"no node has {' or '.join(types)} GPUs; {here}"
        assert mem is not None
        return "--gpu-mem", (f"no {' or '.join(types) + ' ' if types else ''}GPU has "
                             f"{mem / GIB:g} GiB of memory or more; {here}")
    if len(fleet.groups) == 1:  # one model: the plain words of before
        never = fits_ever(gpus, nodes, usable)
        return None if never is None else ("--gpus" if "per node" in never else "--nodes",
                                           never)
    members = [_members(g, usable) for g in groups]
    if any(fits_ever(gpus, nodes, m) is None for m in members):
        return None
    kind = f"{' or '.join(types)} " if types else ""
    if nodes == 1:
        return "--gpus", f"no node has {gpus} {kind}GPUs; {here}"
    field = "--nodes" if any(fits_ever(gpus, 1, m) is None for m in members) else "--gpus"
    return field, (f"no {nodes} nodes have {gpus} {kind}GPUs each (a job's GPUs are all of "
                   f"one model); {here}")
