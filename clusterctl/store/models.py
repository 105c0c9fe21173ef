"""Database tables. Schema changes go through Alembic (``store/migrations``), never create_all."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend: SQLite keeps no zone, so values are stored
    as naive UTC and given their zone back on the way out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _time(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    team: str = Field(max_length=64)
    is_admin: bool = False
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _time(nullable=False)
    expires_at: datetime | None = _time()
    """When the token stops working (None: never)."""
    removed_at: datetime | None = _time()
    """Set by ``admin user remove``: the row stays, for the jobs and the audit trail."""
    other_teams: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Teams the user may submit to besides ``team`` (their default)."""
    unix_user: str | None = Field(default=None, max_length=32)
    """The Unix account the user's jobs run as (None: the account of the same name)."""
    notify_url: str | None = Field(default=None, max_length=2048)
    """Where the failures of this user's jobs are posted (a webhook; shown to them only)."""

    @property
    def teams(self) -> list[str]:
        return [self.team, *(t for t in self.other_teams or [] if t != self.team)]

    @property
    def account(self) -> str:
        """The Unix account this user's jobs run as."""
        return self.unix_user or self.name


class AuditEvent(SQLModel, table=True):
    """An admin action (users and tokens, drains, the cost basis, priority overrides)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _time(nullable=False, index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    target: str = Field(max_length=255)
    detail: str | None = Field(default=None, max_length=1000)


class Job(SQLModel, table=True):
    __table_args__ = (Index("ix_job_state_priority", "state", "priority"),
                      Index("ux_job_user_idempotency_key", "user", "idempotency_key",
                            unique=True))

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    user: str = Field(max_length=64, index=True)
    team: str = Field(max_length=64, index=True)
    command: list[str] = Field(sa_column=Column(JSON, nullable=False))
    env: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    workdir: str | None = None
    """A directory on a shared filesystem to run in, or None when a package was shipped."""
    package: str | None = Field(default=None, max_length=64)
    """sha256 of the shipped working directory (a zip kept in the controller's data dir)."""
    gpus: int
    """GPUs per node."""
    gpu_types: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Any of these GPU types, in order of preference (``--gpus H100:8``, ``--gpu-type``);
    None: any type."""
    gpu_mem: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    """At least this much memory per GPU, in bytes (``--gpu-mem``)."""
    notify_url: str | None = Field(default=None, max_length=2048)
    """``--notify``: where this job's end, however it ends, is posted."""
    held_by: str | None = Field(default=None, max_length=64)
    """``hold``: who holds this pending job back (it does not start until released)."""
    idle_timeout_s: int | None = None
    """``--idle-timeout``: ended once every GPU of it stays idle this long (None: the team's
    default, if any)."""
    interactive: dict[str, Any] | None = Field(default=None,
                                               sa_column=Column(JSON, nullable=True))
    """``clusterctl run``: ``{"pty": bool, "ports": [8888]}``, the user's terminal and the
    ports the job serves (``port-forward``); None for a batch job."""
    idle_warned_at: datetime | None = _time()
    """When it was warned that its GPUs sit idle (cleared when they compute again)."""
    nodes: int = 1
    priority: int = 0
    time_limit_s: int | None = None
    retries: int = 0
    requeues: int = 0
    """How many times the job was requeued after being LOST."""
    state: str = Field(default="PENDING", max_length=16)
    reason: str | None = None
    attempt: int = 0
    """Incremented at every launch; Ray names derive from (job id, attempt), so no attempt is
    ever launched twice."""
    placement: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Ray node ids of the current attempt, rank order; set when the job starts."""
    gpu_devices: list[list[int]] | None = Field(default=None,
                                                sa_column=Column(JSON, nullable=True))
    """Per rank, the devices the controller picked on a machine of several GPU models
    (``scheduler/mixed_nodes.py``); None where Ray picked them."""
    exit_code: int | None = None
    cancel_requested: bool = False
    """A cancel was asked while the job held GPUs: it ends CANCELLED and never runs again,
    whatever happens between (a restart, a lost runner, a retry)."""
    cancel_asked_at: datetime | None = _time()
    cancel_reason: str | None = None
    """Who cancelled it (``cancelled by alice``): what its end says, however late it comes."""
    idempotency_key: str | None = None
    """The submit's ``Idempotency-Key`` (on an array's first task): the same key from the same
    user returns this job instead of making another."""
    no_preempt: bool = False
    """``--no-preempt``: never preempted, and so never given borrowed GPUs."""
    preempt_requested: bool = False
    """The scheduler signalled the attempt to make room for another team: when it ends it goes
    back to PENDING instead of FAILED (kept in the row so a controller restart knows too)."""
    preemptions: int = 0
    after: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Dependencies: ``[{"job": id, "ok": bool}]``; the job waits until each has ended (and,
    with ``ok``, succeeded; otherwise it is cancelled)."""
    array_id: int | None = Field(default=None, index=True)
    """The first task's id, shared by every task of a ``--array`` submission."""
    array_index: int | None = None
    array_limit: int | None = None
    submitted_at: datetime = _time(nullable=False)
    started_at: datetime | None = _time()
    ended_at: datetime | None = _time()
    version: int = 0


