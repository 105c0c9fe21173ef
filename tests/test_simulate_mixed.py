"""The simulator on a mixed fleet (#18): small hand-made traces whose answers are known, so the
type-aware fifo, backfill, greedy and default behave as their textbook versions do; shapes on a
fleet of several node sizes; per-type figures; and the command with a fleet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clusterctl.gpu_types import parse_fleet
from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import baselines, engine, metrics, trace
from clusterctl.simulate.trace import TraceJob

H = 3600.0
FLEET = parse_fleet("1x2:H100,1x2:RTX-4090")


def tj(id: int, submit: float, gpus: int, gpu_type: str | None, team: str = "a") -> TraceJob:
    return TraceJob(id, submit, H, gpus, 1, team, "", 2 * H, gpu_type)


def waits(policy: str, jobs: list[TraceJob]) -> list[float]:
    cfg = baselines.config(policy, PolicyConfig(quotas={"a": 2, "b": 2}))
    out = engine.replay(jobs, FLEET, cfg)
    return [r.first_start - r.job.submit_s for r in out.records]  # type: ignore[operator]


def test_fifo_blocks_behind_a_typed_job_and_backfill_does_not() -> None:
    # j2 wants the H100s j1 holds for an hour; j3 (any type) would fit the idle 4090s.
    jobs = [tj(1, 0, 2, "H100"), tj(2, 1, 2, "H100"), tj(3, 2, 2, None)]
    assert waits("fifo", jobs) == [0, H - 1, H - 2]  # strict order: j3 waits for j2
    for policy in ("backfill", "greedy", "default"):
        # j3 uses GPUs j2's reservation does not need: it starts at once, j2 is not delayed
        assert waits(policy, jobs) == [0, H - 1, 0], policy


def test_an_untyped_job_leaves_the_type_a_waiting_job_needs() -> None:
    # Submitted together, the untyped job first: it takes the 4090s, which no one asked for.
    jobs = [tj(1, 0, 2, None), tj(2, 0, 2, "H100")]
    for policy in baselines.POLICIES:
        assert waits(policy, jobs) == [0, 0], policy


def test_shapes_on_a_fleet_of_several_node_sizes() -> None:
    fleet = parse_fleet("2x8:H100,4x4:RTX-4090")
    assert trace.shape_on(16, "H100", fleet) == (8, 2)
    assert trace.shape_on(16, None, fleet) == (8, 2)  # the largest nodes that hold it
    assert trace.shape_on(8, "4090", fleet) == (4, 2)
    assert trace.shape_on(16, "4090", fleet) == (4, 4)
    assert trace.shape_on(32, "4090", fleet) is None  # 8 nodes of 4090s do not exist
    assert trace.shape_on(1, "B200", fleet) is None


def test_a_trace_with_a_gpu_type_column(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("submit_s,duration_s,num_gpus,team,gpu_type\n0,10,2,a,H100\n1,10,2,a,\n"
                 "2,10,2,a,B200\n")
    t = trace.load(f, fleet=FLEET)
    assert [(j.gpus, j.gpu_type) for j in t.jobs] == [(2, "H100"), (2, None)]
    assert t.skipped == 1  # no B200 in the fleet
    f.write_text("submit_s,duration_s,num_gpus,team,gpu_type\n0,10,2,a,H1;00\n")
    with pytest.raises(trace.TraceError, match="line 2: gpu_type"):
        trace.load(f, fleet=FLEET)


def test_per_type_figures() -> None:
    out = engine.replay([tj(1, 0, 2, "H100"), tj(2, 0, 1, None)], FLEET, PolicyConfig(
        quotas={"a": 4}))
    f = metrics.figures("default", out, {"a": 4})
    rows = {t.gpu_type: t for t in f.types}
    assert list(rows) == ["H100", "RTX-4090", "any"]
    assert rows["H100"].utilization == 1.0 and rows["H100"].jobs == 1
    assert rows["RTX-4090"].utilization == 0.5  # one of its two GPUs for the whole hour
    assert rows["any"].jobs == 1 and rows["any"].gpus == 0
    plain = engine.replay([tj(1, 0, 2, None)], trace.uniform(1, 2), PolicyConfig())
    assert metrics.figures("default", plain, {}).types == []


def test_simulate_command_on_a_mixed_fleet(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    rows = ["submit_s,duration_s,num_gpus,team,gpu_type"]
    rows += [f"{i * 600},3600,{[1, 2][i % 2]},{'ab'[i % 2]},{['H100', '', '4090'][i % 3]}"
             for i in range(30)]
    f.write_text("\n".join(rows) + "\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clusterctl", "simulate", "--trace",
                               str(f), *args], capture_output=True, text=True, timeout=120)

    out = cli("--cluster", "1x2:H100,1x2:RTX-4090", "--json", "--plot",
              str(tmp_path / "mixed.png"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [t["gpu_type"] for t in data[0]["types"]] == ["H100", "RTX-4090", "any"]
    table = cli("--cluster", "1x2:H100,1x2:RTX-4090", "--policy", "fifo,default")
    assert table.returncode == 0 and "GPU type" in table.stdout and "RTX-4090" in table.stdout
    assert data[0]["types"][1]["jobs"] == 10  # the jobs that asked for "4090"
    png = (tmp_path / "mixed.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    bad = cli("--cluster", "2x8:")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --cluster:")
    typed = cli("--cluster", "1x2:H100,1x2:RTX-4090", "--policy", "default", "--json",
                "--quota", "a=H100:2", "--quota", "b=B200:2")
    assert typed.returncode == 0, typed.stderr
    assert "warning: --quota b: B200: no node of --cluster has that type" in typed.stderr
    assert {t["team"]: t["quota"] for t in json.loads(typed.stdout)[0]["teams"]} == {
        "a": 2.0, "b": 2.0}
    bad = cli("--cluster", "1x2:H100", "--quota", "a=H100:lots")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --quota:")
