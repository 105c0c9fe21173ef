#!/usr/bin/env bash
# Install clusterctl into .venv and run the demo (SQLite, local Ray, a simulated mixed fleet).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements.lock -e '.[plots]'
.venv/bin/clusterctl demo
