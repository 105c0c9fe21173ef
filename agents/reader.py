"""What a GPU read returns, and the protocol every GPU backend implements.

Everything outside ``agents/nvml.py`` sees only these frozen values, so the exporter, the
shipper and their tests run the same way on the NVML reader and the simulated one. A metric a GPU
does not support is ``None``; a GPU that fails is a :class:`GpuError`, and the others still report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_bytes: int | None
    """None where the driver does not tell (Windows WDDM, some containers)."""


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment. Units are the base units the exporter publishes."""

    index: int
    """NVML index, which is the PCI bus order (what ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` numbers)."""
    uuid: str
    model: str
    utilization: float | None
    """Share of the last sample period in which a kernel ran, 0 to 1 (nvidia-smi
    ``utilization.gpu``)."""
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    power_watts: float | None
    """Power draw (nvidia-smi ``power.draw``)."""
    energy_mj: int | None
    """Energy counter, millijoules since the driver was loaded (Volta and newer); it restarts
    from zero when the driver reloads."""
    temperature_celsius: float | None
    sm_clock_mhz: int | None
    throttle_reasons: int | None
    """Bit mask of ``nvmlClocksEventReason*`` (nvidia-smi ``clocks_event_reasons.active``)."""
    processes: tuple[GpuProcess, ...] = ()
    ecc_uncorrected: int | None = None
    """Uncorrected (double-bit) ECC errors since the driver loaded (nvidia-smi
    ``ecc.errors.uncorrected.volatile.total``); None without ECC."""
    retired_pages: int | None = None
    """Pages retired after double-bit errors (before Ampere) or rows remapped after
    uncorrectable ones (Ampere and newer)."""


@dataclass(frozen=True)
class GpuError:
    """A GPU that could not be read (``GPU is lost``, fallen off the bus)."""

    index: int
    uuid: str | None
    error: str


@dataclass(frozen=True)
class Xid:
    """An XID error event the driver raised for a GPU (NVML's event set, not a device read:
    it arrives even from a GPU that has just fallen off the bus)."""

    index: int
    xid: int


@dataclass(frozen=True)
class Snapshot:
    at: float
    """Wall-clock time of the read, seconds since the epoch."""
    gpus: tuple[GpuSample, ...] = ()
    errors: tuple[GpuError, ...] = field(default_factory=tuple)
    xids: tuple[Xid, ...] = ()
    """XID events since the previous read."""


class NoGpuBackend(RuntimeError):
    """No GPU can be read here at all (no driver, no library); the agent says so and exits."""


class GpuReader(Protocol):
    def read(self) -> Snapshot: ...

    def close(self) -> None: ...
