"""Small builders for rows used across tests."""

from __future__ import annotations

from clusterctl.gpu_read import GpuRead
from clusterctl.job_request import JobRequest
from clusterctl.store import NewJob


def new_job(name: str = "train", user: str = "alice", team: str = "vision",
            **asked: object) -> NewJob:
    """A job of ``user`` as the controller stores it; ``asked`` are JobRequest's fields."""
    request = JobRequest.parse({"command": ["python", "train.py"], "gpus": 1, **asked})
    return NewJob(name=name, user=user, team=team, request=request)


def sample_batch(node: str = "n1", *, gpus: int = 2, reads: int = 10, t0: float = 1.8e9,
                 interval: float = 5.0, seq0: int = 1, boot: str = "boot-1",
                 util: float = 0.5, power: float = 200.0,
                 energy_per_read_mj: float = 1_000_000.0) -> list[dict[str, object]]:
    """Rows as an agent ships them: ``reads`` reads of ``gpus`` GPUs, every ``interval`` s."""
    rows: list[dict[str, object]] = []
    for r in range(reads):
        for g in range(gpus):
            rows.append({
                "gpu_index": g, "gpu_uuid": f"GPU-{node}-{g}", "model": "A100", "boot_id": boot,
                "seq": seq0 + r, "t": t0 + r * interval, "interval_s": interval,
                "utilization": util, "memory_used": (10 + r) << 30, "memory_total": 80 << 30,
                "power_w": power, "energy_counter_mj": int(energy_per_read_mj * (r + 1)),
                "energy_mj": energy_per_read_mj, "span_s": interval, "temperature_c": 60.0,
                "sm_clock_mhz": 1410, "throttle": 0, "processes": 1, "error": None,
            })
    return rows


def as_reads(rows: list[dict[str, object]]) -> list[GpuRead]:
    """Rows as the agent ships them, as the API hands them on once validated."""
    return [GpuRead.model_validate(r) for r in rows]
