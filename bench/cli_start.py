"""How long the CLI takes to answer (#33 item 1), against a bare Python that imports what a
hand-written HTTP client would (`python -c 'import json, http.client'`), side by side in one
run: the commands people type dozens of times an hour, against a real controller
(`clusterctl up --ray-address`, SQLite, simulated GPUs).

With BEFORE=<a checkout of an earlier commit>, the same commands run that code too (through
PYTHONPATH, ahead of the installed one), so the change is measured in the same run; with
BEFORE_PYTHON=<a venv's python> as well, under that venv's versions of the libraries (a
change of a dependency's version is measured too).
Run: python bench/cli_start.py [RUNS]   (median of RUNS runs each, default 15)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from common import Stack, median_s

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
GOALS = {"jobs": 6.0, "submit -- true": 10.0}
"""The issue's goals: `jobs` within 6x the bare Python, `submit` within 10x."""


def main() -> None:
    stack = Stack(gpus=4)
    work = Path(tempfile.mkdtemp(prefix="cli-start-"))
    try:
        py = [sys.executable]
        job = stack.client().post("/v1/jobs", json={"command": ["true"], "gpus": 1}).json()
        commands = {
            "--help": ["--help"], "jobs --help": ["jobs", "--help"], "jobs": ["jobs"],
            "show": ["show", str(job["id"])], "submit -- true": ["submit", "--", "true"],
        }
        codes = {"now": None, "before": os.environ.get("BEFORE")}
        base = median_s([*py, "-c", "import json, http.client"], stack.env, work, RUNS)
        print(f"{RUNS} runs each, median; bare Python (import json, http.client): "
              f"{base * 1000:.0f} ms\n")
        print("| command | " + " | ".join(f"{k} (ms)" for k, v in codes.items()
                                           if k == "now" or v) + " | now / bare |")
        print("| --- |" + " --- |" * (1 + bool(codes["before"]) + 1))
        for name, args in commands.items():
            cells = []
            for label, path in codes.items():
                if label == "before" and not path:
                    continue
                env = dict(stack.env)
                python = py
                if path:
                    env["PYTHONPATH"] = path
                    python = [os.environ.get("BEFORE_PYTHON", sys.executable)]
                cells.append(median_s([*python, "-m", "clusterctl", *args], env, work, RUNS))
            goal = f" (goal {GOALS[name]:g}x)" if name in GOALS else ""
            print(f"| `clusterctl {name}` | " + " | ".join(f"{c * 1000:.0f}" for c in cells)
                  + f" | {cells[0] / base:.1f}x{goal} |")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
