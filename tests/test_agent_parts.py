"""The agent's pure parts and its local pieces: energy deltas, the spool, the Collector and a
real HTTP scrape of /metrics."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ports import free_port
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from agents.agent import Agent, read_boot_id
from agents.exporter import ExportView, GpuCollector, Holder
from agents.reader import GpuError, GpuSample, Snapshot
from agents.samples import LastRead, energy_since, sample_rows
from agents.simulated import SimulatedReader
from agents.spool import Spool

# -- energy since the last read ---------------------------------------------------------------


def test_energy_is_the_counter_difference() -> None:
    prev = LastRead("boot", 100.0, 5_000, 200.0)
    assert energy_since(prev, "boot", 105.0, 6_500, 300.0, 15) == (1_500.0, 5.0)


def test_counter_that_goes_down_is_a_reset_not_negative() -> None:
    prev = LastRead("boot", 100.0, 9_000_000, 200.0)
    assert energy_since(prev, "boot", 105.0, 1_200, 300.0, 15) == (1_200.0, 5.0)


def test_new_boot_counts_from_zero() -> None:
    prev = LastRead("old-boot", 100.0, 500, 200.0)
    assert energy_since(prev, "new-boot", 400.0, 9_000, 300.0, 15) == (9_000.0, 300.0)


def test_without_a_counter_power_is_integrated_over_short_gaps_only() -> None:
    prev = LastRead("b", 100.0, None, 200.0)
    assert energy_since(prev, "b", 105.0, None, 300.0, 15) == (250.0 * 5 * 1000, 5.0)
    assert energy_since(prev, "b", 200.0, None, 300.0, 15) == (None, None)  # a gap: unknown
    assert energy_since(None, "b", 105.0, 10, 300.0, 15) == (None, None)  # first read


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=40))
def test_deltas_never_negative_and_sum_to_counter_difference_without_resets(
        counters: list[int]) -> None:
    last: LastRead | None = None
    total = 0.0
    for i, c in enumerate(counters):
        e, _ = energy_since(last, "b", float(i), c, None, 15)
        if e is not None:
            assert e >= 0
            total += e
        last = LastRead("b", float(i), c, None)
    if counters == sorted(counters):
        assert total == counters[-1] - counters[0]


def test_sample_rows_share_seq_and_skip_unidentified_errors() -> None:
    g = GpuSample(0, "GPU-a", "m", 0.5, 1, 2, 100.0, 1000, 50.0, 1400, 0)
    snap = Snapshot(at=10.0, gpus=(g,), errors=(GpuError(1, "GPU-b", "GPU is lost"),
                                                GpuError(2, None, "Unknown Error")))
    rows, last = sample_rows(snap, 7, "boot", 5.0, {})
    assert [(r.gpu_uuid, r.seq, r.error) for r in rows] == [
        ("GPU-a", 7, None), ("GPU-b", 7, "GPU is lost")]
    assert last["GPU-a"] == LastRead("boot", 10.0, 1000, 100.0)


def test_a_read_stands_for_the_time_since_the_last_up_to_twice_the_interval() -> None:
    """Coverage is the share of a job's time the samples stand for: a read late on a loaded
    machine still watched the GPU since the last one; an agent away longer leaves a gap."""
    def at(t: float, last: dict[str, LastRead]) -> tuple[float, dict[str, LastRead]]:
        g = GpuSample(0, "GPU-a", "m", 0.5, 1, 2, 100.0, 1000, 50.0, 1400, 0)
        rows, last = sample_rows(Snapshot(at=t, gpus=(g,), errors=()), 1, "boot", 1.0, last)
        return rows[0].interval_s, last

    first, last = at(100.0, {})
    late, last = at(101.3, last)
    early, last = at(101.9, last)
    away, last = at(110.0, last)
    assert (first, late, away) == (1.0, pytest.approx(1.3), 2.0)
    assert early == pytest.approx(0.6)
    assert at(111.0, {"GPU-a": LastRead("old-boot", 110.5, 900, 90.0)})[0] == 1.0
    assert at(109.0, last)[0] == 1.0  # the clock went back


# -- spool --------------------------------------------------------------------------------------


def test_spool_keeps_order_state_and_drops_oldest_when_full(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_rows=5)
    seq0 = spool.next_seq()
    last = {"GPU-a": LastRead("b", 1.0, 10, None)}
    for i in range(4):
        dropped = spool.append([{"i": 2 * i}, {"i": 2 * i + 1}], seq0 + i, last)
    assert dropped == 2 and spool.dropped() == 3 and spool.pending() == 5
    upto, rows = spool.oldest(3)
    assert [r["i"] for r in rows] == [3, 4, 5]
    spool.ack(upto)
    spool.close()
    again = Spool(tmp_path / "s.db", max_rows=5)  # a restart keeps everything
    assert again.next_seq() == seq0 + 4
    assert again.last_reads() == last
    assert again.dropped() == 3
    assert [r["i"] for r in again.oldest(10)[1]] == [6, 7]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_samples_the_spool_cannot_write_are_counted_dropped(tmp_path: Path) -> None:
    """#31 item 9: with the spool's disk full, a job's samples were lost (coverage 0.089)
    while the dropped count stayed 0. The spool sits on a 1 MiB tmpfs filled up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        spool = Spool(mount / "s.db", max_rows=10**6)
        last = {"GPU-a": LastRead("b", 1.0, 10, None)}
        assert spool.append([{"i": 0}], spool.next_seq(), last) == 0
        with open(mount / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        lost = 0
        for i in range(50):  # rows of 8 KiB: the WAL's free pages are soon used up
            lost += spool.append([{"i": i, "pad": "x" * 8192}], spool.next_seq() + i, last)
        assert lost > 0 and spool.dropped() == lost
        (mount / "filler").unlink()
        assert spool.append([{"i": 99}], spool.next_seq(), last) == 0  # room again
        spool.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# -- Prometheus -----------------------------------------------------------------------------------


def _view() -> ExportView:
    a = GpuSample(0, "GPU-a", "A100", 0.75, 3 << 30, 80 << 30, 250.5, 7_000_000, 61.0, 1410, 4)
    b = GpuSample(1, "GPU-b", "A100", 0.0, 1 << 30, 80 << 30, None, None, 35.0, 210, 1)
    snap = Snapshot(at=1.0, gpus=(a, b), errors=(GpuError(2, "GPU-c", "GPU is lost"),))
    return ExportView(node="n1", snapshot=snap, holders={0: Holder(42, "ada")},
                      samples_read=30, samples_shipped=20, samples_spooled=10,
                      samples_dropped=2, last_ship=1234.5)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_collector_names_units_labels_through_a_private_registry() -> None:
    registry = CollectorRegistry()
    registry.register(GpuCollector(_view))
    labels = {"node": "n1", "gpu": "0", "uuid": "GPU-a", "model": "A100", "job": "42",
              "user": "ada"}
    assert registry.get_sample_value("clusterctl_gpu_utilization_ratio", labels) == 0.75
    assert registry.get_sample_value("clusterctl_gpu_power_watts", labels) == 250.5
    assert registry.get_sample_value("clusterctl_gpu_energy_joules_total", labels) == 7000.0
    assert registry.get_sample_value("clusterctl_gpu_memory_used_bytes", labels) == 3 << 30
    assert registry.get_sample_value("clusterctl_gpu_sm_clock_hertz", labels) == 1.41e9
    idle = {**labels, "gpu": "1", "uuid": "GPU-b", "job": "", "user": ""}
    assert registry.get_sample_value("clusterctl_gpu_utilization_ratio", idle) == 0.0
    assert registry.get_sample_value("clusterctl_gpu_power_watts", idle) is None  # unsupported
    lost = {**idle, "gpu": "2", "uuid": "GPU-c", "model": ""}
    assert registry.get_sample_value("clusterctl_gpu_up", lost) == 0
    assert registry.get_sample_value("clusterctl_agent_samples_dropped_total") == 2
    assert registry.get_sample_value("clusterctl_agent_samples_spooled") == 10
    assert registry.get_sample_value("clusterctl_agent_last_ship_timestamp_seconds") == 1234.5


def test_metrics_over_real_http(tmp_path: Path) -> None:
    clock = [1_800_000_000.0]
    reader = SimulatedReader(2, node="n1", clock=lambda: clock[0])
    agent = Agent(reader, "n1", interval_s=5, boot_id=read_boot_id(),
                  spool=Spool(tmp_path / "s.db", 1000))
    agent.set_allocations([{"gpu_index": 1, "job_id": 9, "user": "bob"}])
    agent.tick()
    clock[0] += 5
    agent.tick()
    registry = CollectorRegistry()
    registry.register(GpuCollector(agent.view))
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    got = _samples(text)
    energy = {k: v for k, v in got.items() if k[0] == "clusterctl_gpu_energy_joules_total"}
    assert len(energy) == 2 and all(v > 0 for v in energy.values())
    held = [dict(k[1]) for k in energy if dict(k[1])["job"]]
    assert held == [{"node": "n1", "gpu": "1", "uuid": reader.gpus[1].uuid,
                     "model": reader.model, "job": "9", "user": "bob"}]
    assert got[("clusterctl_agent_samples_read_total", ())] == 4
    assert got[("clusterctl_agent_samples_spooled", ())] == 4
    for fam in text_string_to_metric_families(text):
        if fam.name.startswith("clusterctl_gpu_"):
            assert fam.type in ("gauge", "counter")
            assert fam.name.endswith(("_ratio", "_bytes", "_watts", "_joules", "_celsius",
                                      "_hertz", "_reasons", "_processes", "_up", "_errors",
                                      "_retirements"))


@pytest.mark.parametrize("proc_has_boot_id", [True, False])
def test_boot_id(tmp_path: Path, proc_has_boot_id: bool) -> None:
    if proc_has_boot_id:
        (tmp_path / "sys/kernel/random").mkdir(parents=True)
        (tmp_path / "sys/kernel/random/boot_id").write_text("abc-123\n")
    assert read_boot_id(tmp_path) == ("abc-123" if proc_has_boot_id else "unknown")


def test_the_machines_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    from agents.host import host_memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\n"
                       "MemAvailable:    2000000 kB\n")
    assert host_memory(meminfo) == {"mem_total_bytes": 16_000_000 * 1024,
                                    "mem_available_bytes": 2_000_000 * 1024}
    meminfo.write_text("MemTotal: 0 kB\n")
    assert host_memory(meminfo) is None
    assert host_memory(tmp_path / "missing") is None
    assert host_memory() is not None  # this machine's own


def test_nodes_mark_a_node_near_rays_memory_kill_line() -> None:
    from clusterctl.cli.nodes import _pressure
    from clusterctl.controller.host_memory import HostMemory

    now = [0.0]
    memory = HostMemory(clock=lambda: now[0])
    memory.note("n", total=100, available=4)
    assert memory.used("n") == pytest.approx(0.96)
    assert _pressure({"memory_used": memory.used("n")}) == " [red](memory 96% used)[/]"
    assert _pressure({"memory_used": 0.5}) == "" and _pressure({}) == ""
    now[0] = 121.0  # the agent went quiet: no stale figure
    assert memory.used("n") is None
