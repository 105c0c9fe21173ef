"""The plain values a scheduling pass reads and returns.

The live scheduler builds them from database rows and Ray's node list; the trace simulator
builds them from its own event loop. Neither the policy nor these values know which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

Ask = tuple[tuple[str, ...], int | None]
"""What a job asks of its GPUs: (types, least memory per GPU); jobs asking the same share
one answer of a pass."""


@dataclass(frozen=True)
class QueuedJob:
    id: int
    priority: int
    submitted_at: float
    gpus: int
    """GPUs per node."""
    nodes: int = 1
    team: str = ""
    user: str = ""
    time_limit_s: float | None = None
    preemptible: bool = True
    """False for ``--no-preempt``: such a job runs only inside its team's quota."""
    array_id: int | None = None
    array_limit: int | None = None
    """At most this many tasks of the array run at once (``--array 0-31%4``)."""
    reclaiming: bool = False
    """Borrowed GPUs were preempted for it (the caller remembers ``Decision.preemptions``'
    ``for_job`` until it starts): it goes first, so that nothing else takes them."""
    demoting: bool = False
    """Its team's jobs were demoted for it (``Preemption.demotion``): it goes first too,
    whatever its tier."""
    gpu_types: tuple[str, ...] = ()
    """Any of these GPU types, in order of preference (``gpu_types.matches``); empty: any."""
    gpu_mem: int | None = None
    """At least this much memory per GPU, in bytes."""
    attained_gpu_s: float = 0.0
    """GPU-seconds its earlier attempts held (preempted, retried): for a job without a time
    limit, what ranks it (``PolicyConfig.demote_after_gpu_s``)."""

    @property
    def total_gpus(self) -> int:
        return self.gpus * self.nodes


@dataclass(frozen=True)
class RunningJob:
    id: int
    team: str
    user: str
    node_ids: tuple[str, ...]
    """One node per rank."""
    gpus: int
    """GPUs per node."""
    started_at: float
    time_limit_s: float | None = None
    preemptible: bool = True
    terminating: bool = False
    """Signalled (preempted or cancelled): its GPUs come free within the grace period."""
    array_id: int | None = None
    submitted_at: float | None = None
    """With it, a job that started only after ``starve_after_s`` of waiting is never preempted
    (else it could be preempted and starve again, over and over)."""
    attained_gpu_s: float = 0.0
    """GPU-seconds its earlier attempts held; this attempt's come on top (``attained``)."""
    demotable: bool = True
    """False for what runs until stopped by design (a service's replica, an interactive
    session): attained service never demotes it, whatever it has had."""

    @property
    def total_gpus(self) -> int:
        return self.gpus * len(self.node_ids)

    def attained(self, now: float) -> float:
        """GPU-seconds it has had over all its attempts, this one up to ``now``."""
        return self.attained_gpu_s + self.total_gpus * max(0.0, now - self.started_at)


@dataclass(frozen=True)
class NodeCapacity:
    id: str
    total_gpus: int
    free_gpus: int
    schedulable: bool = True
    """False for a node that is drained, dead or has no GPUs."""
    drained: bool = False
    """Drained by an admin (so not schedulable): a job that waits for its GPUs says so."""
    gpu_model: str | None = None
    """As the driver reports it (``NVIDIA H100 80GB HBM3``); None: not known."""
    gpu_mem: int | None = None
    """Memory per GPU, in bytes; None: not known (a job that asks for memory skips it)."""
    gpu_hour_cost: float | None = None
    """What one of its GPU-hours costs (the inventory's capacity rate); None: not priced."""


@dataclass(frozen=True)
class FairShareUsage:
    """Recent GPU use with exponential decay (GPU-seconds, weighted by ``2^(-age/half_life)``)."""

    team: dict[str, float] = field(default_factory=dict)
    user: dict[tuple[str, str], float] = field(default_factory=dict)
    """Keyed by (team, user)."""
    users_per_team: dict[str, int] | None = None
    """How many users of each team ``user`` holds, where the caller keeps the count; with it,
    ``team`` is each team's total over its users (as it is when both come from the same
    intervals), so a pass need not walk every user (a replay holds every user of a year)."""


class Blocking(str, Enum):
    """What a pass does when the next job in order does not fit."""

    RESERVE = "reserve"
    """EASY backfill: the first blocked job gets a reservation; later jobs start only where they
    do not delay it."""
    STRICT = "strict"
    """FIFO: nothing behind the first blocked job starts."""
    SKIP = "skip"
    """Greedy first fit: later jobs start wherever they fit (what pending tasks in plain Ray get;
    large jobs can starve)."""


