"""The real NVML path on a real NVIDIA GPU (marker `gpu`: not run in CI, which has none).
Run on a GPU machine: pytest -m gpu tests/test_nvml_gpu.py"""

from __future__ import annotations

import json
import subprocess
import sys
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
    assert out["gpus"] or out["errors"]
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
        first = {g.uuid: g for g in reader.read().gpus}
        import time

        time.sleep(2)
        second = {g.uuid: g for g in reader.read().gpus}
    finally:
        reader.close()
    for uuid, g in second.items():
        before = first[uuid].energy_mj
        if g.energy_mj is not None and before is not None:
            assert g.energy_mj >= before  # a GPU draws power even idle
