"""The GpuReader protocol on the NVML reader (against the real pynvml error classes) and on every
profile of the simulated reader."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_nvml import FakeGpu, FakeNvml

from agents.nvml import NvmlReader
from agents.reader import NoGpuBackend
from agents.simulated import PROFILES, SimulatedReader, parse_profiles


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- NVML ---------------------------------------------------------------------------------------

def test_nvml_reads_every_field_in_base_units() -> None:
    reader = NvmlReader(FakeNvml([FakeGpu("GPU-a")]), clock=Clock())  # type: ignore[arg-type]
    snap = reader.read()
    (g,) = snap.gpus
    assert (g.index, g.uuid, g.model) == (0, "GPU-a", "NVIDIA A100-SXM4-80GB")
    assert g.utilization == pytest.approx(0.87)
    assert (g.memory_used_bytes, g.memory_total_bytes) == (40 << 30, 80 << 30)
    assert g.power_watts == pytest.approx(312.5)
    assert g.energy_mj == 123_456_789
    assert (g.temperature_celsius, g.sm_clock_mhz, g.throttle_reasons) == (61.0, 1410, 0)
    assert [(p.pid, p.used_memory_bytes) for p in g.processes] == [(4242, 39 << 30)]
    assert reader.driver_version == "535.104.05"


def test_unsupported_field_is_none_and_lost_gpu_is_an_error_record() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", power_mw=None, energy_mj=None),
                     FakeGpu("GPU-b", lost=True), FakeGpu("GPU-c")])
    snap = NvmlReader(fake, clock=Clock()).read()  # type: ignore[arg-type]
    assert [g.uuid for g in snap.gpus] == ["GPU-a", "GPU-c"]
    assert snap.gpus[0].power_watts is None and snap.gpus[0].energy_mj is None
    assert snap.gpus[0].utilization is not None
    assert [(e.index, e.error) for e in snap.errors] == [(1, "GPU is lost")]


def test_xid_events_reach_the_read_even_from_a_gpu_that_fell_off_the_bus() -> None:
    fake = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b")])
    reader = NvmlReader(fake, clock=Clock())  # type: ignore[arg-type]
    assert [x for x in reader.read().xids] == []
    assert fake.registered == {0, 1}
    fake.events += [(1, 79), (0, 13)]
    fake.gpus[1].lost = True  # XID 79: the GPU has fallen off the bus
    snap = reader.read()
    assert [(x.index, x.xid) for x in snap.xids] == [(1, 79), (0, 13)]
    assert [e.index for e in snap.errors] == [1]
    assert reader.read().xids == ()  # each event once


def test_ecc_errors_and_retired_memory_as_nvidia_smi_shows_them() -> None:
    fake = FakeNvml([FakeGpu("GPU-a", ecc_uncorrected=2, remapped_rows=(5, 1, 0, 0)),
                     FakeGpu("GPU-b", remapped_rows=None, retired_pages=3),
                     FakeGpu("GPU-c", ecc_uncorrected=None, remapped_rows=None)])
    a, b, c = NvmlReader(fake, clock=Clock()).read().gpus  # type: ignore[arg-type]
    assert (a.ecc_uncorrected, a.retired_pages) == (2, 1)  # uncorrectable rows remapped
    assert (b.ecc_uncorrected, b.retired_pages) == (0, 3)  # pages retired (before Ampere)
    assert c.ecc_uncorrected is None  # no ECC (GeForce)


def test_gpu_lost_after_first_read_keeps_its_uuid() -> None:
    fake = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b")])
    reader = NvmlReader(fake, clock=Clock())  # type: ignore[arg-type]
    reader.read()
    fake.gpus[1].lost = True
    snap = reader.read()
    assert [e.uuid for e in snap.errors] == ["GPU-b"]
    assert [g.uuid for g in snap.gpus] == ["GPU-a"]


def test_old_driver_function_not_found_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b")],
                    missing=("nvmlDeviceGetTotalEnergyConsumption",))
    reader = NvmlReader(fake, clock=Clock())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="agents.nvml"):
        for _ in range(3):
            snap = reader.read()
    assert all(g.energy_mj is None for g in snap.gpus)
    assert all(g.power_watts is not None for g in snap.gpus)
    warnings = [r for r in caplog.records if "nvmlDeviceGetTotalEnergyConsumption" in r.message]
    assert len(warnings) == 1
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 1  # not asked again


def test_consumer_card_without_process_memory() -> None:
    """GeForce cards in containers often report process memory as not available."""
    fake = FakeNvml([FakeGpu("GPU-4090", name="NVIDIA GeForce RTX 4090", total=24 << 30,
                             used=3 << 30, processes=[(99, None)])])
    (g,) = NvmlReader(fake, clock=Clock()).read().gpus  # type: ignore[arg-type]
    assert g.model == "NVIDIA GeForce RTX 4090"
    assert [(p.pid, p.used_memory_bytes) for p in g.processes] == [(99, None)]


def test_no_driver_is_a_clear_error() -> None:
    reader = NvmlReader(FakeNvml([], no_library=True))  # type: ignore[arg-type]
    with pytest.raises(NoGpuBackend, match="--simulate-gpus"):
        reader.read()


def test_real_pynvml_without_a_driver_says_so() -> None:
    """On this machine (no NVIDIA driver) the real binding must fail the same clear way."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pytest.skip("an NVIDIA driver is present")
    with pytest.raises(NoGpuBackend):
        NvmlReader().read()


# -- simulated ----------------------------------------------------------------------------------

