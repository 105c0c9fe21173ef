"""Database tables. Schema changes go through Alembic (``store/migrations``), never create_all."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, TypeDecorator
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


class Job(SQLModel, table=True):
    __table_args__ = (Index("ix_job_state_priority", "state", "priority"),)

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
    exit_code: int | None = None
    cancel_requested: bool = False
    submitted_at: datetime = _time(nullable=False)
    started_at: datetime | None = _time()
    ended_at: datetime | None = _time()
    version: int = 0


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


class Meta(SQLModel, table=True):
    """Installation-wide values, such as the id that names this installation's Ray namespace."""

    key: str = Field(primary_key=True, max_length=64)
    value: str
