"""GPU types as people write them and as drivers report them (pure; issue #18's groundwork).

A type someone asks for (``H100``, ``a100-80gb``, ``4090``) matches a model a node reports
(``NVIDIA H100 80GB HBM3``, ``NVIDIA A100-SXM4-80GB``, ``NVIDIA GeForce RTX 4090``) when each
of its words appears in the model's words in order, case aside; a word may stand for a longer
one that only adds letters (``H100`` for ``H100NVL``), never digits (``H10`` is not ``H100``).
That is how Slurm's typed GRES, SkyPilot's accelerator names and people's shorthand line up
with what NVML says, without a table of every model to keep current.
"""

from __future__ import annotations

import re

from clusterctl.parsing import BadInput, parse_count

_WORDS = re.compile(r"[a-z0-9.]+")
_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}\Z")


def _ascii_digits(text: str) -> bool:
    """0-9 only: ``str.isdigit`` also takes "²", which ``int`` then refuses."""
    return text.isascii() and text.isdigit()


GIB = 1 << 30


def words(model: str) -> list[str]:
    return _WORDS.findall(model.lower())


def _word_matches(wanted: str, have: str) -> bool:
    if have == wanted:
        return True
    return have.startswith(wanted) and not have[len(wanted)].isdigit()


def matches(wanted: str, model: str) -> bool:
    """Whether the type someone asked for names this model."""
    want, have = words(wanted), words(model)
    if not want:
        return False
    i = 0
    for w in have:
        if i < len(want) and _word_matches(want[i], w):
            i += 1
    return i == len(want)


def parse_type(text: str, field: str = "--gpu-type") -> str:
    text = text.strip()
    if not _TYPE_RE.match(text) or not words(text):
        raise BadInput(field, f"{text!r} is not a GPU type (letters, digits, '-', '_', '.': "
                       "H100, A100-80GB, 4090)")
    return text


def parse_gpu_request(text: str | int, max_gpus: int = 1024) -> tuple[str | None, int]:
    """``--gpus [TYPE:]N``: the type asked for (None: any) and the count per node."""
    raw = str(text).strip()
    kind, sep, count = raw.rpartition(":")
    if not sep:
        return None, parse_count(raw, "--gpus", max_gpus)
    return parse_type(kind, "--gpus"), parse_count(count, "--gpus", max_gpus)


def parse_gpu_types(text: str) -> list[str]:
    """``--gpu-type A100,H100``: any of them, in order of preference."""
    out: list[str] = []
    for part in text.split(","):
        kind = parse_type(part)
        if kind.lower() not in (o.lower() for o in out):
            out.append(kind)
    if not out:
        raise BadInput("--gpu-type", "name at least one GPU type")
    return out


_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(g|gb|gib|m|mb|mib|t|tb|tib)?$", re.I)
_MEM_UNITS = {"g": GIB, "m": 1 << 20, "t": 1 << 40}


def parse_gpu_mem(text: str) -> int:
    """``--gpu-mem 40G``: at least this much memory per GPU, in bytes (G, GB and GiB all mean
    GiB here, as nvidia-smi's MiB-based figures do)."""
    m = _MEM_RE.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise BadInput("--gpu-mem", f"{text!r} is not a memory size (40G, 24GiB, 80000M)")
    unit = (m.group(2) or "g")[0].lower()
    if len(m.group(1)) > 16 or float(m.group(1)) * _MEM_UNITS[unit] > 1 << 50:
        raise BadInput("--gpu-mem", f"{text!r} is more memory than any GPU has")
    return int(float(m.group(1)) * _MEM_UNITS[unit])


def model_key(model: str | None) -> str:
    """A model as reported, for grouping GPUs of the same model (case and spacing aside)."""
    return (model or "").strip().lower()


