"""The opt-in compiled build (``HATCH_BUILD_HOOK_ENABLE_MYPYC=1 pip install .``, pyproject.toml)
builds its extension modules inside the checkout. Left there, Python imports them ahead of the
sources beside them, and every edit to those modules would silently not run: the tests would
pass or fail on old code."""

from __future__ import annotations

import json
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

ROOT = Path(__file__).resolve().parents[1]


def test_no_compiled_module_shadows_its_source_in_the_checkout() -> None:
    stale = sorted(str(p.relative_to(ROOT)) for top in ("clusterctl", "agents")
                   for p in (ROOT / top).rglob("*.so"))
    assert not stale, (
        f"compiled modules in the checkout shadow their sources: {stale}; remove them "
        "(git clean -fX clusterctl agents), and build with HATCH_BUILD_CLEAN_HOOKS_AFTER=1")


SCRIPT = """
import dataclasses, json, sys
from pathlib import Path
from clusterctl.scheduler import policy
from clusterctl.scheduler.records import PolicyConfig
from clusterctl.simulate import engine, metrics, trace
assert policy.__file__.endswith(sys.argv[2]), policy.__file__
fleet = [(2, 8, "H100-80GB"), (4, 8, "A100-80GB"), (1, 4, "RTX-4090")]
teams = ["6214e9", "6c71a0", "11cb48", "103959"]
t = trace.load(Path(sys.argv[1]), fleet=fleet, teams=teams)
quotas = {team: 14.0 for team in teams}
out = engine.replay(t.jobs[:3000], fleet, PolicyConfig(quotas=quotas))
print(json.dumps(dataclasses.asdict(metrics.figures("default", out, quotas))))
"""


def _compiled_modules() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        hook = tomllib.load(f)["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]
    return [p.lstrip("/") for p in hook["include"]]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler for mypyc")
def test_the_compiled_core_decides_as_the_sources_do(tmp_path: Path) -> None:
    """The opt-in build compiles the modules pyproject.toml names. Compiled code checks its
    annotations as it runs, so a wrong one is an error there and nowhere else: the core is
    compiled here, replays a trace prefix with the same figures, to the last digit, as the
    sources, and passes the policy's, the simulator's and plan's tests."""
    philly = ROOT.parent / "shared" / "traces" / "philly.csv"
    if not philly.exists():
        pytest.skip("../shared/traces/philly.csv is not beside the checkout")
    build = tmp_path / "compiled"
    build.mkdir()
    for top in ("clusterctl", "agents"):
        shutil.copytree(ROOT / top, build / top, ignore=shutil.ignore_patterns("__pycache__"))
    # Without C optimisation: the same code and the same checks of annotations at run time,
    # built in a fraction of the compiler's time (the release build uses -O3).
    made = subprocess.run([sys.executable, "-m", "mypyc", *_compiled_modules()], cwd=build,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MYPYC_OPT_LEVEL": "0", "MYPYC_DEBUG_LEVEL": "0"})
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]

    def figures(cwd: Path, suffix: str) -> dict[str, object]:
        r = subprocess.run([sys.executable, "-c", SCRIPT, str(philly), suffix], cwd=cwd,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)

    pure = figures(ROOT, ".py")
    assert figures(build, ".so") == pure and pure["jobs"] == 3000
    env = {**os.environ, "PYTHONPATH": str(build)}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "tests/test_policy.py", "tests/test_simulate.py", "tests/test_plan.py",
         "tests/test_mixed_fleet_policy.py", "tests/test_type_quotas.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout[-4000:]
