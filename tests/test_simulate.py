"""The simulator, and the policy's guarantees over time: a team gets its quota back within the
grace period, a whole-cluster job is not starved by a steady stream, and the replay's figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import baselines, engine, metrics, trace
from clusterctl.simulate.trace import TraceJob

GRACE = 30.0


def tj(id: int, submit: float, duration: float, gpus: int, team: str, *, nodes: int = 1,
       limit: float | None = None) -> TraceJob:
    return TraceJob(id, submit, duration, gpus, nodes, team, "", limit or duration * 2)


def quota_case(flood: list[int], claims: list[int]) -> list[engine.JobRecord]:
    """Team b borrows the cluster with long jobs; team a (quota 8 of 16) then asks for up to its
    quota. Returns a's records."""
    wanted: list[int] = []
    for g in claims:
        if sum(wanted) + g <= 8:
            wanted.append(g)
    jobs = [tj(i + 1, 0.0, 100_000.0, g, "b") for i, g in enumerate(flood)]
    jobs += [tj(100 + i, 1000.0, 500.0, g, "a") for i, g in enumerate(wanted)]
    cfg = PolicyConfig(quotas={"a": 8, "b": 8}, preempt_grace_s=GRACE)
    out = engine.replay(jobs, trace.uniform(2, 8), cfg)
    assert all(r.end is not None for r in out.records)  # preempted jobs come back and finish
    return [r for r in out.records if r.job.team == "a"]


@settings(max_examples=60, deadline=None)
@given(flood=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=20),
       n=st.integers(1, 8))
def test_team_gets_its_quota_of_single_gpus_within_the_grace_period(flood: list[int],
                                                                    n: int) -> None:
    """Whatever b borrowed, a's single-GPU jobs up to its quota all start once the preempted
    jobs have had their grace."""
    for r in quota_case(flood, [1] * n):
        assert r.first_start is not None and r.first_start - r.job.submit_s <= GRACE + 1e-9


@settings(max_examples=60, deadline=None)
@given(flood=st.integers(1, 30), claims=st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1,
                                                 max_size=8))
def test_team_gets_its_quota_of_gangs_within_the_grace_period(flood: int,
                                                              claims: list[int]) -> None:
    """Borrowed single GPUs are reclaimed for gangs of any shape within a's quota, on the nodes
    where the fewest must go. (Only borrowed GPUs are reclaimed: where b borrowed less than a
    preemptible job of b holds, a's gang waits for its reservation instead.)"""
    for r in quota_case([1] * flood, claims):
        assert r.first_start is not None and r.first_start - r.job.submit_s <= GRACE + 1e-9


def stream_with_big_job(hours: float) -> list[TraceJob]:
    """Team s keeps 1-GPU jobs of 10 minutes arriving (about 0.9 of two 8-GPU nodes); team big
    asks for both nodes whole."""
    jobs = [tj(1, 60.0, 3600.0, 8, "big", nodes=2)]
    t, i = 0.0, 2
    while t < hours * 3600:
        jobs.append(tj(i, t, 600.0, 1, "s", limit=1200.0))
        t += 600.0 / 14.5
        i += 1
    return jobs


def test_a_whole_cluster_job_is_not_starved_by_a_steady_stream() -> None:
    jobs = stream_with_big_job(48)
    base = PolicyConfig(quotas={"big": 8, "s": 8}, starve_after_s=4 * 3600.0)
    greedy = engine.replay(jobs, trace.uniform(2, 8), baselines.config("greedy", base))
    big = next(r for r in greedy.records if r.job.team == "big")
    assert big.first_start is None or big.first_start > 47 * 3600  # what plain Ray would do
    out = engine.replay(jobs, trace.uniform(2, 8), base)
    big = next(r for r in out.records if r.job.team == "big")
    assert big.first_start is not None
    # starved after 4 h, then it waits at most for the running jobs' limits (20 min)
    assert big.first_start - big.job.submit_s <= 4 * 3600 + 1200 + 1
    assert all(r.end is not None for r in out.records)


