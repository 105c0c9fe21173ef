"""#35 item 7: what a service's endpoint on the controller adds. One replica of a small model
(tests/model_server.py, a stdlib HTTP server) on a real stack (`clusterctl up --ray-address`,
SQLite, simulated GPUs); the same small request sent straight to the replica's port and through
`/services/NAME/`, side by side in one run:
- latency: p50 and p99 of 500 requests one after another (goal: the endpoint adds under 2 ms
  at the median);
- throughput: small requests from 16 connections for 10 s (goal: 2,000 a second), sent by
  `wrk` (Debian's, installed here when missing: a load generator in C, so that the load's own
  CPU does not take the two cores from what it measures), else by 16 httpx clients.
Run: python bench/service_endpoint.py
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def wrk(url: str, headers: dict[str, str]) -> float | None:
    """Requests a second by wrk, or None where it cannot be installed."""
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.body = "x"\n')
    args = ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{SECONDS:g}s", "-s", f.name]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, out
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


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
            rps = wrk(url, headers) or asyncio.run(throughput(url, headers))
            rows.append((label, statistics.median(lat), lat[int(0.99 * (len(lat) - 1))], rps))
        print("| path | p50 (ms) | p99 (ms) | requests/s, 16 connections |\n"
              "| --- | --- | --- | --- |")
        for label, p50, p99, rps in rows:
            print(f"| {label} | {p50:.2f} | {p99:.2f} | {rps:.0f} |")
        print(f"added at the median: {rows[1][1] - rows[0][1]:.2f} ms (goal under 2 ms); "
              f"through the endpoint {rows[1][3]:.0f}/s (goal 2,000/s)")
        c.post("/v1/services/bench/stop")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