class TeamNotify(SQLModel, table=True):
    """Where the failures of a team's jobs are posted (set by an admin)."""

    __tablename__ = "team_notify"

    team: str = Field(primary_key=True, max_length=64)
    url: str = Field(max_length=2048)


class Budget(SQLModel, table=True):
    """What a team may spend per month or quarter (``clusterctl budget``)."""

    team: str = Field(primary_key=True, max_length=64)
    amount: float
    per: str = Field(default="month", max_length=16)
    enforce: bool = False
    """Over it, the team's new jobs wait (reason ``budget``); running ones finish."""
    loaded: bool = False
    """Spent counts the team's share of idle capacity too (``report cost --loaded``)."""
    notified: str | None = Field(default=None, max_length=16)
    """The last state the team was told of (``warning``, ``over``) in ``notified_period``:
    a restart does not tell it twice."""
    notified_period: str | None = Field(default=None, max_length=16)


class NotifyCursor(SQLModel, table=True):
    """The last job event the notifier has read: after a restart it goes on from there."""

    __tablename__ = "notify_cursor"

    id: int | None = Field(default=None, primary_key=True)
    last_event_id: int


class JobEvent(SQLModel, table=True):
    """One row per state transition: the job's history."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    state: str = Field(max_length=16)
    attempt: int = 0
    reason: str | None = None
    at: datetime = _time(nullable=False)


class Allocation(SQLModel, table=True):
    """A GPU held by a job attempt: the record that utilization and cost join on."""

    __table_args__ = (Index("ix_allocation_node_window", "node", "started_at", "ended_at"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    attempt: int
    rank: int
    node: str = Field(max_length=255)
    """Node name (stable across Ray restarts; the hardware inventory's key)."""
    node_id: str = Field(max_length=64)
    """Ray node id of this attempt."""
    gpu_index: int
    gpu_uuid: str | None = Field(default=None, max_length=96)
    started_at: datetime = _time(nullable=False)
    ended_at: datetime | None = _time()


class NodeDrain(SQLModel, table=True):
    """A node an admin drained: no new job lands there; running ones finish. Keyed by node
    name, so it outlives Ray restarts and the node being away."""

    __tablename__ = "node_drain"

    node: str = Field(primary_key=True, max_length=255)
    reason: str | None = Field(default=None, max_length=200)
    by: str = Field(max_length=64)
    at: datetime = _time(nullable=False)


class Meta(SQLModel, table=True):
    """Installation-wide values, such as the id that names this installation's Ray namespace."""

    key: str = Field(primary_key=True, max_length=64)
    value: str


# -- telemetry --------------------------------------------------------------------------------
# Sample times are integer milliseconds since the epoch: bucketing (``ts_ms // 60000``) and
# window arithmetic then mean the same thing on SQLite and PostgreSQL, and a year of 5-second
# samples of 64 GPUs (400 million rows) stays a plain integer index.

_BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def _big(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(BigInteger(), nullable=nullable))


class NodeToken(SQLModel, table=True):
    """The token a node's agent ships samples with; it may write for that node only."""

    __tablename__ = "node_token"

    node: str = Field(primary_key=True, max_length=255)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _time(nullable=False)


class GpuSample(SQLModel, table=True):
    """One GPU read, as the agent shipped it. Natural key: (node, GPU UUID, boot id, seq)."""

    __tablename__ = "gpu_sample"
    __table_args__ = (
        UniqueConstraint("node", "gpu_uuid", "boot_id", "seq", name="uq_gpu_sample_key"),
        Index("ix_gpu_sample_node_ts_gpu", "node", "ts_ms", "gpu_index"),
        Index("ix_gpu_sample_ts", "ts_ms"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BigId, primary_key=True,
                                                          autoincrement=True))
    node: str = Field(max_length=255)
    gpu_uuid: str = Field(max_length=96)
    gpu_index: int
    boot_id: str = Field(max_length=64)
    seq: int = _big(nullable=False)
    ts_ms: int = _big(nullable=False)
    interval_s: float
    """The agent's read interval: the time this sample stands for (its coverage)."""
    utilization: float | None = None
    memory_used: int | None = _big()
    memory_total: int | None = _big()
    power_w: float | None = None
    energy_counter_mj: int | None = _big()
    energy_mj: float | None = None
    """Energy since the agent's previous read of this GPU (reset-aware), over ``span_s``."""
    span_s: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    throttle: int | None = _big()
    processes: int | None = None
    error: str | None = Field(default=None, max_length=200)


class GpuDevice(SQLModel, table=True):
    """Each GPU the agents have reported, with its latest read: what ``nodes`` and ``top``
    show without scanning the samples."""

    __tablename__ = "gpu_device"

    node: str = Field(primary_key=True, max_length=255)
    gpu_index: int = Field(primary_key=True)
    gpu_uuid: str = Field(max_length=96)
    model: str | None = Field(default=None, max_length=96)
    last_ms: int = _big(nullable=False)
    utilization: float | None = None
    memory_used: int | None = _big()
    memory_total: int | None = _big()
    power_w: float | None = None
    temperature_c: float | None = None
    error: str | None = Field(default=None, max_length=200)
    processes: int | None = None
    """Compute processes on the GPU at the latest read (a process on a GPU no job holds is a
    leftover worth a look)."""


class GpuRollup(SQLModel, table=True):
    """Samples aggregated per GPU over a minute (``resolution_s`` 60) or an hour (3600). Sums
    and counts rather than averages, so buckets add up exactly into longer periods."""

    __tablename__ = "gpu_rollup"
    __table_args__ = (
        # Covers the reports' energy sum (``ReportStore.node_energy``): a year of hour rollups
        # summed per node from the index alone, not from the whole rows (0.43 s to 0.24 s).
        Index("ix_gpu_rollup_energy", "resolution_s", "bucket_ms", "node", "energy_mj"),
    )

    resolution_s: int = Field(primary_key=True)
    node: str = Field(primary_key=True, max_length=255)
    bucket_ms: int = Field(sa_column=Column(BigInteger(), primary_key=True))
    """Key order (resolution, node, bucket, GPU): rollups and reports read time ranges of a
    node, so the range is on the third column, not behind every GPU's UUID."""
    gpu_uuid: str = Field(primary_key=True, max_length=96)
    gpu_index: int
    samples: int
    covered_s: float
    util_sum: float | None = None
    util_n: int = 0
    mem_max: int | None = _big()
    mem_total: int | None = _big()
    power_sum: float | None = None
    power_n: int = 0
    energy_mj: float | None = None
    energy_span_s: float | None = None
    temp_max: float | None = None
    errors: int = 0


class RollupState(SQLModel, table=True):
    """Per node, the oldest sample time not yet rolled up (NULL: all rolled up)."""

    __tablename__ = "rollup_state"

    node: str = Field(primary_key=True, max_length=255)
    dirty_from_ms: int | None = _big()
    version: int = 0


# -- cost basis -------------------------------------------------------------------------------
# Money is stored as decimal text: SQLite has no exact decimal type, and the cost model promises
# sums to the cent on both backends.


class DecimalText(TypeDecorator):
    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


def _money() -> Any:
    return Field(sa_column=Column(DecimalText(), nullable=False))


class Hardware(SQLModel, table=True):
    """A machine of the inventory, keyed by the node name Ray and the agent use."""

    node: str = Field(primary_key=True, max_length=255)
    gpus: int
    gpu_model: str = Field(max_length=64)
    price: Decimal = _money()
    purchased: date = Field(sa_column=Column(Date(), nullable=False))
    life_months: int
    resale: Decimal = _money()
    """Fraction of the price expected back at the end of the life."""
    monthly_fees: Decimal = _money()
    sold_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    """Set when the machine was sold (retired), with ``sold_for``."""
    sold_for: Decimal | None = Field(default=None, sa_column=Column(DecimalText(),
                                                                     nullable=True))
    updated_at: datetime = _time(nullable=False)


class SiteSetting(SQLModel, table=True):
    """Energy tariff, PUE, currency: one row per setting set by an admin (defaults in code)."""

    __tablename__ = "site_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=64)


class CloudRateRow(SQLModel, table=True):
    """An admin's cloud rate for a GPU model, on top of the documented defaults."""

    __tablename__ = "cloud_rate"

    model_key: str = Field(primary_key=True, max_length=64)
    gpu_model: str = Field(max_length=64)
    per_gpu_hour: Decimal = _money()
    source: str = Field(max_length=300)
    updated_at: datetime = _time(nullable=False)


class AllocationUsage(SQLModel, table=True):
    """What one allocation did with its GPU, summed once its samples are in: the durable
    per-job record reports read, so a year of reports never rescans raw samples."""

    __tablename__ = "allocation_usage"
    __table_args__ = (Index("ix_allocation_usage_window", "end_ms", "start_ms"),)

    allocation_id: int = Field(foreign_key="allocation.id", primary_key=True)
    job_id: int = Field(index=True)
    """For `show JOB`'s cost."""
    node: str = Field(max_length=255)
    gpu_index: int
    start_ms: int = Field(sa_column=Column(BigInteger(), nullable=False))
    end_ms: int = Field(sa_column=Column(BigInteger(), nullable=False))
    """The allocation's window (copied here: a year of reports reads these rows alone)."""
    window_s: float
    covered_s: float
    util_avg: float | None = None
    power_avg: float | None = None
    peak_memory: int | None = _big()
    energy_mj: float | None = None
    energy_covered_s: float = 0.0
    idle_s: float = 0.0
    """Covered time with utilization under the waste threshold."""
    longest_idle_s: float = 0.0
    """Longest unbroken stretch under the threshold."""
    computed_ms: int = Field(sa_column=Column(BigInteger(), nullable=False))
