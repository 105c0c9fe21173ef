"""Rolling 5-second GPU samples up into 1-minute and 1-hour buckets: time for DAYS of samples
of 64 GPUs (8 nodes of 8), on PostgreSQL and SQLite, through `SampleStore.rollup()` — the same
call the controller's housekeeping thread makes.

The samples are generated inside the database (generate_series / a recursive CTE), so the
figure is the rollup's alone. A year of 64 GPUs is 404 million samples; the script measures
the DAYS given and prints the rate and the year it implies.
Run: python bench/rollup.py DAYS [POSTGRES_URL]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import scratch_database
from sqlalchemy import text

from clusterctl.gpu_read import GpuRead
from clusterctl.store import SampleStore, make_engine, migrate

GPUS = 64
INTERVAL_MS = 5000
T0_MS = 1_800_000_000_000
YEAR_SAMPLES = 365 * 86400 // 5 * GPUS

COLUMNS = ("node, gpu_uuid, gpu_index, boot_id, seq, ts_ms, interval_s, utilization, "
           "memory_used, memory_total, power_w, energy_counter_mj, energy_mj, span_s, "
           "temperature_c, sm_clock_mhz, throttle, processes")


def values(g: str, s: str) -> str:
    return (f"'node-' || ({g} / 8), 'GPU-' || {g}, {g} % 8, 'b', {s}, {T0_MS} + {s} * "
            f"{INTERVAL_MS}, 5.0, (({s} * 7 + {g}) % 100) / 100.0, 40000000000, 85899345920, "
            f"250.0 + ({s} % 50), 1000000000 + CAST({s} AS BIGINT) * 1250000, 1250000.0, 5.0, "
            "60.0, 1410, 0, 1")


def fill(engine, reads: int) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text(f"INSERT INTO gpu_sample ({COLUMNS}) SELECT {values('g', 's')} "
                           f"FROM generate_series(0, {GPUS - 1}) g, "
                           f"generate_series(0, {reads - 1}) s"))
        else:
            c.execute(text(
                f"WITH RECURSIVE gs(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM gs "
                f"WHERE g < {GPUS - 1}), ss(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM ss "
                f"WHERE s < {reads - 1}) INSERT INTO gpu_sample ({COLUMNS}) "
                f"SELECT {values('g', 's')} FROM gs, ss"))
        c.execute(text("INSERT INTO rollup_state (node, dirty_from_ms, version) "
                       f"SELECT DISTINCT node, {T0_MS}, 1 FROM gpu_sample"))


def run(db_url: str, label: str, days: float) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    reads = int(days * 86400 // 5)
    t = time.perf_counter()
    fill(engine, reads)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE gpu_sample"))
    filled = time.perf_counter() - t
    store = SampleStore(engine)
    t = time.perf_counter()
    nodes = store.rollup()
    dt = time.perf_counter() - t
    n = reads * GPUS
    with engine.connect() as c:
        minutes, hours = c.execute(text(
            "SELECT sum(CASE WHEN resolution_s = 60 THEN 1 ELSE 0 END), "
            "sum(CASE WHEN resolution_s = 3600 THEN 1 ELSE 0 END) FROM gpu_rollup")).one()
    print(f"{label}: {days:g} days x {GPUS} GPUs = {n:,} samples (generated in {filled:.0f}s); "
          f"rollup of {nodes} nodes in {dt:.1f}s = {n / dt:,.0f} samples/s -> "
          f"{minutes:,} minute and {hours:,} hour buckets; a year of {GPUS} GPUs "
          f"({YEAR_SAMPLES:,} samples) at this rate: {YEAR_SAMPLES / (n / dt):.0f}s",
          flush=True)
    # Steady state: the housekeeping pass each minute rolls up only the minute that arrived.
    reads_per_minute = 12
    for node in range(GPUS // 8):
        rows = [{"gpu_index": g, "gpu_uuid": f"GPU-{node * 8 + g}", "boot_id": "b",
                 "seq": reads + r, "t": (T0_MS + (reads + r) * INTERVAL_MS) / 1000,
                 "interval_s": 5.0, "utilization": 0.5, "energy_mj": 1.0, "span_s": 5.0}
                for r in range(reads_per_minute) for g in range(8)]
        store.ingest(f"node-{node}", [GpuRead.model_validate(r) for r in rows])
    t = time.perf_counter()
    store.rollup()
    step = time.perf_counter() - t
    print(f"{label}: the next minute ({reads_per_minute * GPUS} samples) on top of that "
          f"history rolled up in {step * 1000:.0f} ms", flush=True)
    engine.dispose()


def main() -> None:
    days = float(sys.argv[1]) if len(sys.argv) > 1 else 1
    if len(sys.argv) > 2:
        with scratch_database(sys.argv[2]) as url:
            run(url, "PostgreSQL", days)
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'rollup.db'}", "SQLite", days)


if __name__ == "__main__":
    main()
