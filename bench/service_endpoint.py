"""#35 item 7: what a service's endpoint on the controller adds. One replica of a small model
(tests/model_server.py, a stdlib HTTP server) on a real stack (`clusterctl up --ray-address`,
SQLite, simulated GPUs); the same small request sent straight to the replica's port and through
`/services/NAME/`, side by side in one run:
- latency: p50 and p99 of 500 requests one after another (goal: the endpoint adds under 2 ms
  at the median);
- throughput: small requests from 16 concurrent clients for 10 s (goal: 2,000 a second).
Run: python bench/service_endpoint.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import Stack

MODEL = str(Path(__file__).resolve().parent.parent / "tests" / "model_server.py")
SEQUENTIAL = 500
CLIENTS = 16
SECONDS = 10.0


def latencies(url: str, headers: dict[str, str]) -> list[float]:
    out = []
    with httpx.Client(headers=headers) as c:
        for _ in range(20):
            c.post(url, content=b"x")
        for _ in range(SEQUENTIAL):
            t = time.perf_counter()
            r = c.post(url, content=b"x")
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return sorted(out)


async def throughput(url: str, headers: dict[str, str]) -> float:
    done = 0
    end = time.monotonic() + SECONDS

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < end:
            r = await c.post(url, content=b"x")
            assert r.status_code == 200
            done += 1

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(headers=headers, limits=limits) as c:
        t = time.monotonic()
        await asyncio.gather(*(client(c) for _ in range(CLIENTS)))
        return done / (time.monotonic() - t)


def main() -> None:
    stack = Stack(gpus=1)
    try:
        r = subprocess.run([sys.executable, "-m", "clusterctl", "serve", "bench", "--gpus",
                            "1", "--workdir", "/tmp", "--json", "--", sys.executable, MODEL],
                           env=stack.env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        auth = {"Authorization": f"Bearer {stack.token}"}
        c = stack.client()
        deadline = time.monotonic() + 120
        while c.get("/v1/services/bench").json()["replicas"]["ready"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        via = f"{stack.url}/services/bench/v1/echo"
        pid = httpx.get(f"{stack.url}/services/bench/pid", headers=auth).json()
        port = next(int(line.split("=", 1)[1]) for line in Path(
            f"/proc/{pid['pid']}/environ").read_bytes().decode().split("\0")
            if line.startswith("PORT="))
        direct = f"http://127.0.0.1:{port}/v1/echo"
        rows = []
        for label, url, headers in (("direct to the replica", direct, {}),
                                    ("through /services/bench/", via, auth)):
            lat = latencies(url, headers)
            rps = asyncio.run(throughput(url, headers))
            rows.append((label, statistics.median(lat), lat[int(0.99 * (len(lat) - 1))], rps))
        print("| path | p50 (ms) | p99 (ms) | requests/s, 16 clients |\n| --- | --- | --- | --- |")
        for label, p50, p99, rps in rows:
            print(f"| {label} | {p50:.2f} | {p99:.2f} | {rps:.0f} |")
        print(f"added at the median: {rows[1][1] - rows[0][1]:.2f} ms (goal under 2 ms); "
              f"through the endpoint {rows[1][3]:.0f}/s (goal 2,000/s)")
        c.post("/v1/services/bench/stop")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
