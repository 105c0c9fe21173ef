"""The real NVML path on a real NVIDIA GPU (marker `gpu`: not run in CI, which has none).
Run on a GPU machine: pytest -m gpu tests/test_nvml_gpu.py (``--noconftest`` where Ray and the
database libraries are not installed: these tests need only the agent's own dependencies)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[1]


def _agent() -> list[str]:
    """The installed ``clusterctl-agent``, or the checkout's module where it is not installed."""
    script = Path(sys.executable).with_name("clusterctl-agent")
    if script.exists():
        return [str(script)]
    found = shutil.which("clusterctl-agent")
    return [found] if found else [sys.executable, "-m", "agents.main"]


def _once() -> dict:
    r = subprocess.run([*_agent(), "--once", "--json"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_agent_once_reads_every_gpu() -> None:
    out = _once()
    assert out["driver_version"]
    assert out["gpus"], "the agent read no GPU"
    assert not out["errors"], f"GPUs in error: {out['errors']}"
    for g in out["gpus"]:
        assert g["uuid"].startswith(("GPU-", "MIG-"))
        assert g["utilization"] is None or 0 <= g["utilization"] <= 1
        assert g["memory_total_bytes"] and 0 <= g["memory_used_bytes"] <= g["memory_total_bytes"]
        # Every GPU this product supports (Volta and later, GeForce included) reads its power:
        # a reader that loses it would price every job's energy at nothing.
        assert g["power_watts"] is not None and 0 < g["power_watts"] < 2000, g
        assert g["temperature_celsius"] is None or 0 < g["temperature_celsius"] < 120


def test_energy_counter_moves_between_reads() -> None:
    from agents.nvml import NvmlReader

    reader = NvmlReader()
    try:
        first = reader.read()
        time.sleep(2)
        second = reader.read()
    finally:
        reader.close()
    assert first.gpus and not first.errors and not second.errors
    before = {g.uuid: g.energy_mj for g in first.gpus}
    assert set(before) == {g.uuid for g in second.gpus}
    for g in second.gpus:
        # Every GPU this product supports (Volta and later, GeForce included) has the counter,
        # and a GPU draws power even idle: in 2 s it must move.
        assert before[g.uuid] is not None and g.energy_mj is not None, g.uuid
        assert g.energy_mj > before[g.uuid], f"{g.uuid}: energy counter did not move"


def test_ecc_and_xid_reads_answer() -> None:
    """Data-centre GPUs (A100, H100, H200) have ECC on: the health checks depend on these
    counters being read, not skipped as unsupported. XIDs come from an event set that must
    drain without blocking when nothing happened."""
    from agents.nvml import NvmlReader

    reader = NvmlReader()
    try:
        start = time.monotonic()
        snap = reader.read()
        took = time.monotonic() - start
    finally:
        reader.close()
    assert took < 10, f"a read took {took:.1f} s (the XID drain must not wait)"
    assert isinstance(snap.xids, tuple)
    for g in snap.gpus:
        if any(w in g.model for w in ("A100", "H100", "H200", "A800", "H800", "B200")):
            assert g.ecc_uncorrected is not None and g.ecc_uncorrected >= 0, g
            assert g.retired_pages is not None and g.retired_pages >= 0, g


@pytest.fixture
def load() -> Iterator[None]:
    """Matrix products on GPU 0 for as long as the test runs (PyTorch; skipped without it)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no GPU")
    stop = threading.Event()

    def spin() -> None:
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        while not stop.is_set():
            for _ in range(20):
                a @ a
            torch.cuda.synchronize()

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    time.sleep(5)  # NVML's utilization is averaged over the last sample period (up to 1 s+)
    yield
    stop.set()
    t.join(timeout=30)


def test_agent_sees_a_busy_gpu_busy(load: None) -> None:
    out = _once()
    g = out["gpus"][0]
    assert g["utilization"] is not None and g["utilization"] > 0.5, g
    assert g["memory_used_bytes"] > 1 << 28, g  # the 8192² operands and the CUDA context
    assert g["power_watts"] is None or g["power_watts"] > 100, g
    assert g["sm_clock_mhz"] is None or g["sm_clock_mhz"] > 500, g


def test_metrics_endpoint_exports_every_gpu() -> None:
    port = free_port()
    proc = subprocess.Popen([*_agent(), "--interval", "1s", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = ""
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body, "no /metrics answer"
        count = len(_once()["gpus"])
        for name in ("clusterctl_gpu_up", "clusterctl_gpu_utilization_ratio",
                     "clusterctl_gpu_memory_used_bytes", "clusterctl_gpu_power_watts",
                     "clusterctl_gpu_energy_joules_total"):
            rows = [line for line in body.splitlines() if line.startswith(name + "{")]
            assert len(rows) == count, (name, rows)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
