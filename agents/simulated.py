"""The simulated GPU reader, for machines without an NVIDIA driver (the demo, CI, laptops).

It implements :class:`agents.reader.GpuReader` with believable numbers: a GPU whose job computes
shows it (high utilization, most of its memory, power near its limit, a warm die) and the others
idle. A GPU computes while the processes of the job on it (found in ``/proc``, as NVML lists a
real GPU's) use CPU, and idles while they sleep or wait: ``sleep 600`` holds an idle GPU and a
busy loop a busy one, with nothing in the job that a real job would not do, which is what makes
idle reclaim testable honestly. Without ``/proc`` (unit tests), the GPUs that hold a job, from
the ``busy`` callable the agent feeds from the controller's allocation records, compute.

Profiles reproduce what real drivers do to us: power not supported, a GPU lost mid-run, an
energy counter that resets (driver reload) and none at all, and the faults that make a node
unfit for jobs: XID 79 (the GPU falls off the bus) and a double-bit ECC error (XID 48).
"""

from __future__ import annotations

import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from agents.reader import GpuError, GpuProcess, GpuSample, Snapshot, Xid

GIB = 1 << 30


@dataclass(frozen=True)
class Profile:
    power: bool = True
    """False: power draw not supported (and so no energy counter either)."""
    energy_counter: bool = True
    lost_after_s: float | None = None
    """The GPU falls off the bus this long after the reader starts."""
    energy_reset_every_s: float | None = None
    """The energy counter restarts from zero this often, as after a driver reload."""
    xid: int | None = None
    """An XID error the driver raises once, ``xid_after_s`` after the reader starts."""
    xid_after_s: float = 3.0
    ecc_error: bool = False
    """With the XID: an uncorrected ECC error counted and its page retired (XID 48)."""


PROFILES: dict[str, Profile] = {
    "normal": Profile(),
    "no-power": Profile(power=False, energy_counter=False),
    "no-energy": Profile(energy_counter=False),
    "energy-reset": Profile(energy_reset_every_s=30.0),
    "lost": Profile(lost_after_s=30.0),
    "xid-79": Profile(xid=79, lost_after_s=3.0),
    "ecc-dbe": Profile(xid=48, ecc_error=True),
}


def parse_profiles(spec: str | None) -> dict[int, Profile]:
    """``"2=no-power,5=lost"`` → {2: no-power, 5: lost}; GPUs not named are ``normal``."""
    out: dict[int, Profile] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        index, sep, name = part.partition("=")
        if not sep or not index.strip().isdigit() or name.strip() not in PROFILES:
            raise ValueError(f"{part!r} is not INDEX=PROFILE with PROFILE one of "
                             + ", ".join(PROFILES))
        out[int(index)] = PROFILES[name.strip()]
    return out


@dataclass
class _Gpu:
    index: int
    uuid: str
    profile: Profile
    rng: random.Random
    energy_mj: float
    last_reset: float
    memory_used: int = 0
    temperature: float = 34.0
    power: float = 0.0
    was_busy: bool = False
    lost: bool = field(default=False)
    xid_raised: bool = False
    ecc_errors: int = 0
    model: str = ""
    memory_bytes: int = 0