@dataclass(frozen=True)
class PolicyConfig:
    """The policy's knobs. The defaults are the controller's documented defaults; the simulator's
    baselines are other settings of the same pass (``clusterctl/simulate/baselines.py``)."""

    fair_share: bool = True
    """Order by quota tier, then priority, then fair share and age. False: priority, then submit
    order (quotas, fair share and preemption off)."""
    blocking: Blocking = Blocking.RESERVE
    preempt: bool = True
    """Reclaim borrowed GPUs by preemption for a team under its quota."""
    quotas: dict[str, float] = field(default_factory=dict)
    """Guaranteed GPUs per team over all types (resolved: every team that has jobs has an
    entry; a team with ``type_quotas`` has their sum)."""
    type_quotas: dict[str, dict[str, float]] = field(default_factory=dict)
    """Guaranteed GPUs per team and GPU type, for the teams whose quota is per type
    (``quotas.py``): borrowing beyond them and reclaiming them happen within a type."""
    half_life_s: float = 7 * 86400.0
    """Decay of recent usage for fair share (Slurm's ``PriorityDecayHalfLife`` default)."""
    max_age_s: float = 1.5 * 86400.0
    """Waiting this long gives the full age factor (Slurm's ``PriorityMaxAge``; 7 days in the
    ``guarded`` policy). Past it the age factor stays at 1, so jobs that have all waited that
    long are ordered by their other factors again, not by how long they waited."""
    weight_team: float = 1.0
    weight_user: float = 0.5
    weight_age: float = 2.5
    weight_short: float = 5.0
    """Short-job factor: 1 for a time limit up to an hour, falling to 0 past two days (by class,
    ``pending.LENGTH_CLASSES_S``). Shorter limits start sooner, which cuts the average wait and
    completion time the most (shortest-job-first) and rewards honest limits. Its weight (5)
    against the age factor's (2.5, full after 1.5 days) was chosen on Philly's 16 x 8 and 24 x 8
    scenarios and checked on five mixed-fleet months (docs/scheduling.md): a job that has
    waited 1.5 days ranks with a fresh job of a 12-hour limit."""
    starve_after_s: float | None = None
    """With a value: the oldest job pending this long goes to the front of the queue, with a
    reservation, whatever its team's share (the ``guarded`` policy: a day). Off by default: in
    a long overload every job gets that old, and the front of the queue became first come,
    first served for all of them (Philly 16 x 8: 4.5x the clairvoyant average completion time
    with it, 1.1x without). Fair share still decides between teams; within a team, short jobs
    go first and a long job waits out the overload."""
    default_time_limit_s: float = 24 * 3600.0
    """What backfill assumes for a job without a time limit."""
    backfill_depth: int = 1000
    """Jobs looked at after the reservation in one pass (Slurm's ``bf_max_job_test``)."""
    user_gpu_limit: int | None = None
    """Most GPUs one user's running jobs may hold; None: no limit."""
    preempt_grace_s: float = 30.0
    preempt_min_run_s: float = 600.0
    """A running job is not preempted before it has run this long in its attempt (Kueue's and
    KAI's minimum run time): preempted at once, a job that just started (or resumed) throws
    away its start and restore, and two teams' jobs can take the same GPUs back and forth.
    The quota's owner waits at most this long for borrowed GPUs."""
    demote_after_gpu_s: tuple[float, ...] = (2 * 3600.0, 16 * 3600.0)
    """Attained service (Tiresias' discretized least-attained-service, #36) for jobs without a
    time limit, which the short-job factor otherwise cannot tell apart: such a job ranks as
    one of a one-hour limit until it has had the first of these GPU-seconds over all its
    attempts, then as one of four hours until the second, then as the longest. A team's job
    that does not fit preempts the team's own running jobs without a limit that have had more
    (past ``preempt_min_run_s``, the most served first): they are *demoted*, and queue again
    with what they had. Jobs with a limit keep their limit's class and are never demoted.
    Empty: off (every job without a limit ranks as the longest)."""
    promote_after_slowdown: float | None = None
    """With a value: a job demoted past the last attained-service threshold ranks as one past
    only the first again (``pending.PROMOTED_CLASS``) once the time since its submission is
    this many times the time it has run (its slowdown so far; Tiresias' starvation
    promotion), so that newer short jobs do not overtake it forever. Off by default: it cut
    the p99 completion time of one busy synthetic month (x2.5: 242.9k s against 344.6k) but
    lengthened Philly's (16 x 8: 618.4k against 362.7k, and the average 71.7k against 50.8k)
    and the average of the busiest month (x3.5: 136.4k against 110.4k); docs/scheduling.md."""


