"""One GPU read, the record every layer passes: the agent makes it (``agents/samples.py``),
ships it as JSON, the API validates it at the door (``POST /v1/agent/samples``), the controller
keeps those within its clock window and drains a node whose reads show a fatal fault, and the
store writes it. Every number is bounded by what the database stores and what a GPU can read,
so no batch, however forged, fails a write or turns a report's sum into infinity for everyone.
The agent builds its reads without validation (``model_construct``): an odd value from a
driver is the controller's to refuse, never a crash of the agent's loop."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

INT64_MAX = 2**63 - 1
"""The largest integer a BIGINT column (PostgreSQL) or an INTEGER (SQLite) holds."""
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
DAY_S = 86_400.0


class GpuRead(BaseModel):
    """One GPU read (or, with ``error``, a GPU that could not be read) of one node's agent."""

    gpu_index: int = Field(ge=0, le=1024)
    gpu_uuid: str = Field(min_length=1, max_length=96)
    model: str | None = Field(default=None, max_length=96)
    boot_id: str = Field(min_length=1, max_length=64)
    seq: Count
    t: float = Field(gt=0, le=1e11)
    interval_s: float = Field(gt=0, le=DAY_S)
    utilization: float | None = Field(default=None, ge=0, le=1)
    memory_used: Count | None = None
    memory_total: Count | None = None
    power_w: float | None = Field(default=None, ge=0, le=100_000)
    energy_counter_mj: Count | None = None
    energy_mj: float | None = Field(default=None, ge=0, le=1e15)
    span_s: float | None = Field(default=None, gt=0, le=DAY_S)
    temperature_c: float | None = Field(default=None, ge=-273.15, le=1000)
    sm_clock_mhz: int | None = Field(default=None, ge=0, le=1_000_000)
    throttle: Count | None = None
    processes: int | None = Field(default=None, ge=0, le=1_000_000)
    error: str | None = Field(default=None, max_length=200)
    xids: list[Annotated[int, Field(ge=0, le=1_000_000)]] = Field(default_factory=list,
                                                                  max_length=1024)
    """XID error events the driver raised for this GPU since the previous read."""
    ecc_uncorrected: int | None = Field(default=None, ge=0, le=2**62)
    retired_pages: int | None = Field(default=None, ge=0, le=2**62)
