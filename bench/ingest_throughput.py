"""GPU samples per second stored through the controller: agents' batches over real HTTP into
the controller (`clusterctl up --ray-address`), written to SQLite or PostgreSQL.

Each client is one node's agent: it posts batches of reads of 8 GPUs with the node's token, as
`clusterctl-agent` does (a live agent ships one read per batch; one that comes back after an
outage ships up to 5,000 samples per batch). Batches are encoded before the clock starts, so
the figure is the controller's: HTTP, validation, the multi-row insert with its duplicate check,
the device view and the allocation update.
Run: python bench/ingest_throughput.py [POSTGRES_URL]
"""

from __future__ import annotations

import json
import sys
import time

from common import Stack, concurrently, scratch_database

CLIENTS = 4
GPUS = 8


def batches(node: str, reads_per_batch: int, total_reads: int) -> list[bytes]:
    out = []
    t0 = time.time() - total_reads * 5.0  # in the past, inside the controller's clock window
    for b in range(total_reads // reads_per_batch):
        rows = []
        for r in range(b * reads_per_batch, (b + 1) * reads_per_batch):
            for g in range(GPUS):
                rows.append({
                    "gpu_index": g, "gpu_uuid": f"GPU-{node}-{g}", "model": "A100-80GB",
                    "boot_id": "b1", "seq": r, "t": t0 + r * 5.0, "interval_s": 5.0,
                    "utilization": 0.87, "memory_used": 61 << 30, "memory_total": 80 << 30,
                    "power_w": 312.5, "energy_counter_mj": 10**9 + r * 1_562_500,
                    "energy_mj": 1_562_500.0, "span_s": 5.0, "temperature_c": 66.0,
                    "sm_clock_mhz": 1410, "throttle": 0, "processes": 1, "error": None,
                })
        out.append(json.dumps({"node": node, "samples": rows}).encode())
    return out


def run(stack: Stack, label: str, reads_per_batch: int, total_reads: int) -> None:
    admin = stack.client()
    work = []
    for i in range(CLIENTS):
        node = f"bench-{reads_per_batch}-{i}"
        token = admin.post(f"/v1/nodes/{node}/token").json()["token"]
        work.append((token, batches(node, reads_per_batch, total_reads)))
    errors: list[str] = []

    def agent(token: str, bodies: list[bytes]) -> None:
        with stack.client() as http:
            http.headers["Authorization"] = f"Bearer {token}"
            http.headers["Content-Type"] = "application/json"
            for body in bodies:
                r = http.post("/v1/agent/samples", content=body)
                if r.status_code != 200 or r.json()["inserted"] != reads_per_batch * GPUS:
                    errors.append(r.text[:200])

    dt = concurrently([lambda w=w: agent(*w) for w in work])
    n = CLIENTS * total_reads * GPUS
    print(f"{label}: batches of {reads_per_batch * GPUS:>5} samples: {n} samples in {dt:.2f}s "
          f"= {n / dt:,.0f} samples/s ({len(errors)} errors)", flush=True)


def main() -> None:
    measure(None, "SQLite")
    if len(sys.argv) > 1:
        with scratch_database(sys.argv[1]) as url:
            measure(url, "PostgreSQL")


def measure(db_url: str | None, label: str) -> None:
    stack = Stack(db_url)
    try:
        run(stack, label, 1, 400)
        run(stack, label, 60, 3000)
        run(stack, label, 625, 12500)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
