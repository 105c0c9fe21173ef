"""The opt-in compiled build (``HATCH_BUILD_HOOK_ENABLE_MYPYC=1 pip install .``, pyproject.toml)
builds its extension modules inside the checkout. Left there, Python imports them ahead of the
sources beside them, and every edit to those modules would silently not run: the tests would
pass or fail on old code."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_compiled_module_shadows_its_source_in_the_checkout() -> None:
    stale = sorted(str(p.relative_to(ROOT)) for top in ("clusterctl", "agents")
                   for p in (ROOT / top).rglob("*.so"))
    assert not stale, (
        f"compiled modules in the checkout shadow their sources: {stale}; remove them "
        "(git clean -fX clusterctl agents), and build with HATCH_BUILD_CLEAN_HOOKS_AFTER=1")
