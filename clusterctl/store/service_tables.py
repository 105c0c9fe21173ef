"""The services (``clusterctl serve``): one row each, its replicas being jobs
(``Job.service_id``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from clusterctl.store.columns import time_column


class Service(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40, index=True)
    active_name: str | None = Field(default=None, max_length=40, unique=True, index=True)
    """The name while the service runs, None once stopped: two running services never share a
    name (a unique index; stopped ones may, NULLs being distinct), and the name is free again
    after a stop."""
    user: str = Field(max_length=64)
    team: str = Field(max_length=64, index=True)
    request: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The typed ``ServiceRequest`` as submitted (``serving/request.py``)."""
    replicas_min: int
    replicas_max: int
    """``serve scale`` changes these two; the request keeps what was asked first."""
    desired: int = 0
    """Replicas the autoscaler last asked for."""
    created_at: datetime = time_column(nullable=False)
    stopped_at: datetime | None = time_column()
    version: int = 0


class ServiceTraffic(SQLModel, table=True):
    """What a service's endpoint counted, per minute: kept so that the figures (and the cost
    per request) survive a controller's restart."""

    __tablename__ = "service_traffic"

    service_id: int = Field(primary_key=True)
    minute_ms: int = Field(sa_column=Column(BigInteger(), primary_key=True))
    requests: int = 0
    errors: int = 0
    tokens: int = Field(default=0, sa_column=Column(BigInteger(), nullable=False))
    replica_s: float = 0.0
    """Seconds of ready replicas in the minute (two ready replicas for a minute: 120)."""
    idle_replica_s: float = 0.0
    """Of those, seconds in which no request came or was in flight: replicas held for
    nothing, the service's waste."""


class ServiceKey(SQLModel, table=True):
    """A key an application calls one service with (``serve key NAME``), instead of a
    person's token: it opens that service's endpoint and nothing else. Kept as a hash."""

    __tablename__ = "service_key"

    key_hash: str = Field(primary_key=True, max_length=64)
    service_id: int = Field(index=True)
    created_by: str = Field(max_length=64)
    created_at: datetime = time_column(nullable=False)
