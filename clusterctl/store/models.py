"""Database tables. Schema changes go through Alembic (``store/migrations``), never create_all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
)
from sqlmodel import Field, SQLModel

from clusterctl.store.columns import DecimalText as DecimalText  # the migrations name these
from clusterctl.store.columns import UTCDateTime as UTCDateTime  # as clusterctl.store.models.X
from clusterctl.store.columns import time_column


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    team: str = Field(max_length=64)
    is_admin: bool = False
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = time_column(nullable=False)
    expires_at: datetime | None = time_column()
    """When the token stops working (None: never)."""
    removed_at: datetime | None = time_column()
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
    at: datetime = time_column(nullable=False, index=True)
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
    idle_warned_at: datetime | None = time_column()
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
    cancel_asked_at: datetime | None = time_column()
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
    service_id: int | None = Field(default=None, index=True)
    """A replica of this service (``clusterctl serve``); None for a batch or interactive job."""
    submitted_at: datetime = time_column(nullable=False)
    started_at: datetime | None = time_column()
    ended_at: datetime | None = time_column()
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
    at: datetime = time_column(nullable=False)


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
    started_at: datetime = time_column(nullable=False)
    ended_at: datetime | None = time_column()


class NodeDrain(SQLModel, table=True):
    """A node an admin drained: no new job lands there; running ones finish. Keyed by node
    name, so it outlives Ray restarts and the node being away."""

    __tablename__ = "node_drain"

    node: str = Field(primary_key=True, max_length=255)
    reason: str | None = Field(default=None, max_length=200)
    by: str = Field(max_length=64)
    at: datetime = time_column(nullable=False)


class Meta(SQLModel, table=True):
    """Installation-wide values, such as the id that names this installation's Ray namespace."""

    key: str = Field(primary_key=True, max_length=64)
    value: str


# -- telemetry --------------------------------------------------------------------------------
# Sample times are integer milliseconds since the epoch: bucketing (``ts_ms // 60000``) and
# window arithmetic then mean the same thing on SQLite and PostgreSQL, and a year of 5-second
# samples of 64 GPUs (400 million rows) stays a plain integer index.

class NodeToken(SQLModel, table=True):
    """The token a node's agent ships samples with; it may write for that node only."""

    __tablename__ = "node_token"

    node: str = Field(primary_key=True, max_length=255)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = time_column(nullable=False)


class WebSession(SQLModel, table=True):
    """A browser's sign-in to the dashboard: the cookie's value is never stored, only its hash,
    as for tokens; the form's anti-forgery value travels in the page, not in the cookie."""

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user: str = Field(max_length=64, index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = time_column(nullable=False)
    expires_at: datetime = time_column(nullable=False)
