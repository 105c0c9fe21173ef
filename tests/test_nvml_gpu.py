"""The real NVML path on a real NVIDIA GPU (marker `gpu`: not run in CI, which has none).
Run on a GPU machine: pytest -m gpu tests/test_nvml_gpu.py"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

AGENT = Path(sys.executable).with_name("clusterctl-agent")


def test_agent_once_reads_every_gpu() -> None:
    r = subprocess.run([str(AGENT), "--once", "--json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["driver_version"]
    assert out["gpus"], "the agent read no GPU"
    assert not out["errors"], f"GPUs in error: {out['errors']}"
    for g in out["gpus"]:
        assert g["uuid"].startswith(("GPU-", "MIG-"))
        assert g["utilization"] is None or 0 <= g["utilization"] <= 1
        assert g["memory_total_bytes"] and 0 <= g["memory_used_bytes"] <= g["memory_total_bytes"]
        assert g["power_watts"] is None or 0 < g["power_watts"] < 2000
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
