"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from clusterctl.gpu_read import GpuRead
from clusterctl.reports.documents import JobCost


class HistoryEntry(BaseModel):
    state: str
    at: datetime
    reason: str | None
    attempt: int


class AllocationOut(BaseModel):
    attempt: int
    rank: int
    node: str
    node_id: str
    gpu_index: int
    gpu_uuid: str | None
    started_at: datetime
    ended_at: datetime | None


class JobOut(BaseModel):
    id: int
    name: str
    user: str
    team: str
    state: str
    reason: str | None
    command: list[str]
    gpus: int
    nodes: int
    priority: int
    time_limit_s: int | None
    gpu_types: list[str] | None = None
    gpu_mem_bytes: int | None = None
    retries: int
    requeues: int
    attempt: int
    exit_code: int | None
    cancel_requested: bool
    cancel_asked_at: datetime | None = None
    """When the cancel was asked (the CANCELLED event in the history says when it took
    effect)."""
    cancel_reason: str | None = None
    workdir: str | None
    node_names: list[str]
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    idle_gpus: bool = False
    service_id: int | None = None
    """A replica of this service (``serve``)."""
    """A GPU of this job sat under the waste threshold for 30 minutes or more."""
    no_preempt: bool = False
    held_by: str | None = None
    """Who holds it back (``hold``), while it is pending."""
    idle_timeout_s: int | None = None
    interactive: dict[str, Any] | None = None
    """``{"pty": bool, "ports": [...]}`` for a job started with ``clusterctl run``."""
    preemptions: int = 0
    after: list[dict[str, Any]] | None = None
    array_id: int | None = None
    array_index: int | None = None
    array_limit: int | None = None
    wait_reason: str | None = None
    """Why a pending job waits, as of the scheduler's last pass: quota, resources, preempting,
    priority, dependency, user-limit or array-limit."""
    wait_detail: str | None = None
    estimated_start: datetime | None = None
    start_unknown: bool = False
    """Next in line, but behind jobs without a time limit: no date can be given."""
    """Where backfill can tell: the latest the job will start, if running jobs use their whole
    time limits (jobs without one count as the default)."""


class JobUpdate(BaseModel):
    """What may change while a job is pending (absent: unchanged)."""

    priority: Any = None
    time_limit: str | int | None = None
    """A duration, or ``none`` for no limit."""
    gpus: Any = None
    """GPUs per node, ``2`` or ``H100:2`` (a type replaces the types asked)."""


class SubmitOut(JobOut):
    array_job_ids: list[int] | None = None
    """Every task's id, for an array (this body is the first task)."""


class UsageFigures(BaseModel):
    avg_utilization: float | None
    """0 to 1, averaged over the time samples cover."""
    peak_memory_bytes: int | None
    avg_power_watts: float | None
    energy_kwh: float | None
    coverage: float
    """Share of the GPU time held that samples cover, 0 to 1."""
    energy_coverage: float


class GpuUsageOut(UsageFigures):
    attempt: int
    rank: int
    node: str
    gpu_index: int
    gpu_uuid: str | None


class UsageOut(UsageFigures):
    """The job as a whole. ``avg_power_watts`` is the job's draw: the average per GPU times
    the GPUs it holds."""

    gpu_hours: float
    gpus: list[GpuUsageOut]


class JobDetail(JobOut):
    env: dict[str, str]
    history: list[HistoryEntry]
    allocations: list[AllocationOut]
    usage: UsageOut | None = None
    cost: JobCost | None = None
    """The job's cost so far on the owned hardware (see ``report cost``)."""
    notify_url: str | None = None
    """``--notify``: shown to the job's owner (and admins) only, as all of ``show``."""
    idle_warning: str | None = None
    """Set while the job is about to be ended for idle GPUs."""


class HostIn(BaseModel):
    """The node's memory as its kernel counts it (``/proc/meminfo``)."""

    mem_total_bytes: int = Field(ge=1, le=1 << 60)
    mem_available_bytes: int = Field(ge=0, le=1 << 60)


class SampleBatch(BaseModel):
    node: str
    samples: list[GpuRead] = Field(max_length=100_000)
    host: HostIn | None = None


class HolderOut(BaseModel):
    gpu_index: int
    job_id: int
    user: str


class IngestOut(BaseModel):
    inserted: int
    duplicates: int
    refused: int = 0
    """Samples stamped outside the controller's clock window, not stored."""
    allocations: list[HolderOut]
    """Which of the node's GPUs hold a job now, for the agent's metric labels."""


class NodeTokenOut(BaseModel):
    node: str
    token: str


class GpuOut(BaseModel):
    index: int
    job_id: int | None
    user: str | None
    uuid: str | None = None
    model: str | None = None
    utilization: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    power_watts: float | None = None
    temperature_celsius: float | None = None
    sampled_at: datetime | None = None
    """When the agent read these values; None when no agent has reported this GPU."""
    error: str | None = None
    processes: int | None = None
    """Compute processes on the GPU at the agent's last read."""
    stray_processes: int = 0
    """Processes on a GPU that no running job holds: left behind by something, worth a look."""


class NodeOut(BaseModel):
    id: str
    name: str
    address: str
    gpus: int
    gpu_model: str | None
    free_gpus: int
    alive: bool
    gpu_jobs: list[GpuOut]
    drained: bool = False
    """No new job lands here; running ones finish (``clusterctl nodes drain``)."""
    drain_reason: str | None = None
    drained_by: str | None = None
    drained_at: datetime | None = None
    gpu_hour_cost: float | None = None
    """What one of its GPU-hours costs (the inventory's capacity rate; None: not priced)."""
    suspect: bool = False
    """A runner here just stopped answering: nothing new lands here for a minute, until Ray
    says whether the node lives (it takes its heartbeat timeout to mark one dead)."""
    memory_used: float | None = None
    """The share of the machine's memory in use, from its agent's last batch (None: no agent
    has said); Ray's memory monitor kills workers past 0.95."""


class DrainIn(BaseModel):
    reason: str | None = None


class DrainOut(BaseModel):
    node: str
    drained: bool
    running_jobs: list[int]
    """Jobs still running there (they finish; nothing new starts)."""


class UserCreate(BaseModel):
    name: str
    team: str
    """The user's default team."""
    other_teams: list[str] = Field(default_factory=list, max_length=64)
    """Teams they may also submit to."""
    admin: bool = False
    expires: str | None = None
    """How long the token works (``90d``); none: until rotated or the user is removed."""
    unix_user: str | None = None
    """The Unix account their jobs run as (default: the account of the same name)."""


class UserOut(BaseModel):
    name: str
    team: str
    teams: list[str]
    is_admin: bool
    expires_at: datetime | None = None
    unix_user: str
    """The Unix account their jobs run as."""


class UserChange(BaseModel):
    teams: list[str] | None = Field(default=None, min_length=1, max_length=64)
    """The first is the user's default; none: unchanged."""
    unix_user: str | None = None
    """The Unix account their jobs run as; none: unchanged."""


class UserRemoved(BaseModel):
    name: str
    cancelled: list[int]
    """Queued jobs of the user, cancelled at once (and running ones with cancel_running)."""
    running: list[int]
    """Running jobs of the user, left to finish."""


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    target: str
    detail: str | None


class UserCreated(UserOut):
    token: str


class CancelOut(BaseModel):
    id: int
    outcome: str
    """``cancelled`` (it was queued) or ``requested`` (the running job is being stopped)."""
    state: str


class PackageOut(BaseModel):
    sha256: str
    size: int
