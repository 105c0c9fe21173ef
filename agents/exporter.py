"""The Prometheus exporter: a custom Collector that turns one snapshot into metric families.

Each scrape calls ``view()`` once, so every metric of a scrape comes from the same read (the
agent's latest, at most one interval old) and a scrape never waits on NVML. Names carry base
units, cumulative values are counters, and labels are ids only: node, GPU index, UUID, model and,
while the GPU is allocated, the job id and its user's name (never a job name or command).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.reader import GpuSample, Snapshot

GPU_LABELS = ["node", "gpu", "uuid", "model", "job", "user"]


@dataclass(frozen=True)
class Holder:
    job_id: int
    user: str


@dataclass(frozen=True)
class ExportView:
    node: str
    snapshot: Snapshot | None
    holders: dict[int, Holder] = field(default_factory=dict)
    samples_read: int = 0
    samples_shipped: int = 0
    samples_spooled: int = 0
    samples_dropped: int = 0
    samples_refused: int = 0
    read_errors: int = 0
    xids: dict[tuple[int, int], int] = field(default_factory=dict)
    """XID events since the agent started, by (GPU index, XID)."""
    last_ship: float | None = None


# (name, help with the nvidia-smi equivalent, how to get the value from a sample)
GAUGES: list[tuple[str, str, Callable[[GpuSample], float | None]]] = [
    ("clusterctl_gpu_utilization_ratio",
     "Share of the last sample period a kernel ran, 0-1 (nvidia-smi utilization.gpu).",
     lambda g: g.utilization),
    ("clusterctl_gpu_memory_used_bytes", "GPU memory in use (nvidia-smi memory.used).",
     lambda g: g.memory_used_bytes),
    ("clusterctl_gpu_memory_total_bytes", "GPU memory in all (nvidia-smi memory.total).",
     lambda g: g.memory_total_bytes),
    ("clusterctl_gpu_power_watts", "Power draw (nvidia-smi power.draw).",
     lambda g: g.power_watts),
    ("clusterctl_gpu_temperature_celsius", "GPU die temperature (nvidia-smi temperature.gpu).",
     lambda g: g.temperature_celsius),
    ("clusterctl_gpu_sm_clock_hertz", "SM clock (nvidia-smi clocks.sm, in Hz).",
     lambda g: None if g.sm_clock_mhz is None else g.sm_clock_mhz * 1_000_000),
    ("clusterctl_gpu_clocks_event_reasons",
     "Bit mask of why clocks are held down (nvidia-smi clocks_event_reasons.active).",
     lambda g: g.throttle_reasons),
    ("clusterctl_gpu_processes", "Compute processes on the GPU (nvidia-smi --query-compute-apps).",
     lambda g: len(g.processes)),
]

# Counts the driver keeps (they only grow until it reloads), published as counters.
COUNTERS: list[tuple[str, str, Callable[[GpuSample], float | None]]] = [
    ("clusterctl_gpu_uncorrected_ecc_errors",
     "Uncorrected ECC errors since the driver loaded (nvidia-smi "
     "ecc.errors.uncorrected.volatile.total).", lambda g: g.ecc_uncorrected),
    ("clusterctl_gpu_memory_retirements",
     "Rows remapped (Ampere and newer) or pages retired after uncorrectable memory errors "
     "(nvidia-smi remapped_rows.uncorrectable / retired_pages.double_bit.count).",
     lambda g: g.retired_pages),
]


class GpuCollector(Collector):
    def __init__(self, view: Callable[[], ExportView]) -> None:
        self.view = view

    def describe(self) -> Iterator[Metric]:
        return iter(())  # values are only known at scrape time

    def collect(self) -> Iterator[Metric]:
        v = self.view()
        yield from self._gpu_families(v)
        yield from self._agent_families(v)

    def _gpu_families(self, v: ExportView) -> Iterator[Metric]:
        snap = v.snapshot
        gpus = snap.gpus if snap else ()
        up = GaugeMetricFamily("clusterctl_gpu_up", "1 when the GPU answered the last read, "
                               "0 when it failed (GPU is lost).", labels=GPU_LABELS)
        families: dict[str, Metric] = {
            name: GaugeMetricFamily(name, help_, labels=GPU_LABELS) for name, help_, _ in GAUGES}
        families.update({name: CounterMetricFamily(name, help_, labels=GPU_LABELS)
                         for name, help_, _ in COUNTERS})
        stray = GaugeMetricFamily(
            "clusterctl_gpu_stray_processes",
            "Compute processes on a GPU that no running job holds (nvidia-smi "
            "--query-compute-apps, less the job the controller says holds the GPU).",
            labels=GPU_LABELS)
        energy = CounterMetricFamily(
            "clusterctl_gpu_energy_joules",
            "Energy since the driver loaded (nvidia-smi has no field; NVML "
            "nvmlDeviceGetTotalEnergyConsumption). Resets when the driver reloads.",
            labels=GPU_LABELS)
        for g in gpus:
            labels = self._labels(v, g.index, g.uuid, g.model)
            up.add_metric(labels, 1)
            for name, _, get in (*GAUGES, *COUNTERS):
                value = get(g)
                if value is not None:
                    families[name].add_metric(labels, float(value))  # type: ignore[attr-defined]
            if g.energy_mj is not None:
                energy.add_metric(labels, g.energy_mj / 1000.0)
            stray.add_metric(labels, 0 if g.index in v.holders else len(g.processes))
        for e in snap.errors if snap else ():
            up.add_metric(self._labels(v, e.index, e.uuid or "", ""), 0)
        xid = CounterMetricFamily(
            "clusterctl_gpu_xid_errors",
            "XID error events the driver raised since the agent started (the kernel log's "
            "NVRM: Xid lines).", labels=[*GPU_LABELS, "xid"])
        names = {g.index: (g.uuid, g.model) for g in gpus}
        for (index, code), count in sorted(v.xids.items()):
            uuid, model = names.get(index, ("", ""))
            xid.add_metric([*self._labels(v, index, uuid, model), str(code)], count)
        yield up
        yield from families.values()
        yield energy
        yield stray
        yield xid

    @staticmethod
    def _labels(v: ExportView, index: int, uuid: str, model: str) -> list[str]:
        holder = v.holders.get(index)
        return [v.node, str(index), uuid, model,
                str(holder.job_id) if holder else "", holder.user if holder else ""]

    @staticmethod
    def _agent_families(v: ExportView) -> Iterator[Metric]:
        def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, help_, value=value, labels=None)

        yield counter("clusterctl_agent_samples_read", "GPU samples read.", v.samples_read)
        yield counter("clusterctl_agent_samples_shipped",
                      "Samples the controller confirmed it stored.", v.samples_shipped)
        yield counter("clusterctl_agent_samples_dropped",
                      "Samples dropped: past the spool's size, or not written (its disk full).",
                      v.samples_dropped)
        yield counter("clusterctl_agent_samples_refused",
                      "Samples the controller refused for good (a time stamp outside its "
                      "clock window: check this node's clock).", v.samples_refused)
        yield counter("clusterctl_agent_read_errors", "GPU reads that failed.", v.read_errors)
        yield GaugeMetricFamily("clusterctl_agent_samples_spooled",
                                "Samples waiting in the local spool to be shipped.",
                                value=v.samples_spooled)
        last = GaugeMetricFamily("clusterctl_agent_last_ship_timestamp_seconds",
                                 "When the controller last confirmed a batch (Unix time).")
        if v.last_ship is not None:
            last.add_metric([], v.last_ship)
        yield last
