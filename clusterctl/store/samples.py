"""GPU samples: idempotent bulk ingest, the live view per GPU, rollups, retention and the
points that usage is computed from.

Ingest is one transaction per batch: a multi-row ``INSERT … ON CONFLICT DO NOTHING`` on the
natural key (node, GPU UUID, boot id, sequence), so a batch shipped twice or re-shipped after an
agent restart stores nothing new. Rollups are recomputed, not incremented: each node records the
oldest sample time that arrived since its last rollup, and the rollup rebuilds the minute and
hour buckets from there, so late samples from an agent's spool land in the right buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Integer, and_, case, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from clusterctl.gpu_read import GpuRead
from clusterctl.store.allocation_usage import invalidate_after
from clusterctl.store.models import Allocation
from clusterctl.store.telemetry_tables import GpuDevice, GpuRollup, GpuSample, RollupState
from clusterctl.usage import Point

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SAMPLE_COLUMNS = (
    "gpu_index", "gpu_uuid", "boot_id", "seq", "interval_s", "utilization", "memory_used",
    "memory_total", "power_w", "energy_counter_mj", "energy_mj", "span_s", "temperature_c",
    "sm_clock_mhz", "throttle", "processes", "error",
)
ENERGY_LOOKAHEAD_MS = 15 * MINUTE_MS
"""Samples this long after a window may still carry energy used inside it."""


@dataclass(frozen=True)
class Ingested:
    inserted: int
    duplicates: int
    new: frozenset[tuple[str, str, int]] = frozenset()
    """(GPU UUID, boot id, seq) of the rows stored by this call: what a replayed batch adds
    nothing to (the controller acts on a GPU fault once, however often it is shipped)."""


def _insert(engine: Engine, table: Any) -> Any:
    return (postgresql.insert(table) if engine.dialect.name == "postgresql"
            else sqlite.insert(table))


class SampleStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.t = GpuSample.__table__  # type: ignore[attr-defined]
        self.r = GpuRollup.__table__  # type: ignore[attr-defined]
        self.d = GpuDevice.__table__  # type: ignore[attr-defined]
        self.st = RollupState.__table__  # type: ignore[attr-defined]

    # -- ingest ---------------------------------------------------------------------------------

    def ingest(self, node: str, rows: Sequence[GpuRead]) -> Ingested:
        """Store one agent batch (time in ``t`` seconds)."""
        if not rows:
            return Ingested(0, 0)
        values = [{"node": node, "ts_ms": round(r.t * 1000),
                   **{c: getattr(r, c) for c in SAMPLE_COLUMNS}} for r in rows]
        latest: dict[int, dict[str, Any]] = {}
        first: dict[int, int] = {}
        for r, v in zip(rows, values, strict=True):
            first[v["gpu_index"]] = min(v["ts_ms"], first.get(v["gpu_index"], v["ts_ms"]))
            cur = latest.get(v["gpu_index"])
            if cur is None or v["ts_ms"] >= cur["last_ms"]:
                latest[v["gpu_index"]] = {
                    "node": node, "gpu_index": v["gpu_index"], "gpu_uuid": v["gpu_uuid"],
                    "model": r.model or (cur or {}).get("model"),
                    "last_ms": v["ts_ms"],
                    "utilization": v["utilization"], "memory_used": v["memory_used"],
                    "memory_total": v["memory_total"], "power_w": v["power_w"],
                    "temperature_c": v["temperature_c"], "error": v["error"],
                    "processes": r.processes,
                }
        with self.engine.begin() as c:
            if self.engine.dialect.name == "postgresql":
                stored = self._copy_in(c, values)
            else:  # one multi-row INSERT per 1,000 rows (SQLAlchemy's insertmanyvalues)
                stmt = sqlite.insert(self.t).on_conflict_do_nothing(
                    index_elements=["node", "gpu_uuid", "boot_id", "seq"]
                ).returning(self.t.c.ts_ms, self.t.c.gpu_uuid, self.t.c.boot_id, self.t.c.seq)
                stored = [tuple(row) for row in c.execute(stmt, values)]
            if stored:
                self._mark_dirty(c, node, min(int(r[0]) for r in stored))
            self._upsert_devices(c, [{**d, "first_ms": first[i]} for i, d in latest.items()])
            uuids = {d["gpu_index"]: d["gpu_uuid"] for d in latest.values()}
            c.execute(update(Allocation).where(  # the physical GPU each open allocation holds
                col(Allocation.node) == node, col(Allocation.gpu_index).in_(list(uuids)),
                col(Allocation.gpu_uuid).is_(None),
            ).values(gpu_uuid=case(uuids, value=col(Allocation.gpu_index))))
        return Ingested(len(stored), len(values) - len(stored),
                        frozenset((str(u), str(b), int(q)) for _, u, b, q in stored))

    def _copy_in(self, c: Any, values: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """PostgreSQL: COPY the batch into a temporary table and insert from there. A multi-row
        INSERT of thousands of rows spends most of its time in the driver's parsing of the
        statement's placeholders; COPY sends rows as data."""
        cols = ["node", "ts_ms", *SAMPLE_COLUMNS]
        names = ", ".join(cols)
        cur = c.connection.driver_connection.cursor()
        try:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS gpu_sample_in ON COMMIT DELETE ROWS "
                        f"AS SELECT {names} FROM gpu_sample WITH NO DATA")
            with cur.copy(f"COPY gpu_sample_in ({names}) FROM STDIN") as copy:
                for v in values:
                    copy.write_row([v[k] for k in cols])
            cur.execute(f"INSERT INTO gpu_sample ({names}) SELECT {names} FROM gpu_sample_in "
                        "ON CONFLICT (node, gpu_uuid, boot_id, seq) DO NOTHING "
                        "RETURNING ts_ms, gpu_uuid, boot_id, seq")
            stored = [tuple(r) for r in cur.fetchall()]
            cur.execute("TRUNCATE gpu_sample_in")  # also for the next batch in this transaction
            return stored
        finally:
            cur.close()

    def _mark_dirty(self, c: Any, node: str, from_ms: int) -> None:
        ins = _insert(self.engine, self.st).values(node=node, dirty_from_ms=from_ms, version=1)
        c.execute(ins.on_conflict_do_update(
            index_elements=["node"],
            set_={
                "dirty_from_ms": func.coalesce(
                    case((self.st.c.dirty_from_ms < from_ms, self.st.c.dirty_from_ms),
                         else_=from_ms), from_ms),
                "version": self.st.c.version + 1,
            },
        ))

    def _upsert_devices(self, c: Any, devices: list[dict[str, Any]]) -> None:
        if not devices:
            return
        ins = _insert(self.engine, self.d)
        newer = ins.excluded.last_ms >= self.d.c.last_ms
        keep = ("gpu_uuid", "last_ms", "utilization", "memory_used", "memory_total", "power_w",
                "temperature_c", "error", "processes")
        set_: dict[str, Any] = {k: case((newer, ins.excluded[k]), else_=self.d.c[k])
                                for k in keep}
        set_["model"] = func.coalesce(ins.excluded.model, self.d.c.model)
        set_["first_ms"] = case((self.d.c.first_ms.is_(None), ins.excluded.first_ms),
                                (ins.excluded.first_ms < self.d.c.first_ms,
                                 ins.excluded.first_ms), else_=self.d.c.first_ms)
        c.execute(ins.on_conflict_do_update(index_elements=["node", "gpu_index"], set_=set_),
                  devices)

    # -- reading --------------------------------------------------------------------------------

    def devices(self) -> list[GpuDevice]:
        with self.engine.connect() as c:
            rows = c.execute(select(self.d).order_by(self.d.c.node, self.d.c.gpu_index)).all()
        return [GpuDevice(**row._mapping) for row in rows]

    def count(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(self.t)).scalar_one())

    def points(self, node: str, gpu_index: int, gpu_uuid: str | None, start: float, end: float,
               raw_since: float | None = None) -> list[Point]:
        """The readings of one GPU that touch ``[start, end]``: raw samples, or minute rollups
        where the window reaches back past ``raw_since`` (raw samples already expired)."""
        start_ms, end_ms = int(start * 1000), int(end * 1000) + ENERGY_LOOKAHEAD_MS
        with self.engine.connect() as c:
            if raw_since is None or start >= raw_since:
                t = self.t
                rows = c.execute(select(
                    t.c.ts_ms, t.c.interval_s, t.c.utilization, t.c.power_w, t.c.memory_used,
                    t.c.energy_mj, t.c.span_s, t.c.error,
                ).where(t.c.node == node, t.c.gpu_index == gpu_index, t.c.ts_ms >= start_ms,
                        t.c.ts_ms <= end_ms).order_by(t.c.ts_ms)).all()
                return [_raw_point(*row) for row in rows]
            if gpu_uuid is None:
                return []
            r = self.r
            buckets = c.execute(select(
                r.c.bucket_ms, r.c.covered_s, r.c.util_sum, r.c.util_n, r.c.power_sum,
                r.c.power_n, r.c.mem_max, r.c.energy_mj, r.c.energy_span_s,
            ).where(r.c.resolution_s == 60, r.c.node == node, r.c.gpu_uuid == gpu_uuid,
                    r.c.bucket_ms >= start_ms - MINUTE_MS, r.c.bucket_ms <= end_ms)
                .order_by(r.c.bucket_ms)).all()
        return [
            Point(start=b / 1000, end=b / 1000 + 60, covered_s=min(cov, 60.0),
                  util_sum=us or 0.0, util_n=un, power_sum=ps or 0.0, power_n=pn, mem_max=mm,
                  energy_mj=e, energy_start=b / 1000 if e is not None else None)
            for b, cov, us, un, ps, pn, mm, e, _ in buckets
        ]

    # -- rollups and retention ------------------------------------------------------------------

    def rollup(self, workers: int = 2) -> int:
        """Rebuild the minute and hour buckets of every node from its oldest new sample on;
        returns the number of nodes rolled up. On PostgreSQL, nodes are rolled up on
        ``workers`` connections at once (it runs no ``INSERT … SELECT`` in parallel itself);
        SQLite has one writer, so there it is one node after the other."""
        with self.engine.connect() as c:
            dirty = c.execute(select(self.st.c.node, self.st.c.dirty_from_ms, self.st.c.version)
                              .where(self.st.c.dirty_from_ms.is_not(None))).all()

        def one(node: str, from_ms: int, version: int) -> None:
            self._rollup_node(node, int(from_ms))
            with self.engine.begin() as c:  # a batch that arrived meanwhile keeps it dirty
                c.execute(update(self.st).where(self.st.c.node == node,
                                                self.st.c.version == version)
                          .values(dirty_from_ms=None))

        if workers > 1 and len(dirty) > 1 and self.engine.dialect.name == "postgresql":
            with ThreadPoolExecutor(workers, thread_name_prefix="rollup") as pool:
                list(pool.map(lambda row: one(*row), dirty))
        else:
            for row in dirty:
                one(*row)
        return len(dirty)

    def _rollup_node(self, node: str, from_ms: int) -> None:
        t, r = self.t, self.r
        minute_from = from_ms // MINUTE_MS * MINUTE_MS
        hour_from = from_ms // HOUR_MS * HOUR_MS
        bucket = (t.c.ts_ms // MINUTE_MS * MINUTE_MS).label("bucket_ms")
        ok = t.c.error.is_(None)
        minutes = select(
            literal(60, Integer), t.c.node, t.c.gpu_uuid, bucket, func.max(t.c.gpu_index),
            func.count(), func.sum(case((ok, t.c.interval_s), else_=0.0)),
            func.sum(t.c.utilization), func.count(t.c.utilization), func.max(t.c.memory_used),
            func.max(t.c.memory_total), func.sum(t.c.power_w), func.count(t.c.power_w),
            func.sum(t.c.energy_mj),
            func.sum(case((t.c.energy_mj.is_not(None), t.c.span_s), else_=None)),
            func.max(t.c.temperature_c), func.count(t.c.error),
        ).where(t.c.node == node, t.c.ts_ms >= minute_from).group_by(
            t.c.node, t.c.gpu_uuid, bucket)
        cols = ["resolution_s", "node", "gpu_uuid", "bucket_ms", "gpu_index", "samples",
                "covered_s", "util_sum", "util_n", "mem_max", "mem_total", "power_sum",
                "power_n", "energy_mj", "energy_span_s", "temp_max", "errors"]
        hb = (r.c.bucket_ms // HOUR_MS * HOUR_MS).label("bucket_ms")
        hours = select(
            literal(3600, Integer), r.c.node, r.c.gpu_uuid, hb, func.max(r.c.gpu_index),
            func.sum(r.c.samples), func.sum(r.c.covered_s), func.sum(r.c.util_sum),
            func.sum(r.c.util_n), func.max(r.c.mem_max), func.max(r.c.mem_total),
            func.sum(r.c.power_sum), func.sum(r.c.power_n), func.sum(r.c.energy_mj),
            func.sum(r.c.energy_span_s), func.max(r.c.temp_max), func.sum(r.c.errors),
        ).where(r.c.resolution_s == 60, r.c.node == node, r.c.bucket_ms >= hour_from).group_by(
            r.c.node, r.c.gpu_uuid, hb)
        with self.engine.begin() as c:
            if self.engine.dialect.name == "postgresql":
                # Aggregate in memory: with the default 4 MB, PostgreSQL sorts a day of a
                # node's samples through temporary files instead of hashing them.
                c.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            c.execute(delete(r).where(r.c.resolution_s == 60, r.c.node == node,
                                      r.c.bucket_ms >= minute_from))
            c.execute(insert(r).from_select(cols, minutes))
            c.execute(delete(r).where(r.c.resolution_s == 3600, r.c.node == node,
                                      r.c.bucket_ms >= hour_from))
            c.execute(insert(r).from_select(cols, hours))
            invalidate_after(c, node, from_ms)

    def expire(self, raw_before: float, minutes_before: float) -> tuple[int, int]:
        """Delete raw samples and minute rollups older than the given times, but never what
        has not been rolled up yet; hour rollups are kept. Returns (samples, minutes) deleted."""
        raw_ms, min_ms = int(raw_before * 1000), int(minutes_before * 1000)
        with self.engine.begin() as c:
            pending = c.execute(select(func.min(self.st.c.dirty_from_ms))).scalar()
            if pending is not None:
                raw_ms = min(raw_ms, int(pending))
            raw = c.execute(delete(self.t).where(self.t.c.ts_ms < raw_ms)).rowcount
            mins = c.execute(delete(self.r).where(
                and_(self.r.c.resolution_s == 60, self.r.c.bucket_ms < min_ms))).rowcount
        return int(raw or 0), int(mins or 0)


def _raw_point(ts_ms: int, interval_s: float, util: float | None, power: float | None,
               mem: int | None, energy: float | None, span: float | None,
               error: str | None) -> Point:
    end = ts_ms / 1000
    return Point(
        start=end - interval_s, end=end, covered_s=0.0 if error else interval_s,
        util_sum=util or 0.0, util_n=0 if util is None else 1,
        power_sum=power or 0.0, power_n=0 if power is None else 1, mem_max=mem,
        energy_mj=energy, energy_start=end - span if energy is not None and span else None,
    )


__all__ = ["Ingested", "SampleStore"]
