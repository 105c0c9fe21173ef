"""Shared set-up for the benchmarks: a `ray start` head with simulated GPUs and a controller
started with the real `clusterctl up --ray-address`, as in production."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from clusterctl.executor.local_ray import LocalRay, free_port, start_local_ray
from clusterctl.settings import load
from clusterctl.store.db import scratch_database as scratch_database

CLUSTERCTL = str(Path(sys.executable).with_name("clusterctl"))


class Stack:
    def __init__(self, db_url: str | None = None, gpus: int = 4) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="clusterctl-bench-"))
        self.ray: LocalRay = start_local_ray(self.root / "ray", num_gpus=gpus,
                                             node_name="bench", gpu_model="simulated")
        self.port = free_port()
        # Without PYTHONDONTWRITEBYTECODE, which some machines set (this one does): with it,
        # every CLI process compiles each module it imports again (0.17 s of a 0.33 s submit),
        # which no installed clusterctl does (pip writes the byte code; Python writes it on
        # the first run in a venv of one's own).
        self.env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                    "CLUSTERCTL_CONFIG": str(self.root / "config.toml"),
                    "CLUSTERCTL_RAY_TOKEN_FILE": str(self.ray.token_file)}
        args = [CLUSTERCTL, "up", "--ray-address", self.ray.address, "--port", str(self.port),
                "--data-dir", str(self.root / "data"),
                "--db", db_url or f"sqlite:///{self.root / 'bench.db'}"]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "controller.log", "wb"))  # noqa: SIM115
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz").is_success and (
                        self.root / "config.toml").exists():
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        self.token = load(env=self.env).token
        assert self.token

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Bearer {self.token}"})

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.ray.stop()


def concurrently(targets: list[Callable[[], None]]) -> float:
    """Run each target in a thread of its own, all at once; the seconds until the last ends."""
    threads = [threading.Thread(target=t) for t in targets]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def median_s(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    """The median wall time of ``runs`` runs of a command, each of which must succeed."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120)
        times.append(time.perf_counter() - start)
        assert r.returncode == 0, (argv, r.stderr[-1000:])
    return statistics.median(times)
