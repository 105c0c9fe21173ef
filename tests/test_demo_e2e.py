"""`clusterctl demo`, the README's first command, run as a user would."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from harness import clusterctl_argv

pytestmark = pytest.mark.ray


def kept_demo(tmp_path: Path) -> tuple[str, str]:
    """`demo --keep` to its end, its dashboard signed in to while it stays up, then Ctrl-C:
    what it printed (stdout, stderr)."""
    proc = subprocess.Popen([*clusterctl_argv(), "demo", "--keep"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                 "COLUMNS": "160"})
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/ .* token (cct_\S+)", line)
            if found:
                break
        else:
            pytest.fail("the demo ended without its dashboard: " + "".join(lines)[-2000:])
        with httpx.Client(base_url=found.group(1), timeout=30) as c:
            signed = c.post("/login", data={"token": found.group(2)}, follow_redirects=True)
            assert signed.status_code == 200 and "Waiting" in signed.text  # the queue page
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines)[-2000:] + err[-2000:]
    return "".join(lines) + rest, err


def test_demo_runs_jobs_and_reports_measured_usage(tmp_path: Path) -> None:
    out, err = kept_demo(tmp_path)
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
        " ".join(err.split())
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
