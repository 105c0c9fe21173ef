"""Job dependencies (``--after JOB[:ok]``): whether a pending job may be considered yet.

Checked before the policy runs, so the policy never sees a job that may not start; the
controller cancels a job whose dependency can no longer be met.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clusterctl.states import ENDED


@dataclass(frozen=True)
class Blocked:
    ready: bool
    broken: bool = False
    detail: str = ""


READY = Blocked(ready=True)


def check(after: Iterable[Mapping[str, Any]] | None, states: Mapping[int, str]) -> Blocked:
    """``states``: the current state of each dependency (a missing one does not exist)."""
    waiting = []
    for dep in after or ():
        job, ok = int(dep["job"]), bool(dep.get("ok"))
        state = states.get(job)
        if state is None:
            return Blocked(False, True, f"dependency {job} does not exist")
        if ok and state in ENDED and state != "SUCCEEDED":
            return Blocked(False, True, f"dependency {job} ended {state}, not SUCCEEDED")
        if state not in ENDED:
            waiting.append(f"{job} ({state})")
    if waiting:
        return Blocked(False, detail="after job " + ", ".join(waiting))
    return READY


def ids(after: Iterable[Mapping[str, Any]] | None) -> list[int]:
    return [int(d["job"]) for d in after or ()]