def test_figures_of_a_hand_made_replay() -> None:
    # two 8-GPU jobs of one hour on one 8-GPU node, submitted together: FIFO runs them back to
    # back, so the waits are 0 and 1 h, the makespan 2 h, and the node busy throughout
    jobs = [tj(1, 0.0, 3600.0, 8, "a"), tj(2, 0.0, 3600.0, 8, "b")]
    cfg = baselines.config("fifo", PolicyConfig(quotas={"a": 4, "b": 4}))
    out = engine.replay(jobs, trace.uniform(1, 8), cfg)
    f = metrics.figures("fifo", out, {"a": 4, "b": 4})
    assert (f.avg_wait_s, f.p50_wait_s, f.makespan_s) == (1800.0, 1800.0, 7200.0)
    assert f.avg_jct_s == 5400.0 and f.utilization == 1.0
    # JCTs 1 h and 2 h: numpy's linear percentiles between them
    assert (f.p50_jct_s, f.p95_jct_s, f.p99_jct_s) == (5400.0, 7020.0, 7164.0)
    assert f.bounded_slowdown == pytest.approx((1 + 2) / 2)
    # each team was owed 4 GPUs while it waited or ran, and got 8 for its hour: b waited an hour
    # with nothing, so it got half of what it was owed; a got all of it
    sat = {t.team: t.satisfaction for t in f.teams}
    assert sat == {"a": 1.0, "b": 0.5}
    assert f.jain == pytest.approx(1.5**2 / (2 * (1 + 0.25)))


@pytest.mark.parametrize(("checkpoint_s", "kept_s"), [(1800.0, 3600.0), (None, 4030.0)])
def test_a_preempted_job_keeps_its_last_checkpoint_and_pays_a_restore(
        checkpoint_s: float | None, kept_s: float) -> None:
    """b borrows half the node with one of two jobs of 10,000 s; a claims its quota at 4,000 s,
    so that job is preempted (4,030 s run, its grace included) and resumes once a's 500 s job
    ends: it keeps its work up to its last checkpoint (every 1,800 s of progress: 3,600 s), or
    all of it where it checkpoints when preempted, and pays 60 s to restore."""
    jobs = [tj(1, 0.0, 10_000.0, 4, "b"), tj(2, 0.0, 10_000.0, 4, "b"),
            tj(3, 4000.0, 500.0, 4, "a")]
    out = engine.replay(jobs, trace.uniform(1, 8),
                        PolicyConfig(quotas={"a": 4, "b": 4}, preempt_grace_s=GRACE),
                        engine.Resume(restore_s=60.0, checkpoint_s=checkpoint_s))
    (b,) = [r for r in out.records if r.preemptions]
    assert b.job.team == "b" and b.preemptions == 1
    resumed = 4000.0 + GRACE + 500.0  # a's job ran in the GPUs b gave back
    assert b.end == pytest.approx(resumed + 60.0 + (10_000.0 - kept_s))
    lost = (4000.0 + GRACE - kept_s) + 60.0  # work since the checkpoint, and the restore
    assert b.lost_s == pytest.approx(lost)
    f = metrics.figures("default", out, {"a": 4, "b": 4})
    assert f.lost_gpu_h == pytest.approx(lost * 4 / 3600)
    assert f.lost_share == pytest.approx(lost * 4 / out.busy_gpu_s)


def test_a_claim_waits_out_the_minimum_run_time_not_the_borrower_s_end() -> None:
    """The replay wakes when a borrower grows past the minimum run time (#36): a's claim at
    60 s preempts b's job once it has run 600 s, not when it ends at 100,000 s (no other
    event comes between)."""
    jobs = [tj(1, 0.0, 100_000.0, 8, "b"), tj(2, 60.0, 500.0, 8, "a")]
    out = engine.replay(jobs, trace.uniform(1, 8),
                        PolicyConfig(quotas={"a": 8, "b": 0}, preempt_grace_s=GRACE))
    (a,) = [r for r in out.records if r.job.team == "a"]
    assert a.first_start == 600.0 + GRACE


def test_jain_index() -> None:
    assert metrics.jain([1, 1, 1]) == 1.0
    assert metrics.jain([1, 0, 0, 0]) == 0.25


