"""What reports read: allocations with their jobs and usage records, and each node's energy per
hour from the hour rollups. Plain tuples out, built with Core queries: a year of history is a
few hundred thousand rows, so no ORM objects are made for them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from clusterctl.store.models import Allocation, AllocationUsage, GpuDevice, GpuRollup, Job


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


class ReportStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def held(self, start_ms: int, end_ms: int, job_id: int | None = None) -> list[Any]:
        """Allocations overlapping ``[start, end]``: (allocation id, job id, job name, user,
        team, node, GPU index, GPU UUID, started, ended, record columns or NULLs)."""
        a = Allocation.__table__  # type: ignore[attr-defined]
        j = Job.__table__  # type: ignore[attr-defined]
        u = AllocationUsage.__table__  # type: ignore[attr-defined]
        q = (select(a.c.id, a.c.job_id, j.c.name, j.c.user, j.c.team, a.c.node, a.c.gpu_index,
                    a.c.gpu_uuid, a.c.started_at, a.c.ended_at, u.c.allocation_id,
                    u.c.covered_s, u.c.util_avg, u.c.energy_mj, u.c.idle_s, u.c.longest_idle_s)
             .select_from(a.join(j, j.c.id == a.c.job_id)
                          .outerjoin(u, u.c.allocation_id == a.c.id))
             .where(a.c.started_at < _at(end_ms),
                    or_(a.c.ended_at.is_(None), a.c.ended_at > _at(start_ms))))
        if job_id is not None:
            q = q.where(a.c.job_id == job_id)
        with self.engine.connect() as c:
            return list(c.execute(q).all())

    def node_energy(self, start_ms: int, end_ms: int) -> dict[tuple[str, int], float]:
        """Energy of each node's GPUs per hour (mJ), from the hour rollups."""
        r = GpuRollup.__table__  # type: ignore[attr-defined]
        q = (select(r.c.node, r.c.bucket_ms, func.sum(r.c.energy_mj))
             .where(and_(r.c.resolution_s == 3600, r.c.bucket_ms >= start_ms // 3_600_000
                         * 3_600_000, r.c.bucket_ms < end_ms))
             .group_by(r.c.node, r.c.bucket_ms))
        with self.engine.connect() as c:
            return {(n, int(b)): float(e) for n, b, e in c.execute(q) if e is not None}

    def gpus_seen(self) -> dict[str, int]:
        d = GpuDevice.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as c:
            return {n: int(k) for n, k in c.execute(
                select(d.c.node, func.count()).group_by(d.c.node))}

    def idle_jobs(self, job_ids: list[int], min_idle_s: float) -> set[int]:
        """Jobs among ``job_ids`` with a GPU idle for ``min_idle_s`` or longer, from the usage
        records (allocations that have ended)."""
        if not job_ids:
            return set()
        a = Allocation.__table__  # type: ignore[attr-defined]
        u = AllocationUsage.__table__  # type: ignore[attr-defined]
        q = (select(a.c.job_id).distinct()
             .select_from(a.join(u, u.c.allocation_id == a.c.id))
             .where(a.c.job_id.in_(job_ids), u.c.longest_idle_s >= min_idle_s))
        with self.engine.connect() as c:
            return {int(j) for (j,) in c.execute(q)}
