"""`clusterctl demo`, the README's first command, run as a user would."""

from __future__ import annotations

import subprocess

import pytest
from harness import clusterctl_argv

pytestmark = pytest.mark.ray


def test_demo_runs_jobs_and_reports_measured_usage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = subprocess.run([*clusterctl_argv(), "demo"], capture_output=True, text=True,
                       timeout=240, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "120"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
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