def test_simulated_busy_gpus_compute_and_idle_ones_idle() -> None:
    clock = Clock()
    reader = SimulatedReader(4, node="n", busy=lambda: {1, 2}, clock=clock, seed=1)
    for _ in range(30):
        snap = reader.read()
        clock.t += 5
    by = {g.index: g for g in snap.gpus}
    for i in (1, 2):
        assert by[i].utilization is not None and by[i].utilization > 0.5
        assert by[i].power_watts is not None and by[i].power_watts > 200
        assert by[i].memory_used_bytes is not None and by[i].memory_total_bytes is not None
        assert by[i].memory_used_bytes > by[i].memory_total_bytes * 0.3
    for i in (0, 3):
        assert by[i].utilization == 0
        assert by[i].power_watts is not None and by[i].power_watts < 100
    assert len({g.uuid for g in snap.gpus}) == 4


def test_simulated_energy_counter_tracks_power() -> None:
    clock = Clock()
    reader = SimulatedReader(1, busy=lambda: {0}, clock=clock, seed=2)
    first = reader.read().gpus[0]
    joules = 0.0
    prev_power = first.power_watts
    for _ in range(12):
        clock.t += 5
        g = reader.read().gpus[0]
        assert prev_power is not None
        joules += prev_power * 5
        prev_power = g.power_watts
    assert g.energy_mj is not None and first.energy_mj is not None
    assert (g.energy_mj - first.energy_mj) / 1000 == pytest.approx(joules, rel=0.01)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_simulated_profiles(name: str) -> None:
    clock = Clock()
    reader = SimulatedReader(2, profiles={1: PROFILES[name]}, busy=lambda: {0, 1}, clock=clock)
    seen = []
    for _ in range(20):
        seen.append(reader.read())
        clock.t += 5
    normal = [s.gpus[0] for s in seen]
    assert all(g.power_watts is not None and g.energy_mj is not None for g in normal)
    odd = [next((g for g in s.gpus if g.index == 1), None) for s in seen]
    if name == "no-power":
        assert all(g is not None and g.power_watts is None and g.energy_mj is None for g in odd)
    elif name == "no-energy":
        assert all(g is not None and g.power_watts is not None and g.energy_mj is None
                   for g in odd)
    elif name == "lost":
        assert odd[0] is not None and odd[-1] is None
        assert [e.error for e in seen[-1].errors] == ["GPU is lost"]
        assert seen[-1].errors[0].uuid == odd[0].uuid
    elif name == "energy-reset":
        counters = [g.energy_mj for g in odd if g is not None]
        assert any(b < a for a, b in itertools.pairwise(counters))
    elif name in ("xid-79", "ecc-dbe"):  # one XID event, as the driver raises it, 3 s in
        events = [(x.index, x.xid) for s in seen for x in s.xids]
        assert events == [(1, 79 if name == "xid-79" else 48)]
        if name == "xid-79":  # then the GPU is gone
            assert odd[0] is not None and odd[-1] is None
        else:  # it still answers, with the error counted and its memory retired
            assert odd[-1] is not None and (odd[-1].ecc_uncorrected, odd[-1].retired_pages) \
                == (1, 1)
            assert normal[-1].ecc_uncorrected == 0
    else:
        assert all(g is not None and g.energy_mj is not None for g in odd)


def test_parse_profiles() -> None:
    assert parse_profiles("1=no-power, 3=lost") == {1: PROFILES["no-power"], 3: PROFILES["lost"]}
    assert parse_profiles(None) == {}
    with pytest.raises(ValueError, match="INDEX=PROFILE"):
        parse_profiles("1=broken")


def test_a_restarted_simulated_agent_books_no_spike_of_energy() -> None:
    """#17: the simulated counter began at its seed again after a restart, and the reset logic
    booked that seed (about 0.22 kWh) as one sample's energy. It counts from zero now."""
    from agents.samples import sample_rows

    clock = Clock()
    first = SimulatedReader(2, busy=lambda: {0, 1}, clock=clock, seed=3)
    last: dict = {}  # type: ignore[type-arg]
    for seq in range(4):
        rows, last = sample_rows(first.read(), seq, "boot", 5.0, last)
        clock.t += 5
    clock.t += 20  # the agent is down for 20 s, then a new one starts on the same node
    second = SimulatedReader(2, busy=lambda: {0, 1}, clock=clock, seed=3)
    for seq in range(4, 7):
        rows, last = sample_rows(second.read(), seq, "boot", 5.0, last)
        for r in rows:  # at most full power over the span, never a counter's worth
            assert r.energy_mj is None or r.energy_mj <= 1000 * 1000 * r.span_s
        clock.t += 5


def test_a_simulated_gpu_computes_while_its_job_uses_cpu() -> None:
    """#19 item 4: `sleep` holds an idle GPU and a busy loop a busy one, from /proc alone."""
    env = {**os.environ, "CLUSTERCTL_JOB_ID": "9", "CLUSTERCTL_NODE": "cpu-node"}
    sleeper = subprocess.Popen(["sleep", "30"], env={**env, "CUDA_VISIBLE_DEVICES": "0"})
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                               env={**env, "CUDA_VISIBLE_DEVICES": "1"})
    try:
        reader = SimulatedReader(3, node="cpu-node", busy=lambda: {0, 1}, proc=Path("/proc"),
                                 seed=4)
        reader.read()
        time.sleep(1.5)
        util = {g.index: g.utilization for g in reader.read().gpus}
        assert util[1] > 0.5 and util[0] == 0.0 and util[2] == 0.0, util
    finally:
        for p in (sleeper, spinner):
            p.kill()
            p.wait()
