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



TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # Launch, or cancelled while queued.
    JobState.PENDING: frozenset({JobState.STARTING, JobState.CANCELLED}),
    # All ranks started; launch failed (FAILED) or was abandoned before any process started
    # (PENDING); cancelled while starting; a runner died before reporting (LOST).
    JobState.STARTING: frozenset({JobState.RUNNING, JobState.PENDING, JobState.FAILED,
                                  JobState.CANCELLED, JobState.LOST}),
    # Ended by itself, by cancel, by its time limit, or by losing its node. PENDING is preemption.
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                                 JobState.TIMEOUT, JobState.LOST, JobState.PENDING}),
    # A lost job is requeued while retries remain, otherwise LOST is where it ends.
    JobState.LOST: frozenset({JobState.PENDING}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.TIMEOUT: frozenset(),
}

ACTIVE: frozenset[JobState] = frozenset({JobState.STARTING, JobState.RUNNING})
"""States in which a job holds GPUs."""

TERMINAL: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED,
                                           JobState.CANCELLED, JobState.TIMEOUT})
"""States a job never leaves. LOST is terminal only once no retries remain."""

ENDED: frozenset[JobState] = TERMINAL | {JobState.LOST}
"""States a job is seen in once it will not run again: what ``clusterctl wait`` waits for and
what ``--after`` dependencies end in. A LOST job is seen as LOST only once its retries are used
up, since the requeue shares the transaction that sets it."""

LIVE: frozenset[JobState] = frozenset({JobState.PENDING}) | ACTIVE
"""Queued or holding GPUs (the controller's ``clusterctl_jobs`` metric counts these)."""

LISTED: frozenset[JobState] = LIVE | {JobState.LOST}
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

