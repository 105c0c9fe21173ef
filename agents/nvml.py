"""The NVML reader: the only module that imports ``pynvml`` (package ``nvidia-ml-py``).

Every NVML call goes through :meth:`NvmlReader._query`, which (like nvitop's ``nvmlQuery``) turns
"not supported" into ``None`` and logs a driver older than the binding (``FunctionNotFound``)
once per function instead of on every read. A GPU whose calls fail otherwise (``GPU is lost``)
becomes a :class:`GpuError` and the other GPUs still report. Only NVML device queries are used,
no DCGM profiling counters, so consumer cards (RTX 4090) report like A100/H100.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from agents.reader import GpuError, GpuProcess, GpuSample, NoGpuBackend, Snapshot

log = logging.getLogger(__name__)


class _Skip(Exception):
    """A field this GPU or driver cannot give: reported as None."""


class NvmlReader:
    def __init__(self, nvml: ModuleType | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if nvml is None:
            import pynvml

            nvml = pynvml
        self.nvml: Any = nvml
        self.clock = clock
        self._started = False
        self._missing: set[str] = set()
        self._static: dict[int, tuple[str, str]] = {}
        self.driver_version: str | None = None

    def start(self) -> None:
        """Initialise NVML once; :class:`NoGpuBackend` when there is no driver to talk to."""
        if self._started:
            return
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as e:
            raise NoGpuBackend(
                f"NVML is not available ({e}): no NVIDIA driver on this machine; "
                "use --simulate-gpus N to try clusterctl without one") from e
        self._started = True
        try:
            self.driver_version = _text(self.nvml.nvmlSystemGetDriverVersion())
        except self.nvml.NVMLError:
            self.driver_version = None

    def close(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlShutdown()

    def read(self) -> Snapshot:
        self.start()
        at = self.clock()
        count = self.nvml.nvmlDeviceGetCount()
        gpus: list[GpuSample] = []
        errors: list[GpuError] = []
        for index in range(count):
            try:
                gpus.append(self._read_gpu(index))
            except self.nvml.NVMLError as e:
                uuid = self._static.get(index, (None, None))[0]
                errors.append(GpuError(index=index, uuid=uuid, error=str(e)))
        return Snapshot(at=at, gpus=tuple(gpus), errors=tuple(errors))

    # -- one GPU ------------------------------------------------------------------------------

    def _query(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(*args)``; None when the GPU or driver does not support it."""
        if name in self._missing:
            return None
        fn = getattr(self.nvml, name, None)
        if fn is None:
            self._missing.add(name)
            log.warning("nvidia-ml-py has no %s; that metric is not reported", name)
            return None
        try:
            return fn(*args)
        except (self.nvml.NVMLError_NotSupported, self.nvml.NVMLError_NoPermission):
            return None
        except self.nvml.NVMLError_FunctionNotFound:
            self._missing.add(name)
            log.warning("the NVIDIA driver (%s) is older than nvidia-ml-py: %s is not "
                        "available, its metric is not reported", self.driver_version, name)
            return None

    def _read_gpu(self, index: int) -> GpuSample:
        nvml = self.nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        if index not in self._static:
            uuid = _text(self._query("nvmlDeviceGetUUID", handle)) or f"index-{index}"
            model = _text(self._query("nvmlDeviceGetName", handle)) or "unknown"
            self._static[index] = (uuid, model)
        uuid, model = self._static[index]
        rates = self._query("nvmlDeviceGetUtilizationRates", handle)
        memory = self._query("nvmlDeviceGetMemoryInfo", handle)
        power_mw = self._query("nvmlDeviceGetPowerUsage", handle)
        energy = self._query("nvmlDeviceGetTotalEnergyConsumption", handle)
        temperature = self._query("nvmlDeviceGetTemperature", handle, nvml.NVML_TEMPERATURE_GPU)
        sm_clock = self._query("nvmlDeviceGetClockInfo", handle, nvml.NVML_CLOCK_SM)
        reasons = self._query(
            "nvmlDeviceGetCurrentClocksEventReasons"
            if hasattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons")
            else "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        procs = self._query("nvmlDeviceGetComputeRunningProcesses", handle) or []
        return GpuSample(
            index=index,
            uuid=uuid,
            model=model,
            utilization=None if rates is None else rates.gpu / 100.0,
            memory_used_bytes=None if memory is None else int(memory.used),
            memory_total_bytes=None if memory is None else int(memory.total),
            power_watts=None if power_mw is None else power_mw / 1000.0,
            energy_mj=None if energy is None else int(energy),
            temperature_celsius=None if temperature is None else float(temperature),
            sm_clock_mhz=None if sm_clock is None else int(sm_clock),
            throttle_reasons=None if reasons is None else int(reasons),
            processes=tuple(
                GpuProcess(pid=int(p.pid), used_memory_bytes=_memory(p.usedGpuMemory))
                for p in procs
            ),
        )


def _memory(value: Any) -> int | None:
    # NVML reports "not available" as None or as the all-ones sentinel, depending on version.
    if value is None or value >= (1 << 63):
        return None
    return int(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
