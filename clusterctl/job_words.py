"""A job request's values from people's words (``--gpus H100:2``, ``--time-limit 2h``,
``--after 12:ok``) or from typed values (``time_limit_s: 7200``): the one parser of a request,
with nothing but the standard library and ``parsing``.

``job_request.JobRequest`` holds what this returns, typed, and runs it as its validator; the
CLI's submit calls it directly, so that a submit neither imports nor builds pydantic's models
(a third of a submit's start) yet still refuses a bad flag (exit 2) before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusterctl import parsing
from clusterctl.gpu_types import GIB, parse_gpu_ask
from clusterctl.notifications import parse_webhook
from clusterctl.parsing import BadInput

MAX_GPU_MEM = 1 << 50
"""A GPU memory asked beyond any card (a petabyte) is a typo."""

HUMAN_NAMES = frozenset({"gpu_type", "gpu_mem", "time_limit", "idle_timeout", "pty", "ports"})
"""People's names for what the model holds typed (``gpu_mem`` for ``gpu_mem_bytes``...)."""


def wire(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The typed JSON the CLI sends for people's words ``raw``: what ``typed`` gives, less
    what is unset."""
    return {k: v for k, v in typed(raw).items() if v is not None}


def typed(raw: Mapping[str, Any]) -> dict[str, Any]:
    """People's words and typed values alike, as ``JobRequest``'s typed values (JSON's
    types: what the CLI sends); the first bad value is a ``BadInput`` naming its flag."""
    d = dict(raw)
    out: dict[str, Any] = {"command": parsing.parse_command(_list(d.get("command"), "command"))}
    out.update(_gpu_ask(d))
    out["nodes"] = parsing.parse_nodes(d.get("nodes", 1))
    out["priority"] = parsing.parse_priority(d.get("priority", 0))
    out["retries"] = parsing.parse_retries(d.get("retries", 0))
    out["time_limit_s"] = _duration(d, "time_limit", "--time-limit")
    out["idle_timeout_s"] = _duration(d, "idle_timeout", "--idle-timeout")
    env = d.get("env") or {}
    if not isinstance(env, Mapping):
        raise BadInput("--env", "must be KEY=VALUE pairs (an object of strings)")
    out["env"] = parsing.parse_env_items([(str(k), str(v)) for k, v in env.items()])
    for key, flag in (("name", "--name"), ("team", "--team")):
        if d.get(key):
            out[key] = parsing.parse_name(str(d[key]), flag)
    workdir = d.get("workdir")
    if workdir:
        if not str(workdir).startswith("/"):
            raise BadInput("--workdir", f"{workdir!r} must be an absolute path")
        out["workdir"] = str(workdir)
    if d.get("package"):
        out["package"] = str(d["package"])
    out["no_preempt"] = d.get("no_preempt", False)  # pydantic's bool: true/false, 1/0
    out["after"] = parsing.parse_after(_after_items(d.get("after")))
    if d.get("array") is not None:
        parsing.parse_array(str(d["array"]))
        out["array"] = str(d["array"])
    if d.get("notify"):
        out["notify"] = parse_webhook(str(d["notify"]), "--notify", private_ok=True)
    out["interactive"] = _interactive(d, out.get("array") is not None)
    return out


def _list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(field, "must be a list of strings")
    return value


def _gpu_ask(d: dict[str, Any]) -> dict[str, Any]:
    """``gpus`` (``2`` or ``H100:2``), ``gpu_type``/``gpu_types`` and ``gpu_mem`` (people's
    ``40G``, or GiB as a number) or ``gpu_mem_bytes``."""
    types = d.get("gpu_types") if "gpu_types" in d else d.get("gpu_type")
    count, kinds, mem = parse_gpu_ask(d.get("gpus", 1), types, d.get("gpu_mem"),
                                      parsing.MAX_GPUS_PER_NODE)
    given = d.get("gpu_mem_bytes")
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or \
                not 0 < given <= MAX_GPU_MEM:
            raise BadInput("--gpu-mem", f"{given!r} bytes is not a memory a GPU has "
                           f"(1 to {MAX_GPU_MEM // GIB:,} GiB)")
        mem = given
    return {"gpus": count, "gpu_types": kinds, "gpu_mem_bytes": mem}


def _duration(d: dict[str, Any], name: str, flag: str) -> int | None:
    """``name`` in people's words (``2h``, ``1:30:00``, seconds) or ``name_s`` in seconds."""
    value = d.get(f"{name}_s") if f"{name}_s" in d else d.get(name)
    if value in (None, ""):
        return None
    return parsing.parse_duration(str(value), flag)


def _after_items(value: Any) -> list[str]:
    """``12``, ``"12:ok,13"``, a list of those, or typed ``{"job": 12, "ok": true}``."""
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping):
            out.append(f"{item.get('job')}" + (":ok" if item.get("ok") else ""))
        else:
            out.append(str(item))
    return out


def _interactive(d: dict[str, Any], array: bool) -> dict[str, Any] | None:
    """People's ``interactive``, ``pty`` and ``ports``, or the typed object."""
    value = d.get("interactive")
    if isinstance(value, Mapping):
        pty, ports = value.get("pty", False), value.get("ports") or []
    elif value is True:
        pty, ports = d.get("pty", False), d.get("ports") or []
    elif value not in (None, False):
        raise BadInput("interactive", "must be true, false or {\"pty\": ..., \"ports\": [...]}")
    else:
        if d.get("pty") or d.get("ports"):
            raise BadInput("--pty" if d.get("pty") else "--port",
                           "is for interactive jobs (clusterctl run)")
        return None
    if array:
        raise BadInput("--array", "an interactive job is one job; submit an array instead")
    if not isinstance(ports, list):
        raise BadInput("--port", "must be a list of TCP ports")
    return {"pty": pty, "ports": parsing.parse_ports(ports)}
