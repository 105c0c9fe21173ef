"""One job request, typed, from the CLI through the API to the controller.

A request comes in people's words (``--gpus H100:2``, ``--time-limit 2h``, ``--gpu-mem 40G``,
``--after 12:ok``) or as the typed values this model holds (``gpus: 2``, ``gpu_types:
["H100"]``, ``time_limit_s: 7200``); both are parsed here, once, by the ``parsing`` functions,
and a bad value is a ``BadInput`` naming the flag. The CLI builds one from its flags (a bad
flag is exit 2 before anything is sent) and sends its typed JSON; the API's submit route takes
it as its body; the controller applies what only it knows (teams, priority limits, the audit,
whether a dependency exists). A new job field is a field here, a column, and the code that
uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from typing_extensions import Self

from clusterctl import parsing
from clusterctl.gpu_types import GIB, parse_gpu_ask
from clusterctl.notifications import parse_webhook
from clusterctl.parsing import BadInput

MAX_GPU_MEM = 1 << 50
"""A GPU memory asked beyond any card (a petabyte) is a typo."""


class Interactive(BaseModel):
    """``clusterctl run``: its user attaches to it; ``pty`` gives it a pseudo-terminal,
    ``ports`` are TCP ports it serves (``port-forward``)."""

    model_config = ConfigDict(frozen=True)

    pty: bool = False
    ports: list[int] = []


class Dependency(BaseModel):
    """``--after JOB`` (once JOB has ended) or ``JOB:ok`` (only if it succeeded)."""

    model_config = ConfigDict(frozen=True)

    job: int
    ok: bool = False


class Request(BaseModel):
    """A request typed from people's words or typed values alike (``typed`` turns either into
    the model's values), parsed once; a bad value is a ``BadInput`` naming its flag."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def typed(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @model_validator(mode="before")
    @classmethod
    def _parsed(cls, raw: Any) -> Any:
        return cls.typed(raw) if isinstance(raw, Mapping) else raw

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        """The request ``raw`` holds, or the ``BadInput`` of its first bad value."""
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise bad_input_of(e) from None


class JobRequest(Request):

    command: list[str]
    gpus: int = 1
    """GPUs per node."""
    gpu_types: list[str] | None = None
    """Any of these models, in order of preference (None: any)."""
    gpu_mem_bytes: int | None = None
    """At least this much memory per GPU."""
    nodes: int = 1
    name: str | None = None
    """None: named after its command."""
    team: str | None = None
    """None: the submitter's team."""
    priority: int = 0
    time_limit_s: int | None = None
    retries: int = 0
    env: dict[str, str] = {}
    workdir: str | None = None
    """An absolute path on the nodes to run in, instead of a shipped directory."""
    package: str | None = None
    """sha256 of the shipped directory (``POST /v1/packages``)."""
    no_preempt: bool = False
    after: list[Dependency] = []
    array: str | None = None
    """``0-31%4``: one job per index, at most 4 at once (``array_tasks``)."""
    notify: str | None = None
    """A webhook told when the job ends (whether a private host is allowed is the
    controller's setting)."""
    idle_timeout_s: int | None = None
    interactive: Interactive | None = None

    @classmethod
    def typed(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        return _typed(raw)

    def array_tasks(self) -> tuple[list[int], int | None] | None:
        """(indices, how many at once) of an array; None for one job."""
        return parsing.parse_array(self.array) if self.array is not None else None

    def wire(self) -> dict[str, Any]:
        """The typed JSON the CLI sends (what differs from the defaults)."""
        return self.model_dump(mode="json", exclude_defaults=True)


def bad_input_of(e: ValidationError) -> BadInput:
    """The ``BadInput`` a parser raised inside pydantic's validation, or one made of
    pydantic's own first complaint (a type it could not take), named by its field."""
    errors = e.errors()
    if not errors:
        return BadInput("request", "invalid")
    cause = (errors[0].get("ctx") or {}).get("error")
    if isinstance(cause, BadInput):
        return cause
    where = ".".join(str(p) for p in errors[0]["loc"]) or "request"
    return BadInput(where, errors[0]["msg"])


HUMAN_NAMES = frozenset({"gpu_type", "gpu_mem", "time_limit", "idle_timeout", "pty", "ports"})
"""People's names for what the model holds typed (``gpu_mem`` for ``gpu_mem_bytes``...)."""


def _typed(raw: Mapping[str, Any]) -> dict[str, Any]:
    """People's words and typed values alike, as the model's typed values. A name that is
    neither is refused: a misspelt ``time-limit`` silently dropped would run without one."""
    d = dict(raw)
    unknown = sorted(str(k) for k in d if k not in JobRequest.model_fields
                     and k not in HUMAN_NAMES)
    if unknown:
        raise BadInput(unknown[0][:64], "is not a field of a job request")
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
