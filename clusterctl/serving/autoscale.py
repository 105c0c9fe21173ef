"""How many replicas a service wants now, from the load its endpoint measured: pure, so the
controller and the tests ask the same rule.

Requests a second against ``--target-rps`` per replica give the number wanted, between MIN and
MAX. Up is at once (a queue grows while one waits), down only after ``down_after_s`` of wanting
fewer (load comes in bursts; a replica started again costs a cold start), one step to what the
quieter window asks. A service with MIN 0 goes to zero after ``--scale-to-zero-after`` without a
request, and back to one as soon as a request waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DOWN_AFTER_S = 60.0
"""How long a service must want fewer replicas before it gets fewer (the setting
``service_scale_down_s``)."""
ZERO_AFTER_S = 900.0
"""MIN 0 without ``--scale-to-zero-after``: the default wait before zero (15 min)."""


@dataclass(frozen=True)
class Shape:
    replicas_min: int
    replicas_max: int
    target_rps: float | None = None
    scale_to_zero_after_s: float | None = None


@dataclass(frozen=True)
class Load:
    rps: float
    """Requests a second over the endpoint's recent window."""
    waiting: int
    """Requests held or in flight now."""
    last_request_at: float | None
    """When the last request came (None: never)."""


@dataclass(frozen=True)
class Decision:
    replicas: int
    wants_fewer_since: float | None
    """When the service began to want fewer than it has (the clock of the way down)."""


def wanted(shape: Shape, load: Load, now: float) -> int:
    """Replicas the load asks for, ignoring the cooldowns."""
    n = math.ceil(load.rps / shape.target_rps - 1e-9) if shape.target_rps else 0
    if load.waiting > 0 or n > 0:
        n = max(n, 1)
    elif shape.replicas_min == 0:
        quiet_s = shape.scale_to_zero_after_s or ZERO_AFTER_S
        recent = load.last_request_at is not None and now - load.last_request_at < quiet_s
        n = 1 if recent else 0
    return max(shape.replicas_min, min(shape.replicas_max, n))


def decide(shape: Shape, load: Load, current: int, wants_fewer_since: float | None,
           now: float, down_after_s: float = DOWN_AFTER_S) -> Decision:
    """The replicas to have now, given ``current`` and how long fewer has been wanted."""
    want = wanted(shape, load, now)
    current = max(shape.replicas_min, min(shape.replicas_max, current))
    if want >= current:
        return Decision(want, None)
    since = wants_fewer_since if wants_fewer_since is not None else now
    to_zero = want == 0 and shape.replicas_min == 0
    if to_zero or now - since >= down_after_s:
        return Decision(want, None)
    return Decision(current, since)
