"""Job states and the one table of transitions between them.

Every state change in the store goes through :func:`check_transition`, so a transition that is
not in :data:`TRANSITIONS` is a bug that raises rather than a silent corruption of history.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    LOST = "LOST"

    def __str__(self) -> str:
        return self.value


S = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # Launch, or cancelled while queued.
    S.PENDING: frozenset({S.STARTING, S.CANCELLED}),
    # All ranks started; launch failed (FAILED) or was abandoned before any process started
    # (PENDING); cancelled while starting; a runner died before reporting (LOST).
    S.STARTING: frozenset({S.RUNNING, S.PENDING, S.FAILED, S.CANCELLED, S.LOST}),
    # Ended by itself, by cancel, by its time limit, or by losing its node. PENDING is preemption.
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMEOUT, S.LOST, S.PENDING}),
    # A lost job is requeued while retries remain, otherwise LOST is where it ends.
    S.LOST: frozenset({S.PENDING}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.TIMEOUT: frozenset(),
}

ACTIVE: frozenset[JobState] = frozenset({S.STARTING, S.RUNNING})
"""States in which a job holds GPUs."""

TERMINAL: frozenset[JobState] = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMEOUT})
"""States a job never leaves. LOST is terminal only once no retries remain."""

ENDED: frozenset[JobState] = TERMINAL | {S.LOST}
"""States a job is seen in once it will not run again: what ``clusterctl wait`` waits for and
what ``--after`` dependencies end in. A LOST job is seen as LOST only once its retries are used
up, since the requeue shares the transaction that sets it."""

LIVE: frozenset[JobState] = frozenset({S.PENDING}) | ACTIVE
"""Queued or holding GPUs (the controller's ``clusterctl_jobs`` metric counts these)."""

LISTED: frozenset[JobState] = LIVE | {S.LOST}
"""What ``clusterctl jobs`` shows without ``--all``: live jobs, and lost ones, which need a
look."""


def ordered(states: frozenset[JobState]) -> list[JobState]:
    """The states of a set in lifecycle order (for output that must not change between runs)."""
    return [s for s in JobState if s in states]


IDLE_END = "idle: GPUs under"
"""How the reason of a job idle reclaim ended begins (``idle: GPUs under 10% for 30m``)."""


class IllegalTransition(RuntimeError):
    """A state change that the transition table does not allow: always a bug."""


def check_transition(current: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"job state {current} cannot become {new}")

