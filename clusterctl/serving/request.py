"""One service request, typed, from ``clusterctl serve`` (or a file) through the API to the
controller: a name, how many replicas and when to add or drop them, what answers "ready", and
the replica itself as a job request (its command, GPUs, team, environment, directory).

As with ``job_request.py``, people's words (``--replicas 1:4``, ``--scale-to-zero-after 15m``)
and typed values (``replicas_min: 1``) are both parsed here, once, and a bad value is a
``BadInput`` naming the flag; the CLI refuses it before anything is sent, the API with a 422.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from clusterctl import parsing
from clusterctl.job_request import JobRequest, Request
from clusterctl.parsing import BadInput

MAX_REPLICAS = 64
"""Replicas of one service: more is a typo (a fleet has a few dozen GPUs)."""
VERBS = frozenset({"list", "show", "logs", "scale", "stop", "key"})
"""``serve``'s own words, which a service may not be called."""
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
_HEALTH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/%-]{0,200}")
REPLICA_FIELDS = frozenset({"command", "gpus", "gpu_type", "gpu_types", "gpu_mem",
                            "gpu_mem_bytes", "team", "priority", "env", "workdir", "package",
                            "no_preempt"})
"""What of a job request a replica takes: one node, no array, no time limit (a service runs
until stopped), no dependency, nothing interactive."""


class ServiceRequest(Request):
    name: str
    """Part of the endpoint's path (``/services/NAME/``): lowercase letters, digits, '-'."""
    replicas_min: int = 1
    replicas_max: int = 1
    target_rps: float | None = None
    """Requests a second one replica is meant to take (autoscaling's aim)."""
    scale_to_zero_after_s: int | None = None
    """With ``replicas_min`` 0: no replica after this long without a request."""
    health: str = "/healthz"
    """The path that answers 200 once a replica is ready."""
    price_per_1k: float | None = None
    """What 1,000 requests would cost from an API provider, USD, to compare with."""
    replica: JobRequest

    @classmethod
    def typed(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        return _typed(raw)

    def wire(self) -> dict[str, Any]:
        """The typed JSON the CLI sends (MIN and MAX always: either alone reads otherwise)."""
        return {**self.model_dump(mode="json", exclude_defaults=True),
                "replicas_min": self.replicas_min, "replicas_max": self.replicas_max}


def parse_replicas(text: str) -> tuple[int, int]:
    """``MIN:MAX`` (``0:4``), or ``N`` for ``N:N``."""
    lo, _, hi = str(text).strip().partition(":")
    hi = hi or lo
    if not (lo.isdigit() and hi.isdigit()) or int(hi) < 1 or int(hi) > MAX_REPLICAS:
        raise BadInput("--replicas", f"{text!r} is not MIN:MAX with 0 <= MIN <= MAX and "
                       f"1 <= MAX <= {MAX_REPLICAS}")
    if int(lo) > int(hi):
        raise BadInput("--replicas", f"{text!r}: MIN is above MAX")
    return int(lo), int(hi)


def parse_service_name(text: str) -> str:
    if not _NAME.fullmatch(text) or text in VERBS:
        raise BadInput("NAME", f"{text!r} must be 1-40 lowercase letters, digits or '-' "
                       f"(not starting or ending with '-'), and not {', '.join(sorted(VERBS))}")
    return text


def _positive(value: Any, flag: str, most: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0 < number <= most:
        raise BadInput(flag, f"{value!r} is not a number above 0 and at most {most:g}")
    return number


def _typed(raw: Mapping[str, Any]) -> dict[str, Any]:
    d = dict(raw)
    known = set(ServiceRequest.model_fields) | {"replicas", "scale_to_zero_after"}
    unknown = sorted(str(k) for k in d if k not in known)
    if unknown:
        raise BadInput(unknown[0][:64], "is not a field of a service request")
    out: dict[str, Any] = {"name": parse_service_name(str(d.get("name", "")))}
    if "replicas" in d:
        out["replicas_min"], out["replicas_max"] = parse_replicas(str(d["replicas"]))
    else:
        low = d.get("replicas_min", 1)
        high = d.get("replicas_max", low if str(low) != "0" else 1)  # MIN alone: MIN:MIN
        out["replicas_min"], out["replicas_max"] = parse_replicas(f"{low}:{high}")
    if d.get("target_rps") is not None:
        out["target_rps"] = _positive(d["target_rps"], "--target-rps", 1e6)
    after = d.get("scale_to_zero_after_s", d.get("scale_to_zero_after"))
    if after not in (None, ""):
        out["scale_to_zero_after_s"] = parsing.parse_duration(str(after),
                                                              "--scale-to-zero-after")
        if out["replicas_min"] != 0:
            raise BadInput("--scale-to-zero-after", "needs --replicas 0:MAX (MIN 0)")
    health = str(d.get("health", "/healthz"))
    if not _HEALTH.fullmatch(health):
        raise BadInput("--health", f"{health[:80]!r} must be a path beginning with '/'")
    out["health"] = health
    if d.get("price_per_1k") is not None:
        out["price_per_1k"] = _positive(d["price_per_1k"], "--price-per-1k", 1e6)
    replica = d.get("replica")
    if not isinstance(replica, Mapping):
        raise BadInput("replica", "must be the replica's job request (command, gpus, ...)")
    extra = sorted(str(k) for k in replica if k not in REPLICA_FIELDS)
    if extra:
        raise BadInput(extra[0][:64], "is not something a service's replica takes")
    out["replica"] = JobRequest.parse(replica)
    return out
