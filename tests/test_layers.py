"""The import-linter contracts in pyproject.toml are what keep the layers: these tests check
that every module is in a layer (a module outside every layer escapes every rule) and that the
contracts do fail on the arrows they exist to forbid, by adding such an arrow to a copy of the
code and running ``lint-imports`` on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


def _layered() -> set[str]:
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    return {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}


def test_every_top_level_module_is_in_a_layer() -> None:
    layered = _layered()
    package = ROOT / "clusterctl"
    tops = {
        f"clusterctl.{p.stem}" for p in package.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())
        and p.stem not in ("__init__", "__main__")
    }
    assert tops - layered == set(), "modules in no layer of pyproject.toml's layers contract"
    assert "agents" in layered
    assert layered - tops - {"agents"} == set(), "layers naming modules that do not exist"


# Each arrow here runs against the layering: the money side and the scheduling side do not know
# one another, and the agent knows nothing of the CLI.
FORBIDDEN_ARROWS = [
    ("clusterctl/reports/cost.py", "clusterctl.scheduler.policy", "clusterctl.reports.cost"),
    ("clusterctl/scheduler/policy.py", "clusterctl.reports.cost", "clusterctl.scheduler.policy"),
    ("agents/main.py", "clusterctl.cli", "agents.main"),
    ("agents/main.py", "clusterctl.settings", "agents.main"),
    ("clusterctl/parsing.py", "clusterctl.states", "clusterctl.parsing"),
]


@pytest.mark.slow
def test_the_contracts_break_on_the_arrows_they_forbid(tmp_path: Path) -> None:
    for folder in ("clusterctl", "agents"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    kept = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stdout[-3000:]

    for path, target, _ in FORBIDDEN_ARROWS:
        with open(tmp_path / path, "a") as f:
            f.write(f"\nimport {target}  # noqa\n")
    broken = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert broken.returncode != 0
    for _, target, importer in FORBIDDEN_ARROWS:
        assert f"{importer} -> {target}" in broken.stdout, (importer, target, broken.stdout[-3000:])
