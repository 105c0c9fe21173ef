"""matplotlib is the optional `plots` extra: without it, asking for a chart is a one-line error
that says what to install (exit 2), before any work is done; everything else still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WITHOUT_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None\n"  # as if the extra were not installed
    "from clusterctl.cli.main import main\n"
    "sys.argv = ['clusterctl', *sys.argv[1:]]\n"
    "main()\n"
)


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home),
           "CLUSTERCTL_URL": "http://127.0.0.1:9"}  # nothing listens: no request may be made
    return subprocess.run([sys.executable, "-c", WITHOUT_MATPLOTLIB, *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [
    ["report", "cost", "--plot", "{dir}/cost.png"],
    ["report", "html", "{dir}/report.html"],
    ["simulate", "--trace", "{dir}/none.csv", "--cluster", "2x8", "--plot", "{dir}/w.png"],
])
def test_a_chart_without_matplotlib_names_the_extra(tmp_path: Path, command: list[str]) -> None:
    r = run(*(a.format(dir=tmp_path) for a in command), home=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --plot: charts need matplotlib: pip install 'clusterctl[plots]'"]
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.html"))


def test_commands_without_a_chart_need_no_matplotlib(tmp_path: Path) -> None:
    r = run("report", "cost", "--help", home=tmp_path)
    assert r.returncode == 0 and "--plot" in r.stdout
