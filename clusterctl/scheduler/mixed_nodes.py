"""A machine whose GPUs are of several models (two H100s beside two RTX 4090s) is, for the pass,
one node per model, ``NODE#model``, so a job's GPUs are all of the model it accepts and the
groups of ``gpu_groups.py`` hold a machine's GPUs by model.

Ray counts a node's GPUs as one pool and hands out any of them, so on such a machine the
controller picks the devices itself (the free ones of the model the pass chose), keeps them
with the job, and the runner sets ``CUDA_VISIBLE_DEVICES`` to them: what Slurm does with typed
GRES (``Name=gpu Type=a100 File=/dev/nvidia[0-1]``). A machine of one model is left as it was:
one node, Ray picks its devices.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from clusterctl.gpu_types import model_key
from clusterctl.scheduler.records import NodeCapacity

SEP = "#"
"""Between a Ray node id (hex) and a model, in the ids of a mixed machine's parts."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as the node's agent last read it."""

    index: int
    model: str | None
    memory: int | None
    """Bytes; None: not read."""


def by_model(gpus: Sequence[Gpu]) -> dict[str, list[Gpu]]:
    """A machine's GPUs grouped by model, in the order of their first index."""
    groups: dict[str, list[Gpu]] = {}
    for g in sorted(gpus, key=lambda g: g.index):
        groups.setdefault(model_key(g.model), []).append(g)
    return groups


def is_mixed(gpus: Sequence[Gpu], ray_gpus: int) -> bool:
    """Split only where the agent read every GPU Ray counts: were the two to disagree, devices
    picked from the agent's list could be ones Ray never gave out."""
    return len(gpus) == ray_gpus and len(by_model(gpus)) > 1


def part_id(node_id: str, key: str) -> str:
    return f"{node_id}{SEP}{key}"


def node_of(node_id: str) -> str:
    """The Ray node of an id the pass placed on (a part's, or a whole node's own)."""
    return node_id.split(SEP, 1)[0]


def split(node: NodeCapacity, gpus: Sequence[Gpu], held: Collection[int],
          held_elsewhere: int = 0) -> list[NodeCapacity]:
    """The parts of a mixed machine: one per model, with the devices ``held`` by its running
    jobs taken out. ``held_elsewhere``: GPUs its running jobs hold without known devices (a job
    started before its agent reported two models); they are taken from the first parts that
    have them free, so the machine as a whole never looks freer than Ray's count."""
    parts = []
    spare = held_elsewhere
    for key, members in by_model(gpus).items():
        free = sum(1 for g in members if g.index not in held)
        taken = min(spare, free)
        spare -= taken
        mems = [g.memory for g in members if g.memory is not None]
        parts.append(replace(
            node, id=part_id(node.id, key), total_gpus=len(members),
            free_gpus=free - taken,
            gpu_model=members[0].model or node.gpu_model,
            gpu_mem=min(mems) if len(mems) == len(members) else None))
    return parts


def pick(gpus: Sequence[Gpu], part: str, held: Collection[int], count: int
         ) -> tuple[int, ...]:
    """``count`` free devices of the part's model, lowest index first."""
    key = part.split(SEP, 1)[1]
    free = [g.index for g in by_model(gpus).get(key, []) if g.index not in held]
    if len(free) < count:
        raise ValueError(f"{part} has {len(free)} free GPUs, not {count}")
    return tuple(free[:count])


def parts_of(node_ids: Sequence[str], devices: Sequence[Sequence[int]] | None,
             gpus_of: Mapping[str, Sequence[Gpu]]) -> tuple[str, ...]:
    """A running job's nodes as the pass sees them: on a mixed machine, the part of the model
    of its devices (``gpus_of``: Ray node id → its GPUs, mixed machines only)."""
    out = []
    for rank, node in enumerate(node_ids):
        gpus = gpus_of.get(node)
        mine = devices[rank] if devices is not None and rank < len(devices) else ()
        model = next((model_key(g.model) for g in gpus or () if g.index in mine), None)
        out.append(node if model is None else part_id(node, model))
    return tuple(out)
