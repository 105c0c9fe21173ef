"""The NVML reader: the only module that imports ``pynvml`` (package ``nvidia-ml-py``).

Every NVML call goes through :meth:`NvmlReader._query`, which (like nvitop's ``nvmlQuery``) turns
"not supported" into ``None`` and logs a driver older than the binding (``FunctionNotFound``)
once per function instead of on every read. A GPU whose calls fail otherwise (``GPU is lost``)
becomes a :class:`GpuError` and the other GPUs still report. Only NVML device queries are used,
no DCGM profiling counters, so consumer cards (RTX 4090) report like A100/H100.

XID errors come from an NVML event set (``nvmlEventTypeXidCriticalError``), drained without
waiting at each read; they arrive even for a GPU that has just fallen off the bus (XID 79).
ECC health is read as nvidia-smi shows it: uncorrected errors since the driver loaded, and
rows remapped (Ampere and newer) or pages retired (before) after uncorrectable errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from agents.reader import GpuError, GpuProcess, GpuSample, NoGpuBackend, Snapshot, Xid

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
        self._events: Any = None
        self._handles: dict[Any, int] = {}
        """Event-set handle → GPU index, for an event whose GPU no longer answers."""

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
        self._watch_xids()

    def _watch_xids(self) -> None:
        nvml = self.nvml
        xid_type = getattr(nvml, "nvmlEventTypeXidCriticalError", None)
        if xid_type is None or not hasattr(nvml, "nvmlEventSetCreate"):
            log.warning("nvidia-ml-py has no event sets: XID errors are not watched")
            return
        try:
            self._events = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as e:
            log.warning("XID errors are not watched: %s", e)
            return
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                if nvml.nvmlDeviceGetSupportedEventTypes(handle) & xid_type:
                    nvml.nvmlDeviceRegisterEvents(handle, xid_type, self._events)
                    self._handles[_key(handle)] = index
            except nvml.NVMLError as e:
                log.warning("XID errors of GPU %d are not watched: %s", index, e)

    def _xids(self) -> list[Xid]:
        """The XID events raised since the last read (never waits)."""
        if self._events is None:
            return []
        nvml = self.nvml
        wait = getattr(nvml, "nvmlEventSetWait_v2", None) or nvml.nvmlEventSetWait
        out: list[Xid] = []
        for _ in range(1024):  # a storm of events still ends this read
            try:
                data = wait(self._events, 0)
            except nvml.NVMLError_Timeout:
                break
            except nvml.NVMLError as e:
                log.warning("reading XID events failed: %s", e)
                break
            index = self._handles.get(_key(data.device))
            if index is None:
                try:
                    index = int(nvml.nvmlDeviceGetIndex(data.device))
                except nvml.NVMLError:
                    index = -1
            out.append(Xid(index=index, xid=int(data.eventData)))
        return out

    def close(self) -> None:
        if self._started:
            self._started = False
            if self._events is not None:
                with contextlib.suppress(self.nvml.NVMLError):
                    self.nvml.nvmlEventSetFree(self._events)
                self._events = None
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
        return Snapshot(at=at, gpus=tuple(gpus), errors=tuple(errors), xids=tuple(self._xids()))

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
        ecc = self._query("nvmlDeviceGetTotalEccErrors", handle,
                          nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC)
        remapped = self._query("nvmlDeviceGetRemappedRows", handle)
        if remapped is not None:  # (correctable, uncorrectable, pending, failed)
            retired: int | None = int(remapped[1])
        else:
            pages = self._query("nvmlDeviceGetRetiredPages", handle,
                                nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
            retired = None if pages is None else len(pages)
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
            ecc_uncorrected=None if ecc is None else int(ecc),
            retired_pages=retired,
        )


def _key(handle: Any) -> Any:
    """A device handle as a dict key: the address it points at (ctypes pointers to the same
    device are distinct objects)."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


def _memory(value: Any) -> int | None:
    # NVML reports "not available" as None or as the all-ones sentinel, depending on version.
    if value is None or value >= (1 << 63):
        return None
    return int(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