def guarded(config: PolicyConfig) -> PolicyConfig:
    """``config`` with the former default's order (until 2026-12): weak shortness and age
    factors and the one-day starvation guard, which serves every job pending over a day oldest
    first. Kept for teams that want that guarantee over shorter completion times."""
    return replace(config, max_age_s=7 * 86400.0, weight_age=1.0, weight_short=1.0,
                   starve_after_s=86400.0, demote_after_gpu_s=())


SETTINGS = ("scheduling_policy", "starve_after_s", "preempt", "preempt_grace_s",
            "preempt_min_run_s", "user_gpu_limit", "demote_after_gpu_h",
            "promote_after_slowdown")
"""The controller's settings that shape the pass beyond the quotas, by the names its settings
and ``/v1/quotas``' ``policy`` give them."""


def from_settings(settings: Mapping[str, Any]) -> PolicyConfig:
    """The pass's config (quotas aside) from those settings: ``scheduling_policy``
    ("default" or "guarded") picks the order, an explicit ``starve_after_s``,
    ``demote_after_gpu_h`` (GPU-hours) or ``promote_after_slowdown`` (0: never) wins over
    either, and a setting left out keeps its default. The controller's pass and
    ``clusterctl plan``'s replays of its history both read the settings through this."""
    known = {k: settings[k] for k in ("preempt", "preempt_grace_s", "preempt_min_run_s",
                                      "user_gpu_limit") if settings.get(k) is not None}
    config = PolicyConfig(**known)
    if settings.get("scheduling_policy") == "guarded":
        config = guarded(config)
    if settings.get("starve_after_s") is not None:
        config = replace(config, starve_after_s=settings["starve_after_s"])
    if settings.get("demote_after_gpu_h") is not None:
        config = replace(config, demote_after_gpu_s=tuple(
            3600.0 * h for h in settings["demote_after_gpu_h"]))
    if settings.get("promote_after_slowdown") is not None:
        config = replace(config,
                         promote_after_slowdown=settings["promote_after_slowdown"] or None)
    return config


@dataclass(frozen=True)
class Placement:
    job_id: int
    node_ids: tuple[str, ...]
    """One node per rank; rank 0 is first."""


@dataclass(frozen=True)
class Preemption:
    job_id: int
    reason: str
    for_job: int
    demotion: bool = False
    """Demoted by attained service (``demoting``), not reclaimed for a quota."""


class WaitReason(str, Enum):
    QUOTA = "quota"
    """The team uses its quota and no idle GPUs are left to borrow (or the job may not borrow)."""
    RESOURCES = "resources"
    """Next in line; not enough free GPUs yet."""
    PREEMPTING = "preempting"
    """Borrowed GPUs are being reclaimed for it."""
    PRIORITY = "priority"
    """Jobs ahead of it in the queue come first."""
    USER_LIMIT = "user-limit"
    ARRAY_LIMIT = "array-limit"
    DEPENDENCY = "dependency"
    HELD = "held"
    """``clusterctl hold``: it does not start until released."""
    BUDGET = "budget"
    """Its team is over an enforced budget: it waits until the budget is raised."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Wait:
    reason: WaitReason
    detail: str = ""
    estimated_start: float | None = None
    start_unknown: bool = False
    """Next in line, but its start waits on jobs without a time limit: no date is given."""


@dataclass
class Decision:
    starts: list[Placement] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    waiting: dict[int, Wait] = field(default_factory=dict)
    """Why each pending job that did not start waits (every one with ``explain``)."""
    reserved: tuple[int, float] | None = None
    """(job, reserved start) of the first blocked job, which backfill may not delay."""
    recheck_at: float | None = None
    """When a borrower too young to preempt (``preempt_min_run_s``) becomes one: a pass then
    may reclaim what this one could not. The simulator wakes for it; the live scheduler's
    passes come every few seconds anyway."""
    promised: list[Placement] = field(default_factory=list)
    """Where the GPUs of each job waiting on a preemption (``WaitReason.PREEMPTING``) are
    promised: held for it from now on, free ones at once and the victims' as they exit."""
