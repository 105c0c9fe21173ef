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


def test_every_library_the_package_imports_is_a_declared_dependency() -> None:
    """A plain `pip install clusterctl` must run every command but the charts: each library
    imported under clusterctl/ and agents/ is in the project's dependencies (matplotlib in the
    `plots` extra only). numpy once came along with ray only, until ray stopped bringing it."""
    import ast
    import importlib.metadata
    import re

    import tomllib

    root = Path(__file__).resolve().parent.parent
    with open(root / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[\s\[<>=;!~]", s, maxsplit=1)[0].lower().replace("_", "-")
                for s in specs}

    declared = names(project["dependencies"])
    plots = names(project["optional-dependencies"]["plots"])
    dists = importlib.metadata.packages_distributions()
    missing: dict[str, str] = {}
    for path in [*root.glob("clusterctl/**/*.py"), *root.glob("agents/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in ("clusterctl", "agents"):
                    continue
                owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
                allowed = declared | (plots if path.name == "plots.py" else set())
                if not owners & allowed:
                    missing[top] = str(path.relative_to(root))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