def test_trace_loading(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("submit_s,duration_s,num_gpus,vc\n0,100,16,x\n5,50,1,y\n9,10,64,x\n3,7,4,z\n")
    t = trace.load(f, fleet=trace.uniform(4, 8), teams=["x", "y"])
    assert [(j.gpus, j.nodes, j.team) for j in t.jobs] == [(8, 2, "x"), (1, 1, "y")]
    assert t.skipped == 1  # 64 GPUs on a 32-GPU cluster
    assert all(j.duration_s <= j.time_limit_s <= 3 * j.duration_s + 60 for j in t.jobs)
    assert trace.gang_shape(12, 8) == (6, 2)
    f.write_text("submit_s,duration_s,num_gpus,team\n0,abc,1,x\n")
    with pytest.raises(trace.TraceError, match="line 2: duration_s"):
        trace.load(f, fleet=trace.uniform(1, 8))
    f.write_text("submit_s,num_gpus\n")
    with pytest.raises(trace.TraceError, match="missing column"):
        trace.load(f, fleet=trace.uniform(1, 8))
    # with a time_limit_s column, an empty cell is a job without a limit; it runs its duration
    f.write_text("submit_s,duration_s,num_gpus,team,time_limit_s\n0,100,1,x,60\n0,100,1,x,\n")
    t = trace.load(f, fleet=trace.uniform(1, 8))
    assert [(j.time_limit_s, j.run_s) for j in t.jobs] == [(60, 60), (None, 100)]
    f.write_text("submit_s,duration_s,num_gpus,team,time_limit_s\n0,100,1,x,soon\n")
    with pytest.raises(trace.TraceError, match="line 2: time_limit_s"):
        trace.load(f, fleet=trace.uniform(1, 8))


def test_policies_on_a_trace_prefix() -> None:
    """The standard scenario's first 8,000 jobs (its first 24 days, before the burst) on 16
    nodes: the default policy's average wait is below EASY backfill's, which is below FIFO's,
    its average completion time below the former default's (``guarded``), and every team gets
    its due."""
    philly = Path(__file__).resolve().parents[2] / "shared" / "traces" / "philly.csv"
    if not philly.exists():
        pytest.skip("../shared/traces/philly.csv is not beside the checkout")
    teams = ["6214e9", "6c71a0", "11cb48", "103959"]
    t = trace.load(philly, fleet=trace.uniform(16, 8), teams=teams)
    jobs = t.jobs[:8000]
    quotas = {team: 32.0 for team in teams}
    figs = {}
    for name in ("fifo", "backfill", "guarded", "default"):
        cfg = baselines.config(name, PolicyConfig(quotas=quotas))
        figs[name] = metrics.figures(name, engine.replay(jobs, trace.uniform(16, 8), cfg),
                                     quotas)
    assert figs["default"].avg_wait_s < figs["backfill"].avg_wait_s < figs["fifo"].avg_wait_s
    assert figs["default"].avg_jct_s < figs["guarded"].avg_jct_s
    assert all(f.unfinished == 0 for f in figs.values())
    assert figs["default"].jain >= 0.9


def test_simulate_command(tmp_path: Path) -> None:
    """``clusterctl simulate`` end to end: table, --json with the documented keys, --plot, and
    bad input (one line naming the flag, exit 2, nothing written)."""
    import json
    import subprocess
    import sys

    f = tmp_path / "t.csv"
    rows = ["submit_s,duration_s,num_gpus,team"]
    rows += [f"{i * 300},{3600 + (i % 7) * 900},{[1, 1, 2, 4, 8, 16][i % 6]},{'abc'[i % 3]}"
             for i in range(120)]
    rows += ["10,100,64,a"]  # larger than the cluster
    f.write_text("\n".join(rows) + "\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clusterctl", "simulate", "--trace", str(f),
                               "--cluster", "2x8", *args], capture_output=True, text=True,
                              timeout=120)

    out = cli("--json", "--plot", str(tmp_path / "w.png"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["policy"] for d in data] == ["fifo", "greedy", "backfill", "default"]
    keys = {"policy", "avg_wait_s", "p50_wait_s", "p95_wait_s", "p99_wait_s", "avg_jct_s",
            "p50_jct_s", "p95_jct_s", "p99_jct_s", "bounded_slowdown", "makespan_s",
            "utilization", "jain", "preemptions", "demotions", "lost_gpu_h", "lost_share"}
    assert all(keys <= d.keys() and d["jobs"] == 120 and d["skipped"] == 1 for d in data)
    assert all(0 < d["utilization"] <= 1 and 0 < d["jain"] <= 1 for d in data)
    png = (tmp_path / "w.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = cli("--policy", "fifo,guarded,default", "--quota", "a=8")
    assert table.returncode == 0 and "got of due" in table.stdout
    assert "guarded" in table.stdout and "default" in table.stdout
    free = cli("--policy", "default", "--restore-overhead", "0", "--checkpoint-interval",
               "preemption", "--json")
    assert free.returncode == 0 and json.loads(free.stdout)[0]["lost_gpu_h"] == 0
    for args, flag in [(("--cluster", "16"), "--cluster"), (("--policy", "sjf"), "--policy"),
                       (("--quota", "a"), "--quota"), (("--overestimate", "0.5"),
                                                       "--overestimate"),
                       (("--plot", str(tmp_path / "w.gif")), "--plot"),
                       (("--restore-overhead", "-1m"), "--restore-overhead"),
                       (("--checkpoint-interval", "often"), "--checkpoint-interval")]:
        bad = subprocess.run([sys.executable, "-m", "clusterctl", "simulate", "--trace", str(f),
                              *args], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and flag in bad.stderr and len(bad.stderr.splitlines()) == 1
    missing = subprocess.run([sys.executable, "-m", "clusterctl", "simulate", "--trace",
                              str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert missing.returncode == 2 and "--trace" in missing.stderr
    assert not (tmp_path / "w.gif").exists()
