"""Turning reads into the rows the agent ships: sequence numbers and energy since the last read.

Pure code. The agent keeps, per GPU, the last energy counter it saw (in the spool, so a restart
continues where it left off) and ships with every sample the energy used since that read
(``energy_mj``) and the time it spans (``span_s``). Summing those over a job's window is the
difference of counter reads that the cost model asks for, with two corrections real drivers make
necessary: a counter that goes down was reset (driver reload, reboot), so the energy since the
reset is the new value itself, never a negative delta; and a GPU without a counter gets its
energy from its power samples (trapezoids), but only across a gap short enough to trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.reader import Snapshot
from clusterctl.gpu_read import GpuRead


@dataclass(frozen=True)
class LastRead:
    boot_id: str
    at: float
    energy_mj: int | None
    power_watts: float | None


def energy_since(prev: LastRead | None, boot_id: str, at: float, energy_mj: int | None,
                 power_watts: float | None, max_power_gap_s: float) -> tuple[float | None,
                                                                             float | None]:
    """(energy in mJ, seconds it spans) since ``prev``; (None, None) when it cannot be known."""
    if prev is None or at <= prev.at:
        return None, None
    span = at - prev.at
    if energy_mj is not None:
        if prev.boot_id != boot_id or prev.energy_mj is None or energy_mj < prev.energy_mj:
            return float(energy_mj), span  # the counter restarted inside this span
        return float(energy_mj - prev.energy_mj), span
    if power_watts is not None and prev.power_watts is not None and span <= max_power_gap_s:
        return (prev.power_watts + power_watts) / 2 * span * 1000.0, span
    return None, None


def covered(prev: LastRead | None, boot_id: str, at: float, interval_s: float) -> float:
    """The time a read at ``at`` stands for: since the GPU's last read (a read a little late
    on a loaded machine still watched the GPU the whole time, and one early does not count
    time twice), at most twice the interval (beyond that the agent was away: a gap); the
    interval for a first read, or after a reboot or a clock that went back."""
    if prev is None or prev.boot_id != boot_id or at <= prev.at:
        return interval_s
    return min(at - prev.at, 2 * interval_s)


def sample_rows(snapshot: Snapshot, seq: int, boot_id: str, interval_s: float,
                last: dict[str, LastRead]) -> tuple[list[GpuRead], dict[str, LastRead]]:
    """The rows for one read (all its GPUs share ``seq``) and the updated last reads."""
    rows: list[GpuRead] = []
    updated = dict(last)
    xids: dict[int, list[int]] = {}
    for x in snapshot.xids:
        xids.setdefault(x.index, []).append(x.xid)
    for g in snapshot.gpus:
        prev = last.get(g.uuid)
        energy, span = energy_since(prev, boot_id, snapshot.at, g.energy_mj,
                                    g.power_watts, max_power_gap_s=3 * interval_s)
        updated[g.uuid] = LastRead(boot_id, snapshot.at, g.energy_mj, g.power_watts)
        rows.append(GpuRead.model_construct(
            gpu_index=g.index, gpu_uuid=g.uuid, model=g.model, boot_id=boot_id, seq=seq,
            t=snapshot.at, interval_s=covered(prev, boot_id, snapshot.at, interval_s),
            utilization=g.utilization,
            memory_used=g.memory_used_bytes, memory_total=g.memory_total_bytes,
            power_w=g.power_watts, energy_counter_mj=g.energy_mj, energy_mj=energy,
            span_s=span, temperature_c=g.temperature_celsius,
            sm_clock_mhz=g.sm_clock_mhz, throttle=g.throttle_reasons,
            processes=len(g.processes), error=None,
            xids=xids.pop(g.index, []), ecc_uncorrected=g.ecc_uncorrected,
            retired_pages=g.retired_pages))
    for e in snapshot.errors:
        if e.uuid is None:
            continue  # never identified: nothing to key it on
        rows.append(GpuRead.model_construct(
            gpu_index=e.index, gpu_uuid=e.uuid, model=None, boot_id=boot_id, seq=seq,
            t=snapshot.at, interval_s=interval_s, error=e.error[:200],
            xids=xids.pop(e.index, [])))
    return rows, updated


def last_reads_to_json(last: dict[str, LastRead]) -> dict[str, list[Any]]:
    return {u: [r.boot_id, r.at, r.energy_mj, r.power_watts] for u, r in last.items()}


def last_reads_from_json(data: dict[str, list[Any]]) -> dict[str, LastRead]:
    return {u: LastRead(str(v[0]), float(v[1]), v[2], v[3]) for u, v in data.items()}
