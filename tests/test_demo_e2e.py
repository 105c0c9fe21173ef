"""`clusterctl demo`, the README's first command, run as a user would."""

from __future__ import annotations

import re
import subprocess

import pytest
from harness import clusterctl_argv

pytestmark = pytest.mark.ray


def test_demo_runs_jobs_and_reports_measured_usage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = subprocess.run([*clusterctl_argv(), "demo"], capture_output=True, text=True,
                       timeout=240, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "160"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    # The ownership story first, on a year of made-up history labelled so: a machine that has
    # paid for itself or the date it will, the idle jobs named, and a buy question answered.
    story = out.split("$ clusterctl submit", 1)[0]
    assert "synthetic" in story and "made-up jobs" in story
    amortization = story.split("$ clusterctl report amortization", 1)[1].split("$ clusterctl")[0]
    assert "(reached)" in amortization or "(projected)" in amortization
    waste = story.split("$ clusterctl report waste", 1)[1].split("$ clusterctl")[0]
    assert len([ln for ln in waste.splitlines() if "synthetic-" in ln]) == 5
    plan = " ".join(story.split("$ clusterctl plan", 1)[1].split())
    assert "current fleet" in plan and "adding 1x4:A100-80GB" in plan
    assert "power measured on the cluster while GPUs were held: A100-80GB" in \
        " ".join(r.stderr.split())
    assert re.search(r"Adding 1x4:A100-80GB (cuts|leaves) the average wait .* a month more; "
                     r"(against renting the same GPU-hours it pays for itself in \d+ months|"
                     r".*renting the overflow is cheaper)\.", plan), plan
    assert "FAILED" in out and "dataset not found" in out
    assert "clusterctl nodes" in out and "A100-80GB" in out and "RTX-4090" in out
    # a mixed fleet: the typed job waits for its type, by name, while other GPUs are free
    assert "needs 4 A100; 2 of 4 free" in out
    usage, reports = out.split("Usage per job", 1)[1].split("$ clusterctl report", 1)
    lines = [ln.split() for ln in usage.splitlines() if ln.strip()[:1].isdigit()]
    assert len(lines) == 5
    assert [ln[-1] for ln in lines] == ["100%"] * 5  # samples cover every job's whole run
    assert any(float(ln[-2]) > 0 for ln in lines)  # energy measured
    cost = reports.split("$ clusterctl report cost", 1)[1].split("$ clusterctl report", 1)[0]
    by_type = reports.split("report cost --since 1h --by gpu-type", 1)[1].split("$ clusterctl",
                                                                                 1)[0]
    assert "A100-80GB" in by_type and "RTX-4090" in by_type
    job_rows = [ln.split() for ln in cost.splitlines() if ln.strip()[:1].isdigit()]
    assert len(job_rows) == 5 and any(float(r[-2]) > 0 for r in job_rows)  # priced
    assert "(idle)" in cost
    amortization = reports.split("$ clusterctl report amortization", 1)[1]
    assert "150,000" in amortization and "14,000" in amortization
