"""What reports read: allocations with their jobs and usage records, and each node's energy per
hour from the hour rollups. Plain tuples out, built with Core queries: a year of history is a
few hundred thousand rows, so no ORM objects are made for them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, func, or_, select

from clusterctl.reports.inputs import IdleEnded
from clusterctl.states import IDLE_END, JobState
from clusterctl.store.models import Allocation, Job
from clusterctl.store.telemetry_tables import AllocationUsage, GpuDevice

RECORD_COLUMNS = {"job": "job_id", "node": "node", "gpu": "gpu_index", "start": "start_ms",
                  "end": "end_ms", "covered": "covered_s", "util": "util_avg",
                  "energy": "energy_mj", "idle": "idle_s", "longest": "longest_idle_s"}


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def _aware(t: datetime) -> datetime:
    """SQLite hands back naive UTC times."""
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


class ReportStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Plain tuples straight from the driver's cursor: building 250,000 SQLAlchemy rows
        took longer than the report that reads them. ``sql`` uses ``:name`` parameters."""
        if self.engine.dialect.name == "postgresql":
            sql = re.sub(r":(\w+)", r"%(\1)s", sql)
        with self.engine.connect() as c:
            cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def records(self, start_ms: int, end_ms: int, job_ids: Sequence[int] | None = None,
                fields: Sequence[str] = tuple(RECORD_COLUMNS)) -> list[Any]:
        """Usage records of allocations overlapping ``[start, end]``, as tuples of ``fields``
        (keys of :data:`RECORD_COLUMNS`): a report asks only for what it reads, as each value
        costs the driver about a microsecond to parse. ``job_ids``: only these jobs'."""
        columns = ", ".join(RECORD_COLUMNS[f] for f in fields)
        sql = (f"SELECT {columns} FROM allocation_usage "
               "WHERE end_ms > :start AND start_ms < :end")
        params: dict[str, Any] = {"start": start_ms, "end": end_ms}
        if job_ids is not None:
            names = [f"j{i}" for i in range(len(job_ids))] or ["none"]
            sql += f" AND job_id IN ({', '.join(':' + n for n in names)})"
            params.update(zip(names, job_ids, strict=False) if job_ids else {"none": -1})
        return self._fetch(sql, params)

    def unrecorded(self, start_ms: int, end_ms: int, job_ids: Sequence[int] | None = None
                   ) -> list[Any]:
        """Allocations overlapping ``[start, end]`` with no usage record yet (running, or
        ended within the grace period): (allocation id, job id, node, GPU index, GPU UUID,
        started, ended or None)."""
        a = Allocation.__table__  # type: ignore[attr-defined]
        u = AllocationUsage.__table__  # type: ignore[attr-defined]
        q = (select(a.c.id, a.c.job_id, a.c.node, a.c.gpu_index, a.c.gpu_uuid, a.c.started_at,
                    a.c.ended_at)
             .select_from(a.outerjoin(u, u.c.allocation_id == a.c.id))
             .where(u.c.allocation_id.is_(None), a.c.started_at < _at(end_ms),
                    or_(a.c.ended_at.is_(None), a.c.ended_at > _at(start_ms))))
        if job_ids is not None:
            q = q.where(a.c.job_id.in_(list(job_ids)))
        with self.engine.connect() as c:
            return list(c.execute(q).all())

    def jobs(self, job_ids: Iterable[int], names: bool = True
             ) -> dict[int, tuple[str, str, str]]:
        """(name, user, team) of each job, read in one id range rather than a huge IN list;
        without ``names``, the name is left empty (a year's names cost a report 0.15 s)."""
        ids = set(job_ids)
        if not ids:
            return {}
        name = "name" if names else "''"
        rows = self._fetch(f'SELECT id, {name}, "user", team FROM job '
                           'WHERE id BETWEEN :lo AND :hi', {"lo": min(ids), "hi": max(ids)})
        return {i: (n, u, t) for i, n, u, t in rows if i in ids}

    def services_of(self, job_ids: Iterable[int]) -> dict[int, str]:
        """The service each of these jobs was a replica of (jobs of none are left out)."""
        ids = set(job_ids)
        if not ids:
            return {}
        rows = self._fetch("SELECT job.id, service.name FROM job JOIN service ON "
                           "service.id = job.service_id WHERE job.id BETWEEN :lo AND :hi",
                           {"lo": min(ids), "hi": max(ids)})
        return {int(i): str(n) for i, n in rows if i in ids}

    def node_energy(self, start_ms: int, end_ms: int,
                    bucket_ms: int) -> dict[tuple[str, int], float]:
        """Energy of each node's GPUs (mJ) from the hour rollups starting in ``[start, end)``,
        summed by the database into buckets of ``bucket_ms`` from ``start`` (the whole period,
        or days): a few thousand rows out of a year's half a million."""
        rows = self._fetch(
            "SELECT node, (bucket_ms - :start) / :size, SUM(energy_mj) FROM gpu_rollup "
            "WHERE resolution_s = 3600 AND bucket_ms >= :start AND bucket_ms < :end "
            "GROUP BY node, (bucket_ms - :start) / :size",
            {"start": start_ms, "end": end_ms, "size": bucket_ms})
        return {(n, start_ms + int(k) * bucket_ms): float(e) for n, k, e in rows
                if e is not None}

    def idle_ended(self, start_ms: int, end_ms: int) -> list[IdleEnded]:
        """Jobs idle reclaim ended in ``[start, end)``, with a node of their last attempt."""
        j = Job.__table__  # type: ignore[attr-defined]
        a = Allocation.__table__  # type: ignore[attr-defined]
        node = (select(func.min(a.c.node)).where(a.c.job_id == j.c.id,
                                                  a.c.attempt == j.c.attempt)
                .scalar_subquery())
        q = (select(j.c.id, j.c.gpus, j.c.nodes, j.c.started_at, j.c.ended_at,
                    j.c.time_limit_s, node)
             .where(j.c.state == JobState.CANCELLED.value,
                    j.c.reason.like(f"{IDLE_END}%"),
                    j.c.ended_at >= _at(start_ms), j.c.ended_at < _at(end_ms)))
        out = []
        with self.engine.connect() as c:
            for jid, gpus, nodes, started, ended, limit, on in c.execute(q):
                ended_ms = int(_aware(ended).timestamp() * 1000)
                limit_end = (int(_aware(started).timestamp() * 1000) + limit * 1000
                             if limit and started is not None else None)
                out.append(IdleEnded(int(jid), on or "", int(gpus) * int(nodes), ended_ms,
                                     limit_end))
        return out

    def gpus_seen(self) -> dict[str, int]:
        d = GpuDevice.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as c:
            return {n: int(k) for n, k in c.execute(
                select(d.c.node, func.count()).group_by(d.c.node))}

    def first_samples(self) -> dict[str, int]:
        """When each node's first GPU sample was stored (where tracking began)."""
        d = GpuDevice.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as c:
            return {n: int(ms) for n, ms in c.execute(
                select(d.c.node, func.min(d.c.first_ms)).group_by(d.c.node)) if ms is not None}

    def models_seen(self) -> dict[str, str]:
        d = GpuDevice.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as c:
            return {n: m for n, m in c.execute(
                select(d.c.node, func.min(d.c.model)).group_by(d.c.node)) if m}

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