def parse_fleet(text: str, field: str = "--cluster") -> list[tuple[int, int, str | None]]:
    """``2x8:H100,4x8:A100,4x4:RTX-4090`` (or a plain ``16x8``): (nodes, GPUs per node, type
    or None) for each group of identical machines."""
    out: list[tuple[int, int, str | None]] = []
    for part in text.split(","):
        shape, sep, kind = part.strip().partition(":")
        m = re.fullmatch(r"(\d{1,6})x(\d{1,5})", shape.strip().lower())
        if not m or not 1 <= int(m.group(1)) <= 100_000 or not 1 <= int(m.group(2)) <= 1024:
            raise BadInput(field, f"{part.strip()!r} is not NODESxGPUS[:TYPE] (2x8:H100; up to "
                           "100000 nodes of 1024 GPUs)")
        out.append((int(m.group(1)), int(m.group(2)), parse_type(kind, field) if sep else None))
    return out


def parse_models(spec: str, count: int | None) -> list[str]:
    """The model of each GPU of one machine: ``H100-80GB`` for all ``count`` of them, or
    ``H100-80GB:2+RTX-4090:2`` for a machine of two models (counts adding up to ``count``,
    where it is given). Raises ValueError saying what is allowed."""
    parts = spec.split("+")
    if len(parts) == 1 and not _ascii_digits(spec.rpartition(":")[2].strip()):
        if count is None:
            raise ValueError(f"{spec!r} is not MODEL:COUNT+MODEL:COUNT (H100-80GB:2+RTX-4090:2)")
        return [spec] * count
    out: list[str] = []
    for part in parts:
        name, _, n = part.rpartition(":")
        if not name.strip() or not _ascii_digits(n.strip()) or not 1 <= int(n) <= 1024:
            raise ValueError(f"{part!r} is not MODEL:COUNT (MODEL:2+OTHER:2)")
        out += [name.strip()] * int(n)
    if count is not None and len(out) != count:
        raise ValueError(f"the counts add up to {len(out)} GPUs, not --simulate-gpus {count}")
    return out


def parse_gpu_ask(gpus: str | int, gpu_type: str | list[str] | None = None,
                  gpu_mem: str | int | None = None, max_gpus: int = 1024
                  ) -> tuple[int, list[str] | None, int | None]:
    """What a submission asks of its GPUs: (GPUs per node, types in order of preference or
    None for any, least memory per GPU in bytes or None). ``--gpus H100:8`` and
    ``--gpu-type`` both name types; together they must agree."""
    kind, count = parse_gpu_request(gpus, max_gpus)
    types: list[str] | None = None
    if gpu_type not in (None, "", []):
        text = ",".join(gpu_type) if isinstance(gpu_type, list) else str(gpu_type)
        types = parse_gpu_types(text)
    if kind is not None:
        if types is not None and [t.lower() for t in types] != [kind.lower()]:
            raise BadInput("--gpus", f"names type {kind} and --gpu-type {','.join(types)}; "
                           "give the type in one of them")
        types = [kind]
    mem = None
    if gpu_mem not in (None, ""):
        mem = parse_gpu_mem(str(gpu_mem))
    return count, types, mem


def describe_ask(types: list[str] | None, mem: int | None) -> str:
    """``H100 or A100, 40 GiB+``: what a job asked of its GPUs, for ``jobs`` and ``show``."""
    parts = [" or ".join(types)] if types else []
    if mem is not None:
        parts.append(f"{mem / GIB:g} GiB+")
    return ", ".join(parts)


_NAME_MEM = re.compile(r"(\d+)\s*gb\b", re.I)
_KNOWN_MEM_GIB = {"H200": 140, "4090": 24, "3090": 24, "L40S": 48, "L40": 48, "L4": 24,
                  "A10": 24, "A6000": 48, "T4": 16}
"""Cards whose names do not say their memory, as NVML names them (a real H200 reports
143,771 MiB: 140 GiB, not the 141 GB of its data sheet)."""


def model_memory(model: str | None) -> int | None:
    """The memory a model's name states (``NVIDIA A100-SXM4-80GB``: 80 GiB) or that a card
    of that name has (``GeForce RTX 4090``: 24 GiB), for nodes whose agent has not reported
    yet; None where neither says (an A100 without its size)."""
    m = _NAME_MEM.search(model or "")
    if m:
        return int(m.group(1)) * GIB
    for name, gib in _KNOWN_MEM_GIB.items():
        if model and matches(name, model):
            return gib * GIB
    return None
