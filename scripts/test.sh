#!/usr/bin/env bash
# Install clusterctl with its test extras into .venv and run the whole test suite (all but the
# `gpu` marker, which needs a real NVIDIA driver), after ruff, mypy and import-linter's layers.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements.lock -e '.[test,plots]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest -m "not gpu" "$@"
