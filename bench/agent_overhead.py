"""The agent's own cost: CPU time per read of 8 GPUs and resident memory, for the real
`clusterctl-agent` process reading every second and shipping each read to a controller
(`clusterctl up --ray-address`), while Prometheus scrapes /metrics every 15 s.

The GPUs are simulated here (no NVIDIA driver on this machine), so the figure is the agent's
own work: building rows, the write-ahead spool, the HTTP shipment, the Collector. On a real
GPU the NVML calls add to it (about a dozen device queries per GPU per read).
Run: python bench/agent_overhead.py [SECONDS]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import Stack

from clusterctl.executor.local_ray import free_port

AGENT = str(Path(sys.executable).with_name("clusterctl-agent"))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def measure(argv: list[str], env: dict[str, str], port: int, seconds: float,
            label: str) -> None:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        time.sleep(10)  # warm up: imports done, spool and connections open
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        next_scrape = t0
        while time.monotonic() - t0 < seconds:
            if time.monotonic() >= next_scrape:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                next_scrape += 15
            time.sleep(0.5)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        mem = memory_kib(proc.pid)
        reads = t1 - t0  # one read per second
        print(f"{label}: {100 * (c1 - c0) / (t1 - t0):.2f}% of one core, "
              f"{1000 * (c1 - c0) / reads:.2f} ms CPU per read of 8 GPUs, "
              f"RSS {mem['VmRSS'] / 1024:.1f} MiB (peak {mem['VmHWM'] / 1024:.1f} MiB) "
              f"over {t1 - t0:.0f}s", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 120
    stack = Stack()
    try:
        token = stack.client().post("/v1/nodes/bench/token").json()["token"]
        env = {**os.environ, "CLUSTERCTL_AGENT_TOKEN": token}
        port = free_port()
        base = [AGENT, "--node", "bench", "--simulate-gpus", "8", "--interval", "1s",
                "--port", str(port)]
        measure([*base, "--controller", stack.url, "--spool", str(stack.root / "spool.db")],
                env, port, seconds, "read + spool + ship every 1 s")
        measure(base, env, port, seconds, "read + export only (no controller)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
