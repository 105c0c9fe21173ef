"""One job request, typed, from the CLI through the API to the controller.

A request comes in people's words (``--gpus H100:2``, ``--time-limit 2h``, ``--gpu-mem 40G``,
``--after 12:ok``) or as the typed values this model holds (``gpus: 2``, ``gpu_types:
["H100"]``, ``time_limit_s: 7200``); both are parsed once, by ``job_words.typed`` (this
model's validator), and a bad value is a ``BadInput`` naming the flag. The CLI's submit runs
that parser on its flags (a bad flag is exit 2 before anything is sent) and sends the typed
JSON; the API's submit route takes it as its body, this model; the controller applies what
only it knows (teams, priority limits, the audit, whether a dependency exists). A new job
field is a field here, its words in ``job_words``, a column, and the code that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from typing_extensions import Self

from clusterctl import job_words, parsing
from clusterctl.parsing import BadInput


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
        """A name that is neither a field nor people's word for one is refused: a misspelt
        ``time-limit`` silently dropped would run without one."""
        unknown = sorted(str(k) for k in raw if k not in cls.model_fields
                         and k not in job_words.HUMAN_NAMES)
        if unknown:
            raise BadInput(unknown[0][:64], "is not a field of a job request")
        return job_words.typed(raw)

    def array_tasks(self) -> tuple[list[int], int | None] | None:
        """(indices, how many at once) of an array; None for one job."""
        return parsing.parse_array(self.array) if self.array is not None else None


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
