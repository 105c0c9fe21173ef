"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class JobSubmit(BaseModel):
    command: list[str]
    gpus: Any = 1
    nodes: Any = 1
    name: str | None = None
    team: str | None = None
    priority: Any = 0
    time_limit: str | int | None = None
    """A duration (``2h``, ``90m``, ``1:30:00``) or seconds."""
    retries: Any = 0
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    package: str | None = None
    """sha256 of a package uploaded to ``POST /v1/packages``."""


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
    retries: int
    requeues: int
    attempt: int
    exit_code: int | None
    cancel_requested: bool
    workdir: str | None
    node_names: list[str]
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class JobDetail(JobOut):
    env: dict[str, str]
    history: list[HistoryEntry]
    allocations: list[AllocationOut]


class GpuOut(BaseModel):
    index: int
    job_id: int | None
    user: str | None


class NodeOut(BaseModel):
    id: str
    name: str
    address: str
    gpus: int
    gpu_model: str | None
    free_gpus: int
    alive: bool
    gpu_jobs: list[GpuOut]


class UserCreate(BaseModel):
    name: str
    team: str
    admin: bool = False


class UserOut(BaseModel):
    name: str
    team: str
    is_admin: bool


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
