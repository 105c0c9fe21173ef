"""The commands the cost and report docs show, run as written against a real controller, so the
docs cannot drift from the command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from harness import ControllerProcess

pytestmark = pytest.mark.ray
DOCS = Path(__file__).resolve().parent.parent / "docs"


def blocks(doc: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc.read_text(), flags=re.S)


def commands(block: str) -> list[list[str]]:
    """Shell lines of a block (continuations joined, comments dropped), as argument lists."""
    joined = block.replace("\\\n", " ")
    return [args for line in joined.splitlines()
            if (args := shlex.split(line, comments=True))]


def test_cost_and_report_docs_run_as_written(controller: ControllerProcess, tmp_path: Path) -> None:
    cost_model = DOCS / "cost-model.md"
    (tmp_path / "rack.toml").write_text(blocks(cost_model, "toml")[0])
    report_block = next(b for b in blocks(DOCS / "user-guide.md", "bash")
                        if "clusterctl report" in b)
    retire_block = next(b for b in blocks(cost_model, "bash") if "hardware retire" in b)
    ran = []
    for args in (commands(blocks(cost_model, "bash")[0]) + commands(report_block)
                 + commands(retire_block)):
        assert args[0] == "clusterctl", args
        r = controller.cli(*args[1:], cwd=tmp_path)
        assert r.returncode == 0, (args, r.stdout[-1000:], r.stderr[-1000:])
        ran.append(args[1:3])
    assert ["hardware", "import"] in ran and ["report", "html"] in ran
    assert ["hardware", "retire"] in ran
    assert (tmp_path / "amortization.png").stat().st_size > 10_000
    assert "<svg" in (tmp_path / "report.html").read_text()
    machines = controller.json("hardware", "list")
    assert [m["node"] for m in machines] == ["gpu-01"] and machines[0]["resale"] == "0.25"
