"""Per-allocation usage records: what each GPU a job held did, summed once its samples are in.

Reports over a year and a hundred thousand jobs read these rows instead of rescanning samples.
A record is written once the allocation has ended and a grace period has passed (the agent ships
every few seconds), and dropped again when late samples (a spool emptied after an outage) land
in its window, so the next housekeeping pass writes it anew from complete data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from clusterctl.store.models import Allocation
from clusterctl.store.telemetry_tables import AllocationUsage
from clusterctl.usage import Idle, Usage


class AllocationUsageStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pending(self, now: datetime, grace_s: float, limit: int = 500) -> list[Allocation]:
        """Ended allocations with no record yet, oldest first, at most ``limit`` per pass."""
        done = select(col(AllocationUsage.allocation_id))
        q = (select(Allocation)
             .where(col(Allocation.ended_at).is_not(None),
                    col(Allocation.ended_at) <= now - timedelta(seconds=grace_s),
                    col(Allocation.id).not_in(done))
             .order_by(col(Allocation.ended_at)).limit(limit))
        with Session(self.engine) as s:
            return list(s.exec(q).all())

    def save(self, a: Allocation, usage: Usage, idle: Idle, computed: datetime) -> None:
        assert a.id is not None and a.ended_at is not None
        row = AllocationUsage(
            allocation_id=a.id, job_id=a.job_id, node=a.node, gpu_index=a.gpu_index,
            start_ms=int(a.started_at.timestamp() * 1000),
            end_ms=int(a.ended_at.timestamp() * 1000),
            window_s=usage.window_s, covered_s=usage.covered_s,
            util_avg=usage.avg_utilization, power_avg=usage.avg_power_watts,
            peak_memory=usage.peak_memory_bytes, energy_mj=usage.energy_mj,
            energy_covered_s=usage.energy_covered_s, idle_s=idle.idle_s,
            longest_idle_s=idle.longest_s, computed_ms=int(computed.timestamp() * 1000))
        with Session(self.engine) as s:
            s.merge(row)
            s.commit()

    def get(self, allocation_ids: list[int]) -> dict[int, AllocationUsage]:
        if not allocation_ids:
            return {}
        with Session(self.engine) as s:
            rows = s.exec(select(AllocationUsage).where(
                col(AllocationUsage.allocation_id).in_(allocation_ids))).all()
            return {r.allocation_id: r for r in rows}


def invalidate_after(conn: object, node: str, from_ms: int) -> None:
    """Drop the records of ``node``'s allocations that ended at or after ``from_ms``: samples
    from then on have just changed (called in the rollup's transaction)."""
    since = datetime.fromtimestamp(from_ms / 1000, timezone.utc)
    stale = select(col(Allocation.id)).where(Allocation.node == node,
                                        col(Allocation.ended_at) >= since)
    conn.execute(delete(AllocationUsage).where(  # type: ignore[attr-defined]
        col(AllocationUsage.allocation_id).in_(stale)))