BUSY_CPU = 0.05
"""A GPU computes while its processes use at least this share of a CPU."""
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def cpu_seconds(proc: Path, pid: int) -> float | None:
    """CPU time (user and system) a process has used, from ``/proc/PID/stat``."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return (int(fields[11]) + int(fields[12])) * _TICK_S
    except (IndexError, ValueError):
        return None


def job_processes(proc: Path, node: str) -> dict[int, list[GpuProcess]]:
    """The processes of clusterctl jobs on each simulated GPU, as NVML lists the processes on
    a real one: found in ``/proc`` by the ``CLUSTERCTL_JOB_ID`` and ``CUDA_VISIBLE_DEVICES``
    every job process inherits (and ``CLUSTERCTL_NODE``, where several simulated nodes share a
    machine). A job that left a process behind shows up here, as it would on a real GPU."""
    found: dict[int, list[GpuProcess]] = {}
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            raw = (proc / pid / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if b"CLUSTERCTL_JOB_ID=" not in raw or b"CUDA_VISIBLE_DEVICES=" not in raw:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                   if "=" in item)
        if env.get("CLUSTERCTL_NODE", node) != node:
            continue
        for gpu in env.get("CUDA_VISIBLE_DEVICES", "").split(","):
            if gpu.strip().isdigit():
                found.setdefault(int(gpu), []).append(GpuProcess(int(pid), None))
    return found


class SimulatedReader:
    def __init__(
        self,
        count: int,
        *,
        node: str = "sim",
        model: str = "A100-80GB (sim)",
        memory_bytes: int = 80 * GIB,
        idle_watts: float = 62.0,
        max_watts: float = 400.0,
        profiles: dict[int, Profile] | None = None,
        busy: Callable[[], set[int]] = set,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        proc: Path | None = None,
        models: list[tuple[str, int]] | None = None,
    ) -> None:
        """``models``: per GPU, (model, memory in bytes) on a machine of several models; else
        every GPU is ``model`` with ``memory_bytes``."""
        self.node = node
        self.proc = proc
        """Where the job processes on these GPUs are found (None: none, in unit tests)."""
        self.model = model
        self.memory_bytes = memory_bytes
        self.idle_watts = idle_watts
        self.max_watts = max_watts
        self.busy = busy
        self.clock = clock
        self.started = clock()
        self.last_read: float | None = None
        base = zlib.crc32(node.encode())
        self.gpus = [
            _Gpu(index=i,
                 uuid=f"GPU-{base:08x}-5151-4d00-8000-{i:012x}",
                 profile=(profiles or {}).get(i, PROFILES["normal"]),
                 rng=random.Random((seed if seed is not None else base) * 1009 + i),
                 energy_mj=0.0,  # as after a driver load: a restarted agent's GPUs count
                 # from zero, which the sample logic reads as a reset (never a spike)
                 last_reset=self.started,
                 model=models[i][0] if models else model,
                 memory_bytes=models[i][1] if models else memory_bytes)
            for i in range(count)
        ]
        self._mem_base = int(0.45 * GIB)
        self._cpu: dict[int, float] = {}
        """CPU seconds of each job process at the last read."""

    def close(self) -> None:
        pass

    def read(self) -> Snapshot:
        now = self.clock()
        dt = 0.0 if self.last_read is None else max(0.0, now - self.last_read)
        self.last_read = now
        on_gpu = job_processes(self.proc, self.node) if self.proc is not None else {}
        busy = self.busy() if self.proc is None or not dt else self._computing(on_gpu, dt)
        gpus: list[GpuSample] = []
        errors: list[GpuError] = []
        xids: list[Xid] = []
        for g in self.gpus:
            p = g.profile
            if p.xid is not None and not g.xid_raised and now - self.started >= p.xid_after_s:
                g.xid_raised = True
                xids.append(Xid(g.index, p.xid))
                g.ecc_errors += 1 if p.ecc_error else 0
            if p.lost_after_s is not None and now - self.started >= p.lost_after_s:
                g.lost = True
            if g.lost:
                errors.append(GpuError(g.index, g.uuid, "GPU is lost"))
                continue
            gpus.append(replace(self._step(g, g.index in busy, now, dt),
                                processes=tuple(on_gpu.get(g.index, ()))))
        return Snapshot(at=now, gpus=tuple(gpus), errors=tuple(errors), xids=tuple(xids))

    def _computing(self, on_gpu: dict[int, list[GpuProcess]], dt: float) -> set[int]:
        """The GPUs whose processes used CPU since the last read."""
        assert self.proc is not None
        seen: dict[int, float] = {}
        busy = set()
        for index, procs in on_gpu.items():
            used = 0.0
            for p in procs:
                now_s = seen.get(p.pid)
                if now_s is None:
                    now_s = cpu_seconds(self.proc, p.pid)
                    if now_s is None:
                        continue
                    seen[p.pid] = now_s
                used += now_s - self._cpu.get(p.pid, 0.0)  # a new process: all it used
            if used / dt >= BUSY_CPU:
                busy.add(index)
        self._cpu = seen
        return busy

    def _step(self, g: _Gpu, busy: bool, now: float, dt: float) -> GpuSample:
        rng, p = g.rng, g.profile
        if busy:
            util = min(1.0, max(0.0, rng.gauss(0.86, 0.07)))
            if not g.was_busy:  # a new job loads its model and batches
                g.memory_used = int(g.memory_bytes * rng.uniform(0.45, 0.85))
            g.memory_used = min(g.memory_bytes, max(self._mem_base, int(
                g.memory_used + rng.gauss(0, 0.01) * g.memory_bytes)))
            target_temp = 68.0 + 8 * util
        else:
            util = 0.0
            g.memory_used = self._mem_base if g.was_busy or not g.memory_used else g.memory_used
            target_temp = 33.0
        g.was_busy = busy
        power = self.idle_watts + util * (self.max_watts - self.idle_watts) + rng.gauss(0, 4)
        power = max(self.idle_watts * 0.9, power)
        # Energy: what the previous power drew over the time since the last read.
        g.energy_mj += (g.power or power) * dt * 1000.0
        g.power = power
        if p.energy_reset_every_s is not None and now - g.last_reset >= p.energy_reset_every_s:
            g.energy_mj = power * 1000.0 * min(dt, 1.0)
            g.last_reset = now
        g.temperature += (target_temp - g.temperature) * min(1.0, dt / 20.0) if dt else 0.0
        return GpuSample(
            index=g.index,
            uuid=g.uuid,
            model=g.model,
            utilization=round(util, 3),
            memory_used_bytes=g.memory_used,
            memory_total_bytes=g.memory_bytes,
            power_watts=round(power, 1) if p.power else None,
            energy_mj=int(g.energy_mj) if p.power and p.energy_counter else None,
            temperature_celsius=round(g.temperature, 1),
            sm_clock_mhz=1410 if busy else 210,
            throttle_reasons=0 if busy else 1,  # GpuIdle
            processes=(),
            ecc_uncorrected=g.ecc_errors,
            retired_pages=g.ecc_errors,
        )
