"""A stand-in for the ``pynvml`` module, for testing how the NVML reader treats what real drivers
do (gpustat tests the same way with its NvidiaDriverMock). It raises the real ``pynvml`` error
classes, so the reader's handling is tested against the binding's own exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA A100-SXM4-80GB"
    util: int = 87
    used: int = 40 << 30
    total: int = 80 << 30
    power_mw: int | None = 312_500
    energy_mj: int | None = 123_456_789
    temperature: int = 61
    sm_clock: int = 1410
    reasons: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=lambda: [(4242, 39 << 30)])
    lost: bool = False
    ecc_uncorrected: int | None = 0
    """None: ECC off (NOT_SUPPORTED, as on a GeForce card)."""
    remapped_rows: tuple[int, int, int, int] | None = (0, 0, 0, 0)
    """None: no row remapping (before Ampere): retired pages instead."""
    retired_pages: int = 0


class FakeNvml:
    """Exposes the names the reader uses; ``missing`` lists functions the 'driver' lacks."""

    def __init__(self, gpus: list[FakeGpu], *, missing: tuple[str, ...] = (),
                 no_library: bool = False) -> None:
        self.gpus = gpus
        self.missing = set(missing)
        self.no_library = no_library
        self.calls: dict[str, int] = {}
        self.events: list[tuple[int, int]] = []
        """(GPU index, XID) the 'driver' raises; the reader drains them from its event set."""
        self.registered: set[int] = set()
        for name in dir(pynvml):
            if name.startswith(("NVMLError", "NVML_", "nvmlEventType")):
                setattr(self, name, getattr(pynvml, name))

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.missing:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    def _gpu(self, handle: Any) -> FakeGpu:
        g = self.gpus[handle]
        if g.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return g

    def nvmlInit(self) -> None:
        if self.no_library:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return "535.104.05"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self._gpu(h).uuid

    def nvmlDeviceGetName(self, h: int) -> str:
        return self._gpu(h).name

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=self._gpu(h).util, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        g = self._gpu(h)
        return SimpleNamespace(used=g.used, total=g.total, free=g.total - g.used)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        g = self._gpu(h)
        if g.power_mw is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        self._call("nvmlDeviceGetTotalEnergyConsumption")
        g = self._gpu(h)
        if g.energy_mj is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.energy_mj

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return self._gpu(h).temperature

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return self._gpu(h).sm_clock

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return self._gpu(h).reasons

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        self._call("nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self._gpu(h).processes]

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> int:
        assert (kind, counter) == (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                   pynvml.NVML_VOLATILE_ECC)
        g = self._gpu(h)
        if g.ecc_uncorrected is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.ecc_uncorrected

    def nvmlDeviceGetRemappedRows(self, h: int) -> tuple[int, int, int, int]:
        g = self._gpu(h)
        if g.remapped_rows is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.remapped_rows

    def nvmlDeviceGetRetiredPages(self, h: int, cause: int) -> list[int]:
        return [0x1000 * i for i in range(self._gpu(h).retired_pages)]

    # -- XID events: an event set the reader drains without waiting -------------------------

    def nvmlEventSetCreate(self) -> str:
        return "event-set"

    def nvmlEventSetFree(self, events: str) -> None:
        pass

    def nvmlDeviceGetSupportedEventTypes(self, h: int) -> int:
        self._gpu(h)
        return int(pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeSingleBitEccError)

    def nvmlDeviceRegisterEvents(self, h: int, types: int, events: str) -> None:
        assert types == pynvml.nvmlEventTypeXidCriticalError and events == "event-set"
        self.registered.add(h)

    def nvmlEventSetWait_v2(self, events: str, timeout_ms: int) -> Any:
        assert timeout_ms == 0  # a read never waits for events
        while self.events:
            index, xid = self.events.pop(0)
            if index in self.registered:
                return SimpleNamespace(device=index, eventType=pynvml.nvmlEventTypeXidCriticalError,
                                       eventData=xid)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)

    def nvmlDeviceGetIndex(self, h: int) -> int:
        return h
