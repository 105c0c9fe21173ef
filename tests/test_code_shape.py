"""The size rule of CONVENTIONS.md, kept: no module over 400 lines and no function over 80
outside migrations and tests. A module that grows past it is a module holding two ideas."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE, MAX_FUNCTION = 400, 80


def _sources() -> list[Path]:
    return sorted(p for top in ("clusterctl", "agents") for p in (ROOT / top).rglob("*.py")
                  if "migrations" not in p.parts)


def test_no_module_over_400_lines() -> None:
    over = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE}
    assert over == {}


def test_no_function_over_80_lines() -> None:
    over = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > MAX_FUNCTION:
                    over[f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert over == {}
