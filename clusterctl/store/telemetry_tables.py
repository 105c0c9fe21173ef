"""Tables of what the agents measure: raw GPU samples, the GPUs seen, their rollups, and each
allocation's usage computed from them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from clusterctl.store.columns import BIG_ID, big_column


class GpuSample(SQLModel, table=True):
    """One GPU read, as the agent shipped it. Natural key: (node, GPU UUID, boot id, seq)."""

    __tablename__ = "gpu_sample"
    __table_args__ = (
        UniqueConstraint("node", "gpu_uuid", "boot_id", "seq", name="uq_gpu_sample_key"),
        Index("ix_gpu_sample_node_ts_gpu", "node", "ts_ms", "gpu_index"),
        Index("ix_gpu_sample_ts", "ts_ms"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True,
                                                          autoincrement=True))
    node: str = Field(max_length=255)
    gpu_uuid: str = Field(max_length=96)
    gpu_index: int
    boot_id: str = Field(max_length=64)
    seq: int = big_column(nullable=False)
    ts_ms: int = big_column(nullable=False)
    interval_s: float
    """The agent's read interval: the time this sample stands for (its coverage)."""
    utilization: float | None = None
    memory_used: int | None = big_column()
    memory_total: int | None = big_column()
    power_w: float | None = None
    energy_counter_mj: int | None = big_column()
    energy_mj: float | None = None
    """Energy since the agent's previous read of this GPU (reset-aware), over ``span_s``."""
    span_s: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    throttle: int | None = big_column()
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
    first_ms: int | None = big_column()
    """When it was first sampled: the reports' hours before a node's first sample are "not
    tracked", not idle."""
    last_ms: int = big_column(nullable=False)
    utilization: float | None = None
    memory_used: int | None = big_column()
    memory_total: int | None = big_column()
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
    mem_max: int | None = big_column()
    mem_total: int | None = big_column()
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
    dirty_from_ms: int | None = big_column()
    version: int = 0


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
    peak_memory: int | None = big_column()
    energy_mj: float | None = None
    energy_covered_s: float = 0.0
    idle_s: float = 0.0
    """Covered time with utilization under the waste threshold."""
    longest_idle_s: float = 0.0
    """Longest unbroken stretch under the threshold."""
    computed_ms: int = Field(sa_column=Column(BigInteger(), nullable=False))
